"""The fused batch (gateway/pipeline/fused) gives what the one-by-one stages give, on SQLite.

The same inputs go into two stores: one worker takes them one item at a time (validate,
map and route items of their own), the other as one batch (fused). What each store then
holds must be the same: interchanges and their verdicts, acknowledgments and their
control numbers and texts, events, deliveries, dead letters (stage, reason, error chain),
messages' stages and statuses, and the ack and deliver items. The PostgreSQL run of the
same comparison is tests/integration/test_pipeline_fused_postgres.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from channels.base import DeliveryReceipt
from gateway import partners, settings
from gateway.pipeline import fused
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import claims, db, receive
from gateway.store.models import (
    Acknowledgment,
    ControlNumber,
    DeadLetter,
    Delivery,
    Event,
    Interchange,
    Message,
    Payload,
    WorkItem,
)
from tests.conftest import REPO
from tests.pipeline_support import SAMPLES
from tests.store_support import migrated

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ACME = (SAMPLES / "acme-850-4010.edi").read_bytes()
ASN = (REPO / "mappings" / "partners" / "evergreen" / "examples" / "asn-EG-55012.csv").read_bytes()
INVOICE = (REPO / "mappings" / "partners" / "brightline" / "examples"
           / "invoice-BL-20417.json").read_bytes()


def _acme(isa13: int, body: bytes = ACME) -> bytes:
    return body.replace(b"000001001", f"{isa13:09d}".encode())


def mixed_inputs() -> list[tuple[str, str, bytes]]:
    """(partner, file name, bytes): a batch with each way a message can end."""
    bad_asn = b"\n".join(line.replace(b"EG-55012", b"EG-55013").replace(b",12,EA,", b",many,EA,")
                         for line in ASN.splitlines()[1:])
    return [
        ("acme", "good.edi", _acme(11)),
        ("acme", "ta1-rejected.edi", _acme(12).replace(b"IEA*1*000000012~", b"IEA*1*000000099~")),
        ("acme", "set-rejected.edi", _acme(13).replace(b"SE*20*", b"SE*21*")),
        # The same interchange as good.edi in other bytes (a line break after each segment).
        ("acme", "duplicate.edi", _acme(11).replace(b"~", b"~\n")),
        # The same control number with other content: held for an operator.
        ("acme", "quarantined.edi", _acme(11).replace(b"4500012345", b"4500099999")),
        ("acme", "unknown-sender.edi", _acme(14).replace(b"ZZ*ACMERETAIL     *",
                                                        b"ZZ*NOBODY         *", 1)),
        ("acme", "good-2.edi", _acme(15)),
        ("acme", "not-x12.json", b'{"order": 1}'),
        ("evergreen", "asn.csv", ASN),
        ("evergreen", "two.csv", ASN + bad_asn + b"\n"),
        ("evergreen", "header-only.csv", b"shipment_id,qty\n"),
        ("brightline", "invoice.json", INVOICE),
        ("oldco", "from-a-lost-partner.edi", _acme(16)),
        ("acme", "two-interchanges.edi", _acme(17) + _acme(13)),  # the second one seen before
        ("acme", "twice.edi", _acme(18) + _acme(18)),  # the same interchange twice in one file
    ]


class Output:
    """Takes every event."""

    endpoint = "erp:fake"

    def __init__(self) -> None:
        self.written: list[str] = []

    def connect(self) -> None:
        pass

    def write(self, event: Any) -> DeliveryReceipt:
        self.written.append(event.id)
        return DeliveryReceipt(event.id, self.endpoint, status=201)

    def close(self) -> None:
        pass


def context(tmp_path: Path, engine: Engine, *, batch: int) -> Context:
    conf: dict[str, Any] = {
        "acks": {"folder": str(tmp_path / "outbox")},
        "destinations": {"erp": {"type": "file", "config": {"path": str(tmp_path / "e.jsonl")}},
                         "audit": {"type": "file", "config": {"path": str(tmp_path / "a.jsonl")}}},
        # Ship notices go nowhere: the route stage's dead letter.
        "routes": [{"match": {"type": "purchase_order"}, "to": ["erp", "audit"]},
                   {"match": {"type": "invoice"}, "to": ["erp"]}],
        "workers": {"batch": batch},
    }
    ctx = Context(settings.parse(conf, {}, None),
                  partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                  engine)
    ctx.outputs["erp"] = Output()  # type: ignore[assignment]
    ctx.outputs["audit"] = Output()  # type: ignore[assignment]
    return ctx


def receive_all(engine: Engine, inputs: list[tuple[str, str, bytes]]) -> list[int]:
    ids = []
    with db.transaction(engine) as s:
        for partner, name, data in inputs:
            got = receive.receive(s, partner=partner, channel="test", source_name=name, data=data)
            claims.enqueue(s, "validate", message_id=got.message.id)
            ids.append(got.message.id)
    return ids


def snapshot(engine: Engine) -> dict[str, Any]:
    """What the store holds, with row ids replaced by the message's place (ids and item
    kinds may differ between the two ways; nothing else may)."""
    with db.transaction(engine, write=False) as s:
        place = {m: n for n, m in enumerate(s.scalars(select(Message.id).order_by(Message.id)))}
        ic_place = {i.id: (place[i.message_id], n) for n, i in enumerate(
            s.scalars(select(Interchange).order_by(Interchange.id)))}
        texts = dict(s.execute(select(Payload.sha256, Payload.data)).all())
        return {
            "messages": [(place[m.id], m.stage, m.status)
                         for m in s.scalars(select(Message).order_by(Message.id))],
            "interchanges": [(place[i.message_id], i.isa13, i.status, i.content_sha256,
                              ic_place[i.duplicate_of_id][0] if i.duplicate_of_id else None)
                             for i in s.scalars(select(Interchange).order_by(Interchange.id))],
            "acks": [(place[a.message_id], ic_place[a.interchange_id][0], a.kind,
                      a.answers_interchange, a.answers_group, a.control_number, a.filename,
                      texts[a.payload_sha256], a.sent_at is not None)
                     for a in s.scalars(select(Acknowledgment).order_by(Acknowledgment.id))],
            "control_numbers": sorted((c.scope, c.kind, c.last)
                                      for c in s.scalars(select(ControlNumber))),
            "events": sorted((place[e.message_id], e.event_id, e.type, e.subject,
                              repr(sorted(e.envelope.items())))
                             for e in s.scalars(select(Event))),
            "deliveries": sorted((d.event_id, d.destination, d.status, d.attempts)
                                 for d in s.scalars(select(Delivery))),
            "dead_letters": sorted((place[d.message_id] if d.message_id else None, d.stage,
                                    d.reason, repr(d.error_chain), d.endpoint, d.attempts,
                                    d.status) for d in s.scalars(select(DeadLetter))),
            "items": sorted((place[w.message_id] if w.message_id else None, w.kind, w.status)
                            for w in s.scalars(select(WorkItem))
                            if w.kind not in ("map", "route")),
        }


def run_both(tmp_path: Path, one_by_one: Engine, batched: Engine,
             monkeypatch: pytest.MonkeyPatch,
             inputs: list[tuple[str, str, bytes]]) -> tuple[dict[str, Any], dict[str, Any],
                                                            list[str]]:
    """The inputs through each store, one way each; the two snapshots and the batched
    worker's path (fused writes seen)."""
    monkeypatch.setattr(db, "utcnow", lambda: NOW)  # the acks' date and time alike
    snaps = []
    writes: list[str] = []
    real_write = fused.write

    def spy(ctx: Context, s: Any, worker: str, batch: Any, numbers: Any) -> None:
        writes.append(",".join(str(c.item.id) for c in batch))
        real_write(ctx, s, worker, batch, numbers)

    monkeypatch.setattr(fused, "write", spy)
    for name, engine, batch in (("one", one_by_one, 1), ("batch", batched, 50)):
        receive_all(engine, inputs)
        ctx = context(tmp_path / name, engine, batch=batch)
        Worker(ctx, "w1").run(until_idle=True)
        snaps.append(snapshot(engine))
    return snaps[0], snaps[1], writes


