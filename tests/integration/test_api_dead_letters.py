"""The REST API served by uvicorn on 127.0.0.1, on SQLite and on PostgreSQL: R7-lite
(100 replays, two at once), S4 (every endpoint x own partner, other partner, operator)
and S5 (audited refusals, canary keys never in logs or the database)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.store import db
from gateway.store.models import Audit, Base
from tests import deadletter_support as seed
from tests.http_support import serving
from tests.store_support import migrated

pytestmark = pytest.mark.integration
# Recognisable in any dump: if one of these shows up in a log or a table, a key leaked.
CANARY = "CANARYk3y"
MAX_BODY = 4096


@dataclass
class Api:
    """A running API: its client, its store and the keys it knows."""

    client: httpx.Client
    engine: Engine
    keys: dict[str, str]  # operator, acme, globex
    logs: list[str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


class _Collect(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


@pytest.fixture
def api(store_url: str, tmp_path: Path) -> Iterator[Api]:
    engine = migrated(store_url)
    made = {who: keys.PREFIX + CANARY + who + keys.new_key()[6:] for who in
            ("operator", "acme", "globex")}
    lines = [keys.entry_line(keys.KeyEntry("ops", keys.hash_key(made["operator"]), "operator"))]
    lines += [keys.entry_line(keys.KeyEntry(f"{p}-erp", keys.hash_key(made[p]), "partner", p))
              for p in ("acme", "globex")]
    key_file = tmp_path / "api-keys.yaml"
    key_file.write_text("keys:\n" + "\n".join(lines) + "\n")
    settings = ApiSettings(store_url=store_url, api_keys_file=key_file,
                           max_body_bytes=MAX_BODY)
    logs: list[str] = []
    handler = _Collect(logs)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # SQL with its parameters: a key written anywhere would show up here too.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        with serving(create_app(settings), log_config=None, log_level="debug") as url, \
                httpx.Client(base_url=url, timeout=60) as client:
            yield Api(client, engine, made, logs)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
        engine.dispose()


def _replay_rows(engine: Engine) -> int:
    with db.transaction(engine, write=False) as s:
        return len(s.scalars(select(Audit.id).where(Audit.action == "dead_letter.replay")).all())


def test_r7_replay_100_parked_deliveries_once_each(api: Api) -> None:
    ids = seed.seed_many(api.engine, 100)
    body = {"filter": "stage=deliver partner=acme", "reason": "ERP fixed the 422"}
    assert api.client.post("/v1/dead-letters/replay", json=body,
                           headers=api.as_("acme")).status_code == 403
    r = api.client.post("/v1/dead-letters/replay", json=body, headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    assert (r.json()["matched"], r.json()["done"]) == (100, 100)
    assert seed.counts(api.engine) == {"work_items": 100, "audit": 100, "replayed": 100,
                                       "pending_deliveries": 100}
    # Again, by filter and by id: nothing is parked any more, so nothing happens.
    again = api.client.post("/v1/dead-letters/replay", json=body, headers=api.as_("operator"))
    assert again.json()["matched"] == 0
    one = api.client.post(f"/v1/dead-letters/{ids[0]}/replay", json={"reason": "again"},
                          headers=api.as_("operator"))
    assert one.status_code == 409
    assert seed.counts(api.engine)["work_items"] == 100 and _replay_rows(api.engine) == 100
    with db.transaction(api.engine, write=False) as s:
        assert set(s.scalars(select(Audit.actor).where(
            Audit.action == "dead_letter.replay"))) == {"api:ops"}


def test_r7_two_replays_of_one_item_at_once_make_one_work_item(api: Api) -> None:
    ids = seed.seed_many(api.engine, 10)
    barrier = threading.Barrier(2)

    def replay(dl_id: int) -> int:
        barrier.wait()
        return api.client.post(f"/v1/dead-letters/{dl_id}/replay", json={"reason": "race"},
                               headers=api.as_("operator")).status_code

    with ThreadPoolExecutor(2) as pool:
        for dl_id in ids:
            codes = sorted(pool.map(replay, [dl_id, dl_id]))
            assert codes == [200, 409], (dl_id, codes)
    assert seed.counts(api.engine) == {"work_items": 10, "audit": 10, "replayed": 10,
                                       "pending_deliveries": 10}


def test_s4_every_endpoint_for_own_partner_other_partner_and_operator(api: Api) -> None:
    with db.transaction(api.engine) as s:
        acme = seed.parked_delivery(s, partner="acme")
        spare = seed.parked_delivery(s, partner="acme")
    m, d = acme.message_id, acme.id
    missing = 10**12
    replay_dry = {"dry_run": True}
    cases = [
        ("GET", "/healthz", None, {"acme": 200, "globex": 200, "operator": 200}),
        ("GET", "/v1/dead-letters", None, {"acme": 403, "globex": 403, "operator": 200}),
        ("GET", f"/v1/dead-letters/{d}", None, {"acme": 403, "globex": 403, "operator": 200}),
        ("GET", f"/v1/dead-letters/{missing}", None,
         {"acme": 403, "globex": 403, "operator": 404}),
        ("POST", f"/v1/dead-letters/{d}/replay", replay_dry,
         {"acme": 403, "globex": 403, "operator": 200}),
        ("POST", "/v1/dead-letters/replay", {"filter": "partner=acme", "dry_run": True},
         {"acme": 403, "globex": 403, "operator": 200}),
        ("POST", f"/v1/dead-letters/{spare.id}/discard", {"reason": "sent by phone"},
         {"acme": 403, "globex": 403, "operator": 200}),
        ("GET", f"/v1/messages/{m}", None, {"acme": 200, "globex": 404, "operator": 200}),
        ("GET", f"/v1/messages/{missing}", None, {"acme": 404, "globex": 404, "operator": 404}),
    ]
    for method, path, body, expected in cases:
        for who, code in expected.items():
            r = api.client.request(method, path, json=body, headers=api.as_(who))
            assert r.status_code == code, (method, path, who, r.text)
            if code >= 400:
                assert r.headers["content-type"] == "application/problem+json"
    # Another partner's message answers exactly like a message that does not exist.
    other = api.client.get(f"/v1/messages/{m}", headers=api.as_("globex")).json()
    assert other["detail"] == f"no message {m}"
    own = api.client.get(f"/v1/messages/{m}", headers=api.as_("acme")).json()
    assert [e["what"] for e in own["timeline"]][:2] == ["received", "event"]
    # The operator's discard is in the partner's timeline, without who or why.
    spare_view = api.client.get(f"/v1/messages/{spare.message_id}",
                                headers=api.as_("acme")).json()
    (discarded,) = [e for e in spare_view["timeline"] if e["what"] == "discarded"]
    assert discarded["detail"] == ""


BAD_INPUT = [
    ("GET", "/v1/dead-letters/abc", {}, 422),
    ("GET", "/v1/dead-letters/99999999999999999999", {}, 422),
    ("GET", "/v1/messages/0", {}, 422),
    ("GET", "/v1/dead-letters?stage=parse", {}, 400),
    ("GET", "/v1/dead-letters?since=yesterday", {}, 400),
    ("GET", "/v1/dead-letters?limit=100000", {}, 422),
    ("GET", "/v1/dead-letters?reason=" + "x" * 300, {}, 422),
    ("GET", "/v1/dead-letters?partner=%00%ff", {}, 400),
    ("GET", "/v1/dead-letters?reason=a%00b", {}, 400),
    ("POST", "/v1/dead-letters/1/discard", {"json": {"reason": "a\u0000b"}}, 422),
    ("POST", "/v1/dead-letters/replay", {"json": {"ids": [1], "reason": "\u0000"}}, 422),
    ("POST", "/v1/dead-letters/replay", {"content": b"{not json"}, 422),
    ("POST", "/v1/dead-letters/replay", {"json": {"filter": "colour=red", "reason": "x"}}, 400),
    ("POST", "/v1/dead-letters/replay", {"json": {"filter": "", "reason": "x"}}, 400),
    ("POST", "/v1/dead-letters/replay", {"json": {"reason": "x"}}, 422),
    ("POST", "/v1/dead-letters/replay", {"json": {"filter": "stage=map"}}, 400),
    ("POST", "/v1/dead-letters/1/discard", {"json": {}}, 422),
    ("POST", "/v1/dead-letters/1/discard", {"json": {"reason": ""}}, 422),
    ("POST", "/v1/dead-letters/replay", {"content": b"x" * (MAX_BODY + 1)}, 413),
    ("POST", "/v1/dead-letters/replay",
     {"content": [b"{" + b" " * 1000] * 10}, 413),  # chunked: no Content-Length
]


def test_bad_input_is_a_4xx_problem_never_a_5xx(api: Api) -> None:
    seed.seed_many(api.engine, 1)
    for method, path, kwargs, code in BAD_INPUT:
        r = api.client.request(method, path, headers=api.as_("operator"), **kwargs)
        assert r.status_code == code, (method, path[:60], r.text)
        assert r.json()["status"] == code


def test_s5_refusals_are_audited_and_keys_never_leak(api: Api) -> None:
    seed.seed_many(api.engine, 1)
    wrong = keys.PREFIX + CANARY + "wrong0123456789"
    refused = [
        {},
        {"Authorization": f"Bearer {wrong}"},
        {"X-API-Key": wrong},
        {"Authorization": f"Basic {wrong}"},
        {"X-API-Key": "x" * 5000},
    ]
    for headers in refused:
        r = api.client.get("/v1/dead-letters", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
    with db.transaction(api.engine, write=False) as s:
        rows = s.scalars(select(Audit).where(Audit.action == "api.auth_failed")).all()
    assert len(rows) == len(refused)
    assert {r.actor for r in rows} == {"api:anonymous@127.0.0.1"}
    assert {r.target for r in rows} == {"GET /v1/dead-letters"}
    # Both headers work for a good key.
    assert api.client.get("/v1/dead-letters", headers={"X-API-Key": api.keys["operator"]}
                          ).status_code == 200
    r = api.client.post("/v1/dead-letters/replay", headers=api.as_("operator"),
                        json={"filter": "stage=deliver", "reason": "canary run"})
    assert r.json()["done"] == 1
    for who in ("acme", "globex"):
        api.client.get("/v1/messages/1", headers=api.as_(who))
    # The canary: no key, good or bad, in any log line or any row of any table.
    assert api.logs, "the log capture saw nothing"
    leaks = [line for line in api.logs if CANARY in line]
    assert not leaks, leaks[:3]
    with db.transaction(api.engine, write=False) as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)):
                assert CANARY not in repr(tuple(row)), table.name
