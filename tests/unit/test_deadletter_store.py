"""Dead letters in a SQLite store: list, show, replay (once only), dry run, discard, audit."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from canonical.errors import GatewayError
from deadletter import filters
from gateway import deadletters
from gateway.dry_run import Remapper
from gateway.store import db
from gateway.store.models import Audit, Delivery, Event, Message, WorkItem
from tests import deadletter_support as seed
from tests.conftest import REPO
from tests.store_support import T0, migrated

pytestmark = pytest.mark.unit
NOW = T0 + timedelta(hours=3)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


def test_list_filters_and_pages_newest_first(engine: Engine) -> None:
    ids = seed.seed_many(engine, 5)
    with db.transaction(engine) as s:
        other = seed.parked_delivery(s, partner="globex", reason="read timed out").id
        msg = seed.message(s)
        seed.park(s, stage="map", message_id=msg.id, reason="no mapping for 860")
    with db.transaction(engine, write=False) as s:
        page = deadletters.list_page(s, filters.parse("stage=deliver"), limit=4)
        assert [i["id"] for i in page.items] == [other, *ids[::-1][:3]]
        rest = deadletters.list_page(s, filters.parse("stage=deliver"), limit=4,
                                     before=page.next_before)
        assert [i["id"] for i in rest.items] == ids[:2][::-1] and rest.next_before is None
        got = deadletters.list_page(s, filters.parse("partner=globex reason~TIMED"))
        assert [(i["id"], i["partner"]) for i in got.items] == [(other, "globex")]
        since = filters.parse("since=2024-03-01T12:03Z stage=deliver partner=acme")
        assert [i["id"] for i in deadletters.list_page(s, since).items] == ids[:2:-1]
        # LIKE wildcards in the text are literal.
        assert deadletters.list_page(s, filters.parse("reason~%")).items == []


def test_show_has_the_raw_input_error_chain_and_timeline(engine: Engine) -> None:
    with db.transaction(engine) as s:
        dl = seed.parked_delivery(s)
    with db.transaction(engine, write=False) as s:
        got = deadletters.show(s, dl.id)
    assert got["raw"]["encoding"] == "text" and got["raw"]["content"].startswith("ISA*acme*")
    assert got["error_chain"] == [{"type": "DeliveryRejected", "message": "HTTP 422: bad po"}]
    assert got["delivery"]["destination"] == "erp:orders"
    assert [e["what"] for e in got["timeline"]] == ["received", "event", "outbox", "attempts",
                                                    "parked"]
    with db.transaction(engine, write=False) as s, pytest.raises(deadletters.NotFound):
        deadletters.show(s, 999)


def test_raw_view_text_hex_and_limits() -> None:
    assert deadletters.raw_view(b"ISA*00~")["content"] == "ISA*00~"
    binary = deadletters.raw_view(b"\x00\xff" * 1000)
    assert binary["encoding"] == "hex" and binary["truncated"]
    assert binary["content"].startswith("00 ff 00 ff")
    big = deadletters.raw_view("é".encode() * 40000, text_limit=1001)
    assert big["encoding"] == "text" and big["truncated"] and len(big["content"]) == 500


def test_replay_of_a_delivery_enqueues_resets_and_audits(engine: Engine) -> None:
    with db.transaction(engine) as s:
        dl = seed.parked_delivery(s)
    (out,) = deadletters.replay(engine, [dl.id], actor="cli:ops", reason="ERP fixed")
    assert out.result == "replayed" and out.stage == "deliver"
    with db.transaction(engine, write=False) as s:
        item = s.get_one(WorkItem, out.work_item_id)
        assert (item.kind, item.delivery_id, item.message_id, item.status) == (
            "deliver", dl.delivery_id, dl.message_id, "pending")
        delivery = s.get_one(Delivery, dl.delivery_id)
        assert (delivery.status, delivery.attempts) == ("pending", 1)  # attempts kept
        (row,) = s.scalars(select(Audit)).all()
        assert (row.actor, row.action, row.target, row.reason) == (
            "cli:ops", "dead_letter.replay", f"dead_letter:{dl.id}", "ERP fixed")
        assert row.details["work_item_id"] == item.id
        assert s.get_one(Message, dl.message_id).replays == 1
    # Again: nothing more happens.
    (again,) = deadletters.replay(engine, [dl.id, ], actor="cli:ops", reason="again")
    assert again.result == "skipped" and "replayed, not parked" in again.detail
    assert seed.counts(engine)["work_items"] == 1 and seed.counts(engine)["audit"] == 1
    (missing,) = deadletters.replay(engine, [12345], actor="cli:ops", reason="x")
    assert missing.result == "not-found"


def test_two_replays_at_once_make_one_work_item(engine: Engine) -> None:
    ids = seed.seed_many(engine, 20)
    barrier = threading.Barrier(2)
    results: list[list[deadletters.Outcome]] = [[], []]

    def go(n: int) -> None:
        barrier.wait()
        results[n] = deadletters.replay(engine, ids, actor=f"cli:op{n}", reason="race")

    threads = [threading.Thread(target=go, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replayed = [o for r in results for o in r if o.result == "replayed"]
    assert len(replayed) == 20
    assert seed.counts(engine) == {"work_items": 20, "audit": 20, "replayed": 20,
                                   "pending_deliveries": 20}


def test_replay_needs_a_reason_and_a_filter_a_condition(engine: Engine) -> None:
    with pytest.raises(GatewayError, match="needs a reason"):
        deadletters.replay(engine, [1], actor="cli:ops", reason=" ")
    with db.transaction(engine, write=False) as s, pytest.raises(filters.FilterError):
        deadletters.matching_ids(s, filters.parse(""))


def test_filter_replay_takes_only_parked_ones(engine: Engine) -> None:
    ids = seed.seed_many(engine, 3)
    deadletters.discard(engine, ids[0], actor="cli:ops", reason="duplicate order")
    with db.transaction(engine, write=False) as s:
        assert deadletters.matching_ids(s, filters.parse("stage=deliver status=all")) == ids[1:]


def test_discard_needs_a_reason_and_writes_the_audit_row(engine: Engine) -> None:
    (dl_id,) = seed.seed_many(engine, 1)
    with pytest.raises(GatewayError, match="needs a reason"):
        deadletters.discard(engine, dl_id, actor="cli:ops", reason="")
    out = deadletters.discard(engine, dl_id, actor="cli:ops", reason="sent by phone")
    assert out.result == "discarded"
    assert deadletters.discard(engine, dl_id, actor="cli:ops", reason="x").result == "skipped"
    (replayed,) = deadletters.replay(engine, [dl_id], actor="cli:ops", reason="x")
    assert replayed.result == "skipped"
    c = seed.counts(engine)
    assert (c["audit"], c["work_items"]) == (1, 0)


def test_dry_run_maps_today_and_diffs_against_the_stored_event(engine: Engine) -> None:
    raw = (REPO / "samples" / "x12" / "acme-850-4010.edi").read_bytes()
    remapper = Remapper(partners_dir=REPO / "conf" / "partners",
                        mappings_root=REPO / "mappings")
    today = remapper.remap(partner="acme", source_name="po.edi", data=raw)
    assert today.events and not today.failures
    stored = dict(today.events[0], data=dict(today.events[0]["data"], po_number="OLD-1"))
    with db.transaction(engine) as s:
        msg = seed.message(s, data=raw)
        seed.event(s, msg, stored)
        dl = seed.park(s, stage="map", message_id=msg.id, reason="schema")
    before = seed.counts(engine)
    (out,) = deadletters.replay(engine, [dl.id], actor="cli:ops", reason=None, dry_run=True,
                                remapper=remapper)
    assert out.result == "would-replay" and out.stage == "map"
    (ev,) = [e for e in out.dry_run["events"] if e["event"]["id"] == stored["id"]]
    new_po = today.events[0]["data"]["po_number"]
    assert ev["stored"] and ev["differences"] == [f'~ data.po_number: "OLD-1" -> "{new_po}"']
    assert seed.counts(engine) == before  # nothing written
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(Event.envelope).where(Event.event_id == stored["id"])) == stored
