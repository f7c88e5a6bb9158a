"""Golden examples: each mapping's own `examples:` (input file, expected canonical JSON) run and diffed.

An expected file holds one JSON object when the input makes one document, else an array
with one object per document, in input order.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canonical import schemas
from canonical.errors import GatewayError
from gateway.mapping_tools import inputs
from mappings.language import load_mapping, yaml_source


@dataclass
class Example:
    """One declared example of one mapping file."""

    mapping: Path
    name: str
    input: Path
    expected: Path
    details: Path | None = None
    line: int | None = None  # where it is declared


@dataclass
class Outcome:
    """What running one example gave."""

    example: Example
    ok: bool
    diff: str = ""  # unified diff, expected -> actual
    error: str = ""  # the mapping (or input) failed before there was output to compare
    actual: Any = None


def declared(mapping: Path) -> list[Example]:
    """The examples a mapping file declares itself (inherited ones belong to its base)."""
    data, marks = yaml_source.load(mapping)
    out = []
    here = mapping.parent
    for i, ex in enumerate((data or {}).get("examples") or []):
        if not isinstance(ex, dict) or "input" not in ex or "expected" not in ex:
            continue  # the schema check reports it
        _, line = yaml_source.mark_of(marks, ("examples", i))
        out.append(Example(mapping, str(ex.get("name") or ex["input"]), here / ex["input"],
                           here / ex["expected"],
                           here / ex["details"] if ex.get("details") else None, line))
    return out


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _as_written(docs: list[dict[str, Any]]) -> Any:
    return docs[0] if len(docs) == 1 else docs


def run(example: Example) -> Outcome:
    """Map the example's input and compare with its expected file."""
    try:
        m = load_mapping(example.mapping)
        docs = inputs.map_file(m, example.input, example.details)
    except (GatewayError, OSError) as exc:
        return Outcome(example, False, error=str(exc))
    actual = _as_written(docs)
    violations = _schema_violations(m.event, docs)
    if violations:
        return Outcome(example, False, error=violations)  # never blessed as expected
    if not example.expected.is_file():
        return Outcome(example, False, error=f"expected file {example.expected} is missing "
                                             "(edigw mapping test --update writes it)",
                       actual=actual)
    try:
        expected = json.loads(example.expected.read_text("utf-8"))
    except ValueError as exc:
        return Outcome(example, False, error=f"{example.expected}: not JSON: {exc}", actual=actual)
    if expected == actual:
        return Outcome(example, True, actual=actual)
    diff = "".join(difflib.unified_diff(
        pretty(expected).splitlines(keepends=True), pretty(actual).splitlines(keepends=True),
        fromfile=f"{example.expected} (expected)", tofile=f"{example.input} (actual)"))
    return Outcome(example, False, diff=diff, actual=actual)


def _schema_violations(event: str | None, docs: list[dict[str, Any]]) -> str:
    """The canonical schema's verdict on each document (a golden file must be a valid one)."""
    if not event:
        return ""
    out = []
    for i, doc in enumerate(docs, 1):
        try:
            found = schemas.validate(event, doc)
        except GatewayError as exc:
            return str(exc)
        out += [f"document {i}: {v}" if len(docs) > 1 else str(v) for v in found]
    return f"the output breaks the {event} schema: " + "; ".join(out) if out else ""


def write_expected(outcome: Outcome) -> bool:
    """Make the expected file what the mapping gives now; False when there is no output."""
    if outcome.actual is None:
        return False
    outcome.example.expected.parent.mkdir(parents=True, exist_ok=True)
    outcome.example.expected.write_text(pretty(outcome.actual), encoding="utf-8")
    return True


def mapping_files(root: Path, partners: list[str] | None = None) -> list[Path]:
    """The mapping files under root: base ones and every partner's, or only the named
    partners' (`base` names the base mappings)."""
    groups = partners or ["base", *sorted(p.name for p in (root / "partners").glob("*")
                                          if p.is_dir())]
    out: list[Path] = []
    for g in groups:
        folder = root / "base" if g == "base" else root / "partners" / g
        out += sorted(folder.rglob("*.yaml"))
    return out
