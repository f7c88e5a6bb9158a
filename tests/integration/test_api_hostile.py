"""Every REST endpoint with hostile parameters and bodies, on SQLite and PostgreSQL: never a 5xx.

The endpoints and their parameters are read from the app's own OpenAPI document, so a new
endpoint or parameter is covered the day it is added. Each parameter gets, one at a time,
the hostile values of its type while the others are left out (or, for a path, are 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from tests import deadletter_support as seed
from tests.store_support import migrated

pytestmark = pytest.mark.integration

HOSTILE_NUMBERS = ["99999999999999999999999", str(2**63), str(2**63 - 1), "-1", "0", "1e999",
                   "abc", ""]
HOSTILE_TEXTS = ["999999w", "999999d", "9999-12-31T23:00-05:00", "0001-01-01T00:00+01:00",
                 "\x00", "x" * 10_000, "'; drop table dead_letters; --", "%ff", "é\u202e",
                 "stage=deliver since=999999w", ",,,", "all"]
HOSTILE_BODIES: list[Any] = [
    {}, [], "not an object", {"filter": "since=999999w", "dry_run": True},
    {"filter": "until=0001-01-01T00:00+01:00", "reason": "x"}, {"ids": [2**63]},
    {"ids": [2**63 - 1], "reason": "x"}, {"ids": [-1], "reason": "x"},
    {"ids": [1] * 5000, "reason": "x"}, {"reason": "\x00"}, {"reason": "x" * 3000},
    {"filter": "x" * 5000, "reason": "x"}, {"ids": [1], "filter": "stage=map", "reason": "x"},
    {"ids": ["1"], "reason": "x", "dry_run": "maybe"},
]


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, dict]]:
    url = (f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    engine = migrated(url)
    seed.seed_many(engine, 2)
    made = {"operator": keys.new_key(), "partner": keys.new_key()}
    key_file = tmp_path / "api-keys.yaml"
    key_file.write_text("keys:\n" + "\n".join([
        keys.entry_line(keys.KeyEntry("ops", keys.hash_key(made["operator"]), "operator")),
        keys.entry_line(keys.KeyEntry("acme", keys.hash_key(made["partner"]), "partner",
                                      "acme"))]) + "\n")
    app = create_app(ApiSettings(store_url=url, api_keys_file=key_file))
    # raise_server_exceptions=False: a bug is seen as the 500 a caller would get.
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, {who: {"Authorization": f"Bearer {k}"} for who, k in made.items()}
    engine.dispose()


def _operations(c: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    spec = c.get("/openapi.json").json()
    return [(path, method.upper(), op) for path, ops in spec["paths"].items()
            for method, op in ops.items()]


def _kind(schema: dict[str, Any]) -> str:
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "array":
            return _kind(option.get("items", {}))
        if option.get("type") in ("integer", "number"):
            return "number"
    return "text"


def _requests(path: str, method: str, op: dict[str, Any]) -> Iterator[tuple[str, dict, Any]]:
    params = op.get("parameters", [])
    benign_path = re.sub(r"\{[^}]+\}", "1", path)
    for p in params:
        values = HOSTILE_NUMBERS if _kind(p.get("schema", {})) == "number" else HOSTILE_TEXTS
        for v in values:
            if p["in"] == "path":
                if "/" in v or v in ("", "%ff"):
                    continue  # another route, or none: not this parameter's value
                # Percent-encoded, as a client sends it (a raw NUL is no URL at all).
                url = re.sub(r"\{" + p["name"] + r"\}", lambda _, v=v: quote(v, safe=""), path)
                yield re.sub(r"\{[^}]+\}", "1", url), {}, None
            elif p["in"] == "query":
                yield benign_path, {p["name"]: v}, None
    if "requestBody" in op:
        for body in HOSTILE_BODIES:
            yield benign_path, {}, body
    elif not params:
        yield benign_path, {}, None


def test_no_endpoint_answers_a_hostile_request_with_a_5xx(client: tuple[TestClient, dict]) -> None:
    c, headers = client
    operations = _operations(c)
    assert any(p == "/v1/dead-letters" for p, _, _ in operations)
    failures, sent = [], 0
    for path, method, op in operations:
        for url, query, body in _requests(path, method, op):
            for who in ("operator", "partner"):
                r = c.request(method, url, params=query, json=body, headers=headers[who])
                sent += 1
                if r.status_code >= 500:
                    failures.append(f"{who} {method} {url} {query!r:.80} {body!r:.80} -> "
                                    f"{r.status_code} {r.text[:200]}")
    assert sent > 200
    assert not failures, "\n".join(failures)
