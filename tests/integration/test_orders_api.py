"""POST /v1/purchase-orders through a real server (uvicorn on 127.0.0.1), on SQLite and
PostgreSQL: operators only, 202 with the document and its control numbers, problems for
what cannot go (and nothing queued then), in the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.store import db
from gateway.store.models import Audit, OutboundDocument, WorkItem
from tests.conftest import REPO
from tests.http_support import serving
from tests.store_support import migrated

pytestmark = pytest.mark.integration
SAMPLE = json.loads((REPO / "samples/orders/globex-po.json").read_text())
PATH = "/v1/purchase-orders"


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, dict[str, str]], str]]:
    engine = migrated(store_url)
    engine.dispose()
    made = {"operator": keys.new_key(), "globex": keys.new_key()}
    key_file = tmp_path / "api-keys.yaml"
    key_file.write_text("keys:\n" + "\n".join([
        keys.entry_line(keys.KeyEntry("ops", keys.hash_key(made["operator"]), "operator")),
        keys.entry_line(keys.KeyEntry("globex-erp", keys.hash_key(made["globex"]), "partner",
                                      "globex"))]) + "\n")
    settings = ApiSettings(store_url=store_url, api_keys_file=key_file,
                           partners_dir=REPO / "conf/partners", mappings_root=REPO / "mappings")
    headers = {who: {"Authorization": f"Bearer {k}"} for who, k in made.items()}
    with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, headers, store_url


def _counts(url: str) -> tuple[int, int]:
    engine = db.make_engine(url)
    try:
        with db.transaction(engine, write=False) as s:
            return (s.scalar(select(func.count()).select_from(OutboundDocument)) or 0,
                    s.scalar(select(func.count()).select_from(WorkItem)
                             .where(WorkItem.kind == "send")) or 0)
    finally:
        engine.dispose()


def test_an_operator_sends_an_order_once_and_gets_its_control_numbers(api) -> None:  # type: ignore[no-untyped-def]
    client, headers, url = api
    r = client.post(PATH, params={"partner": "globex"}, json=SAMPLE, headers=headers["operator"])
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["created"] and body["status"] == "queued" and body["po_number"] == "4500012345"
    assert body["control_numbers"] == {"isa13": "000000001", "gs06": "1", "st02": "0001"}
    again = client.post(PATH, params={"partner": "globex"}, json=SAMPLE,
                        headers=headers["operator"])
    assert again.status_code == 202
    assert again.json() == {**body, "created": False}
    assert _counts(url) == (1, 1)
    engine = db.make_engine(url)
    try:
        with db.transaction(engine, write=False) as s:
            [audit] = s.scalars(select(Audit).where(Audit.action == "orders.send")).all()
    finally:
        engine.dispose()
    assert audit.actor == "api:ops" and audit.target == f"outbound_document:{body['document_id']}"


def test_what_cannot_go_is_a_problem_and_queues_nothing(api) -> None:  # type: ignore[no-untyped-def]
    client, headers, url = api
    op = headers["operator"]
    cases = [
        ({"partner": "globex"}, SAMPLE, headers["globex"], 403, "operators only"),
        ({"partner": "globex"}, SAMPLE, {}, 401, "no API key"),
        ({"partner": "nobody"}, SAMPLE, op, 404, "no partner 'nobody'"),
        ({"partner": "../x"}, SAMPLE, op, 422, "does not match"),
        ({"partner": "acme"}, SAMPLE, op, 422, "no outbound mapping for 850"),
        ({"partner": "globex"}, {**SAMPLE, "po_number": "P" * 30}, op, 422,
         "segment BEG, element BEG03"),
        ({"partner": "globex"}, {"po_number": "1"}, op, 422, "lines"),
        ({"partner": "globex"}, [1, 2], op, 422, "does not match the API"),
    ]
    for params, body, who, code, says in cases:
        r = client.post(PATH, params=params, json=body, headers=who)
        assert r.status_code == code, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert says in r.text, r.text
    assert _counts(url) == (0, 0)
    bad = client.post(PATH, params={"partner": "globex"}, json={**SAMPLE, "po_number": "P" * 30},
                      headers=op).json()
    assert any("BEG03" in p for p in bad["problems"])
    ok = client.post(PATH, params={"partner": "globex"}, json=SAMPLE, headers=op)
    assert ok.status_code == 202
    changed = json.loads(json.dumps(SAMPLE))
    changed["lines"][0]["quantity"]["value"] = "30"
    conflict = client.post(PATH, params={"partner": "globex"}, json=changed, headers=op)
    assert conflict.status_code == 409 and "revision" in conflict.json()["detail"]
    assert _counts(url) == (1, 1)


def test_the_endpoint_is_in_the_openapi_document(api) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    post = spec["paths"][PATH]["post"]
    assert {"202", "404", "409", "422"} <= set(post["responses"])
    assert [p["name"] for p in post["parameters"]] == ["partner"]
    assert "requestBody" in post
