"""The fast (jsonschema-rs) check never accepts what the reference (python-jsonschema) refuses.

canonical.schemas answers "does it conform?" with jsonschema-rs and asks python-jsonschema
only to explain a refusal. That is sound only if the two agree on every verdict; here
they are compared on every document the project ships, against every event schema, and
on mutations of those documents (values replaced by other types, by near-miss dates and
SSCC-18s, keys dropped and added).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import schemas

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EVENT_TYPES = schemas.event_types()


def _documents() -> list[tuple[str, Any]]:
    docs: list[tuple[str, Any]] = []
    for f in sorted((REPO / "canonical" / "examples").glob("*.json")):
        event = json.loads(f.read_text("utf-8"))
        docs.append((f.name, event))  # an envelope
        docs.append((f.name + "#data", event["data"]))
    for f in sorted((REPO / "mappings").rglob("*.expected.json")):
        got = json.loads(f.read_text("utf-8"))
        for n, doc in enumerate(got if isinstance(got, list) else [got]):
            docs.append((f"{f.relative_to(REPO)}[{n}]", doc.get("data", doc)))
    return docs


DOCUMENTS = _documents()


def _verdicts(doc: Any) -> list[tuple[str, bool, bool]]:
    """(schema, fast says valid, reference says valid) for every event schema and the envelope."""
    out = []
    for name in [*EVENT_TYPES, "cloudevent"]:
        fast = schemas._fast(name, 1).is_valid(doc)
        reference = not any(True for _ in schemas._validator(name, 1).iter_errors(doc))
        out.append((name, fast, reference))
    return out


def test_the_shipped_documents_are_enough_to_matter() -> None:
    # Examples of all four event types, and some of each accepted by its own schema.
    assert len(DOCUMENTS) >= 20
    for t in EVENT_TYPES:
        assert any(schemas._fast(t, 1).is_valid(d) for _, d in DOCUMENTS), t


def test_used_formats_are_all_the_formats_the_schemas_use() -> None:
    text = "".join(json.dumps(s) for s in schemas._schemas().values())
    assert set(re.findall(r'"format": "([^"]+)"', text)) == set(schemas._USED_FORMATS)


@pytest.mark.parametrize("name,doc", DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_same_verdict_on_shipped_documents(name: str, doc: Any) -> None:
    for schema, fast, reference in _verdicts(doc):
        assert fast == reference, f"{name} against {schema}: fast {fast}, reference {reference}"


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


NEAR_MISSES = [
    "2024-02-30", "2024-13-01", "2024-1-01", "20240101", "2024-03-15 ", "2024-03-15",
    "2024-03-15T10:00:00Z", "2024-03-15T25:00:00Z", "2024-03-15T10:00:00+05:30",
    "2024-03-15t10:00:00z", "2016-12-31T23:59:60Z", "2024-03-15T10:00:00", "2024-03-15T10:00Z",
    "2024-03-15T10:00:00.123456789Z", "00012345600000000", "000123456000000001",
    "000123456000000000", "00012345600000000x", "", " ", "EA", "-1", "1e3", "0.5", "01",
    "٣", "PO\u00001",
]
VALUES = st.one_of(
    st.sampled_from(NEAR_MISSES), st.none(), st.booleans(), st.integers(-3, 10**20),
    st.floats(allow_nan=False), st.text(max_size=12), st.just([]), st.just({}),
    st.lists(st.sampled_from(NEAR_MISSES), max_size=2),
    st.dictionaries(st.sampled_from(["x", "value", "unit", "kind", "id"]),
                    st.sampled_from(NEAR_MISSES), max_size=2))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_same_verdict_on_mutated_documents(data: st.DataObject) -> None:
    name, original = data.draw(st.sampled_from(DOCUMENTS))
    doc = copy.deepcopy(original)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        action = data.draw(st.sampled_from(["replace", "drop", "add"]))
        if not path:
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if action == "replace":
            parent[last] = data.draw(VALUES)
        elif action == "drop":
            del parent[last]
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "x-note", "extensions"]))] = \
                data.draw(VALUES)
    for schema, fast, reference in _verdicts(doc):
        assert fast == reference, (f"{name} mutated against {schema}: fast {fast}, "
                                   f"reference {reference}: {json.dumps(doc)[:400]}")