def compare(one: dict[str, Any], batched: dict[str, Any]) -> None:
    for key in one:
        assert batched[key] == one[key], key


@pytest.fixture
def engines(tmp_path: Path) -> tuple[Engine, Engine]:
    return (migrated(f"sqlite:///{tmp_path / 'one.db'}"),
            migrated(f"sqlite:///{tmp_path / 'batch.db'}"))


def test_a_mixed_batch_gives_what_the_stages_give_one_by_one(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = mixed_inputs()
    one, batched, writes = run_both(tmp_path, *engines, monkeypatch, inputs)
    assert len(writes) == 1 and len(writes[0].split(",")) == len(inputs)  # one fused batch
    compare(one, batched)
    # The comparison covers each way a message ends (so that it cannot pass on nothing).
    statuses = {status for _, _, status in one["messages"]}
    assert statuses == {"done", "dead", "quarantined"}
    stages_ = {d[1] for d in one["dead_letters"]}
    assert stages_ == {"validate", "route"}
    assert {i[2] for i in one["interchanges"]} == {"accepted", "duplicate", "quarantined"}
    assert {a[2] for a in one["acks"]} == {"997", "TA1"}
    assert len(one["events"]) == 7 and len(one["deliveries"]) == 9


def test_running_the_batch_again_changes_nothing(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay of every validate item (or a crash after the commit) adds nothing: the
    interchanges recorded are kept, acks are made once, events, deliveries and items once."""
    inputs = mixed_inputs()
    _, batched, _ = run_both(tmp_path, *engines, monkeypatch, inputs)
    _, engine = engines
    with db.transaction(engine) as s:
        ids = list(s.scalars(select(Message.id).order_by(Message.id)))
        claims.enqueue_many(s, "validate", ids)
    ctx = context(tmp_path / "again", engine, batch=50)
    Worker(ctx, "w1").run(until_idle=True)
    again = snapshot(engine)
    for key in ("interchanges", "acks", "control_numbers", "events", "deliveries"):
        assert again[key] == batched[key], key
    # No ack or deliver item again: only the validate items of the replay.
    assert [i for i in again["items"] if i[1] != "validate"] == [
        i for i in batched["items"] if i[1] != "validate"]
    # Each message's dead letters once more (a replay says again what is wrong), no others.
    assert sorted(set(again["dead_letters"])) == sorted(set(batched["dead_letters"]))
    assert ctx.outputs["erp"].written == []  # type: ignore[attr-defined]


def test_a_message_whose_computation_fails_fails_alone(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    _, engine = engines
    ids = receive_all(engine, [("acme", f"{n}.edi", _acme(n)) for n in (21, 22, 23)])
    real = fused.compute
    calls: list[int] = []

    def flaky(ctx: Context, item: WorkItem, row: Any, numbers: Any) -> Any:
        calls.append(item.message_id)
        if item.message_id == ids[1] and calls.count(ids[1]) == 1:
            raise RuntimeError("a bug, once")
        return real(ctx, item, row, numbers)

    monkeypatch.setattr(fused, "compute", flaky)
    ctx = context(tmp_path, engine, batch=50)
    commits: list[int] = []
    sa_event.listen(engine, "commit", lambda conn: commits.append(1))
    worker = Worker(ctx, "w1")
    assert worker.step()
    assert len(commits) == 4  # the claim, the read, the batch, the failure's record
    with db.transaction(engine, write=False) as s:
        assert set(s.scalars(select(Event.message_id))) == {ids[0], ids[2]}
        item = s.scalars(select(WorkItem).where(WorkItem.message_id == ids[1])).one()
        assert (item.kind, item.status, item.last_error) == (
            "validate", "pending", "RuntimeError: a bug, once")
    with db.transaction(engine) as s:  # its retry delay over
        s.execute(update(WorkItem).where(WorkItem.status == "pending")
                  .values(run_after=db.utcnow()))
    worker.run(until_idle=True)
    with db.transaction(engine, write=False) as s:
        assert set(s.scalars(select(Event.message_id))) == set(ids)
        assert s.scalars(select(DeadLetter)).all() == []


def test_a_batch_whose_write_fails_goes_one_by_one(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    one_engine, engine = engines
    inputs = mixed_inputs()

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug in the batch's write")

    monkeypatch.setattr(fused, "write", broken)
    monkeypatch.setattr(db, "utcnow", lambda: NOW)
    for e, batch in ((one_engine, 1), (engine, 50)):
        receive_all(e, inputs)
        Worker(context(tmp_path / str(batch), e, batch=batch), "w1").run(until_idle=True)
    assert f"a batch of {len(inputs)} validate items failed (RuntimeError" in caplog.text
    compare(snapshot(one_engine), snapshot(engine))


def test_acks_built_ahead_are_built_again_when_another_took_the_numbers(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker reserves acme's numbers between this batch's read and its write: the
    acks are built again with the numbers the batch reserved, none used twice."""
    _, engine = engines
    receive_all(engine, [("acme", f"{n}.edi", _acme(n)) for n in (31, 32)])
    real = fused.write

    def meanwhile(ctx: Context, s: Any, worker: str, batch: Any, numbers: Any) -> None:
        s.execute(update(ControlNumber).where(ControlNumber.scope == "partner:acme")
                  .values(last=ControlNumber.last + 100))
        real(ctx, s, worker, batch, numbers)

    with db.transaction(engine) as s:  # acme has had numbers before
        from gateway.store import sequences
        sequences.reserve(s, "partner:acme", {"interchange": 5, "group": 5, "set": 5})
    monkeypatch.setattr(fused, "write", meanwhile)
    Worker(context(tmp_path, engine, batch=50), "w1").run(until_idle=True)
    with db.transaction(engine, write=False) as s:
        acks = s.execute(select(Acknowledgment.control_number, Payload.data)
                         .join(Payload, Payload.sha256 == Acknowledgment.payload_sha256)
                         .order_by(Acknowledgment.id)).all()
    assert [n for n, _ in acks] == [106, 107, 108, 109]  # TA1 and 997 of each, after 105
    for number, text in acks:
        assert f"*{number:09d}*" in text.decode("ascii")
