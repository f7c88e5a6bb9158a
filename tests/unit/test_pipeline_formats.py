"""The validate and map stages on CSV and JSON, and the verdicts validate keeps for map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway import partners, settings
from gateway.pipeline import stages
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import claims, db, payloads, receive, set_verdicts
from gateway.store.models import DeadLetter, Event, Message, SetVerdict, WorkItem
from mappings import verdicts as verdicts_mod
from mappings.x12 import validator
from tests.conftest import REPO
from tests.pipeline_support import SAMPLES
from tests.store_support import migrated

pytestmark = pytest.mark.unit
ACME = (SAMPLES / "acme-850-4010.edi").read_bytes()
ASN = (REPO / "mappings" / "partners" / "evergreen" / "examples" / "asn-EG-55012.csv").read_bytes()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


def _context(tmp_path: Path, engine: Engine) -> Context:
    conf: dict[str, Any] = {
        "acks": {"folder": str(tmp_path / "outbox")},
        "destinations": {"erp": {"type": "file", "config": {"path": str(tmp_path / "e.jsonl")}}},
    }
    return Context(settings.parse(conf, {}, None),
                   partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                   engine)


def _receive(engine: Engine, data: bytes, partner: str, name: str) -> int:
    with db.transaction(engine) as s:
        got = receive.receive(s, partner=partner, channel="test", source_name=name, data=data)
        claims.enqueue(s, "validate", message_id=got.message.id)
        return got.message.id


def _run(ctx: Context, kind: str, message_id: int) -> None:
    """The one pending item of kind for the message, run as the worker runs it."""
    with db.transaction(ctx.engine) as s:
        item = s.scalars(select(WorkItem).where(WorkItem.kind == kind,
                                                WorkItem.message_id == message_id,
                                                WorkItem.status == "pending")).one()
        stages.TRANSACTIONAL[kind](ctx, s, item)
        item.status = "done"


def _events(engine: Engine) -> list[Event]:
    with db.transaction(engine, write=False) as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


def _letters(engine: Engine) -> list[DeadLetter]:
    with db.transaction(engine, write=False) as s:
        return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_map_reads_the_verdicts_validate_kept_and_never_validates_again(
        tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    message_id = _receive(engine, ACME, "acme", "po.edi")
    _run(_context(tmp_path, engine), "validate", message_id)
    with db.transaction(engine, write=False) as s:
        [kept] = list(set_verdicts.read(lambda: db.transaction(engine, write=False), message_id))
        assert s.scalar(select(SetVerdict.chunk).where(SetVerdict.message_id == message_id)) == 0
    assert kept.accepted and kept.group == "PO" and kept.errors == ""

    def no_second_validation(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the map stage validated the file again")

    monkeypatch.setattr(validator, "validate", no_second_validation)
    # Another process (a fresh context: nothing in memory) maps it.
    _run(_context(tmp_path, engine), "map", message_id)
    [event] = _events(engine)
    assert event.type == "com.edi-gateway.purchase_order.v1"


def test_a_set_the_kept_verdict_rejects_is_not_mapped(tmp_path: Path, engine: Engine) -> None:
    message_id = _receive(engine, ACME, "acme", "po.edi")
    ctx = _context(tmp_path, engine)
    _run(ctx, "validate", message_id)
    with db.transaction(engine) as s:
        [kept] = list(set_verdicts.read(lambda: db.transaction(engine, write=False), message_id))
        set_verdicts.save(s, message_id, [verdicts_mod.Verdict(kept.position, False, "PO", "no")])
    _run(ctx, "map", message_id)
    assert _events(engine) == []


def test_verdicts_round_trip_in_chunks() -> None:
    many = [verdicts_mod.Verdict(n * 7, n % 3 != 0, "PO" if n % 2 else "IN",
                                 "" if n % 3 else f"BEG (line {n}):\tbad\nvalue")
            for n in range(verdicts_mod.CHUNK * 2 + 5)]
    chunks = list(verdicts_mod.encode(many))
    assert len(chunks) == 3
    back = [v for c in chunks for v in verdicts_mod.decode(c)]
    assert [(v.position, v.accepted, v.group) for v in back] == [
        (v.position, v.accepted, v.group) for v in many]
    assert back[0].errors == "BEG (line 0): bad value"  # one line, whatever the text
    lookup = verdicts_mod.Lookup(back)
    assert lookup.get(7) == back[1] and lookup.get(8) is None and lookup.get(14) == back[2]


def test_a_csv_with_one_bad_document_delivers_the_good_one(tmp_path: Path,
                                                          engine: Engine) -> None:
    second = b"\n".join(line.replace(b"EG-55012", b"EG-55013").replace(b",12,EA,", b",many,EA,")
                        for line in ASN.splitlines()[1:])
    message_id = _receive(engine, ASN + second + b"\n", "evergreen", "two.csv")
    ctx = _context(tmp_path, engine)
    Worker(ctx, "w1").run(until_idle=True)
    [event] = _events(engine)
    assert event.subject == "EG-55012"
    [letter] = _letters(engine)
    assert letter.stage == "validate"
    assert "two.csv: document 2 (shipment_id EG-55013) rows 6-9" in letter.reason
    assert "'many' is not a number at two.csv row 6 column 12 (qty)" in letter.reason
    with db.transaction(engine, write=False) as s:
        assert s.get_one(Message, message_id).status != "dead"  # one document went on


def test_a_document_that_cannot_be_read_or_mapped_is_dead_lettered_saying_why(
        tmp_path: Path, engine: Engine) -> None:
    _receive(engine, b'{"order": 1}', "acme", "order.json")  # acme sends X12 only
    _receive(engine, b"number,total\nBL-1,9.99\n", "brightline", "invoice.csv")  # JSON only
    _receive(engine, b"shipment_id,qty\n", "evergreen", "header-only.csv")
    Worker(_context(tmp_path, engine), "w1").run(until_idle=True)
    reasons = sorted(d.reason for d in _letters(engine))
    assert reasons == [
        "header-only.csv (csv): no document in it (CSV: no data row under the header)",
        "invoice.csv: cannot be read as JSON: Expecting value: line 1 column 1 (char 0)",
        "order.json (json): the partner has no json mapping (its mappings: none); add one "
        "under mappings: in its partner file"]


def test_a_large_csv_streams_through_the_same_checks(tmp_path: Path, engine: Engine) -> None:
    header, *rows = ASN.splitlines()
    body = [header]
    n = 0
    while sum(len(b) + 1 for b in body) <= payloads.PART_BYTES:
        n += 1
        body += [r.replace(b"EG-55012", f"EG-{n:05d}".encode()) for r in rows]
    data = b"\n".join(body) + b"\n"
    message_id = _receive(engine, data, "evergreen", "big.csv")
    with db.transaction(engine, write=False) as s:
        assert payloads.large_messages(s, [message_id]) == {message_id}
    Worker(_context(tmp_path, engine), "w1").run(until_idle=True)
    assert _letters(engine) == []
    assert len(_events(engine)) == n
