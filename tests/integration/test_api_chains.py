"""The chain routes served by uvicorn, on SQLite and on PostgreSQL: a goods receipt posted
by an operator joins its chain and its three-way exception is routed at once; the chain
is shown; errors are problem+json; partners' keys are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.chains import correlate
from gateway.store import db
from gateway.store.models import Delivery
from tests.chain_support import PO, context, receipt, story_events
from tests.conftest import REPO
from tests.http_support import serving
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[tuple[httpx.Client, dict[str, str], str]]:
    ctx = context(store_url, tmp_path)
    with db.transaction(ctx.engine) as s:
        correlate.observe(s, ctx.partners, story_events(), routes=ctx.settings.routes)
    made = {"operator": keys.new_key(), "globex": keys.new_key()}
    key_file = tmp_path / "api-keys.yaml"
    key_file.write_text("keys:\n" + "\n".join([
        keys.entry_line(keys.KeyEntry("ops", keys.hash_key(made["operator"]), "operator")),
        keys.entry_line(keys.KeyEntry("globex-erp", keys.hash_key(made["globex"]), "partner",
                                      "globex"))]) + "\n")
    settings = ApiSettings(store_url=store_url, api_keys_file=key_file,
                           partners_dir=REPO / "conf" / "partners",
                           mappings_root=REPO / "mappings", routes=tuple(ctx.settings.routes))
    try:
        with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as c:
            yield c, {w: f"Bearer {k}" for w, k in made.items()}, store_url
    finally:
        ctx.close()


def test_a_posted_receipt_joins_its_chain_and_its_exception_is_routed(api) -> None:  # type: ignore[no-untyped-def]
    client, auth, url = api
    ops = {"Authorization": auth["operator"]}
    r = client.post("/v1/receipts", json=receipt(), headers=ops)
    assert r.status_code == 201, r.text
    assert r.json()["partner"] == "globex"
    assert [e["kind"] for e in r.json()["exceptions"]] == ["three_way_quantity"]
    engine = db.make_engine(url)
    try:
        with db.transaction(engine, write=False) as s:
            # The 855's cut and the three-way mismatch: each with its delivery to the ERP.
            assert s.scalar(select(func.count()).select_from(Delivery)) == 2
    finally:
        engine.dispose()
    again = client.post("/v1/receipts", json=receipt(), headers=ops)
    assert again.status_code == 201 and again.json()["exceptions"] == []
    shown = client.get(f"/v1/chains/globex/{PO}", headers=ops)
    assert shown.status_code == 200
    assert [ln["received"] for ln in shown.json()["lines"]] == ["24", "6"]
    assert [e["kind"] for e in shown.json()["exceptions"]] == ["acknowledged_quantity",
                                                               "three_way_quantity"]
    listed = client.get("/v1/chains", params={"open": "true"}, headers=ops)
    assert listed.status_code == 200 and listed.json() == []


def test_errors_are_problems_and_partners_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    client, auth, _ = api
    ops = {"Authorization": auth["operator"]}
    for status, response in [
        (404, client.get("/v1/chains/globex/NOPE", headers=ops)),
        (404, client.post("/v1/receipts", json=receipt("NOPE"), headers=ops)),
        (422, client.post("/v1/receipts", json=receipt() | {"lines": []}, headers=ops)),
        (400, client.post("/v1/receipts", json={"lines": []}, headers=ops)),
        (404, client.post("/v1/receipts", params={"partner": "nobody"}, json=receipt(),
                          headers=ops)),
        (403, client.post("/v1/receipts", json=receipt(), headers={"Authorization": auth["globex"]})),
        (401, client.get(f"/v1/chains/globex/{PO}")),
    ]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/receipts", "/v1/chains/{partner}/{po_number}", "/v1/chains"} <= set(paths)
