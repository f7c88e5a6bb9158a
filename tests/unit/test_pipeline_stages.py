"""Each stage on SQLite: its output in the store, and the same again when it is replayed."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from canonical import errors
from canonical.envelope import Event as CloudEvent
from channels.base import DeliveryReceipt
from gateway import partners, settings
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import claims, db, receive
from gateway.store.models import (
    Acknowledgment,
    DeadLetter,
    Delivery,
    Event,
    Interchange,
    Message,
    WorkItem,
)
from tests.conftest import REPO
from tests.pipeline_support import SAMPLES
from tests.store_support import migrated

pytestmark = pytest.mark.unit
ACME = (SAMPLES / "acme-850-4010.edi").read_bytes()


class FakeOutput:
    """An output that records writes, or raises the errors it is given, one per write."""

    endpoint = "erp:fake"

    def __init__(self) -> None:
        self.written: list[str] = []
        self.fail_with: list[Exception] = []

    def connect(self) -> None:
        pass

    def write(self, event: CloudEvent) -> DeliveryReceipt:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.written.append(event.id)
        return DeliveryReceipt(event.id, self.endpoint, status=201)

    def close(self) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def ctx(tmp_path: Path, engine: Engine) -> Context:
    conf: dict[str, Any] = {
        "acks": {"folder": str(tmp_path / "outbox")},
        "destinations": {"erp": {"type": "file", "config": {"path": str(tmp_path / "e.jsonl")},
                                 "retry": {"maximum_redeliveries": 2, "jitter": 0}}},
    }
    c = Context(settings.parse(conf, {}, None),
                partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                engine)
    c.outputs["erp"] = FakeOutput()  # type: ignore[assignment]
    return c


def _receive(ctx: Context, data: bytes = ACME, partner: str = "acme") -> int:
    with db.transaction(ctx.engine) as s:
        got = receive.receive(s, partner=partner, channel="test", source_name="po.edi", data=data)
        claims.enqueue(s, "validate", message_id=got.message.id)
        return got.message.id


def _drain(ctx: Context) -> Worker:
    worker = Worker(ctx, "w1")
    worker.run(until_idle=True)
    return worker


def _count(ctx: Context, model: type, *where: Any) -> int:
    with db.transaction(ctx.engine, write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_one_file_flows_through_every_stage(ctx: Context, tmp_path: Path) -> None:
    _receive(ctx)
    _drain(ctx)
    assert ctx.outputs["erp"].written  # type: ignore[attr-defined]
    kinds = {}
    with db.transaction(ctx.engine, write=False) as s:
        for item in s.scalars(select(WorkItem)):
            kinds[item.kind] = item.status
    assert kinds == dict.fromkeys(("validate", "ack", "map", "route", "deliver"), "done")
    assert {p.name[:4] for p in (tmp_path / "outbox" / "acme").iterdir()} == {"997_", "TA1_"}


@pytest.mark.parametrize("kind", ["validate", "map", "route", "ack"])
def test_replaying_a_stage_changes_nothing(ctx: Context, tmp_path: Path, kind: str) -> None:
    message_id = _receive(ctx)
    _drain(ctx)
    files = sorted((tmp_path / "outbox" / "acme").iterdir())
    before = [_count(ctx, m) for m in (Interchange, Acknowledgment, Event, Delivery)]
    with db.transaction(ctx.engine) as s:
        claims.enqueue(s, kind, message_id=message_id)  # what the dead-letter replay does
    _drain(ctx)
    assert [_count(ctx, m) for m in (Interchange, Acknowledgment, Event, Delivery)] == before
    assert sorted((tmp_path / "outbox" / "acme").iterdir()) == files
    assert len(ctx.outputs["erp"].written) == 1  # type: ignore[attr-defined]
    assert _count(ctx, DeadLetter) == 0


def test_a_passing_delivery_failure_is_retried_later_with_attempts_kept(ctx: Context) -> None:
    out = ctx.outputs["erp"]
    out.fail_with = [errors.DeliveryUnavailable("503", status=503)]  # type: ignore[attr-defined]
    _receive(ctx)
    _drain(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        d = s.scalars(select(Delivery)).one()
        item = s.scalars(select(WorkItem).where(WorkItem.kind == "deliver")).one()
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, 503)
    assert item.status == "pending" and item.run_after > db.utcnow()
    assert out.written == []  # type: ignore[attr-defined]


def test_a_rejected_delivery_is_dead_lettered_at_once(ctx: Context) -> None:
    out = ctx.outputs["erp"]
    out.fail_with = [errors.DeliveryRejected("HTTP 422: bad", status=422)]  # type: ignore[attr-defined]
    _receive(ctx)
    _drain(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        d = s.scalars(select(Delivery)).one()
        letter = s.scalars(select(DeadLetter)).one()
    assert d.status == "dead"
    assert (letter.stage, letter.delivery_id, letter.attempts) == ("deliver", d.id, 1)
    assert letter.endpoint.startswith("erp") and letter.message_id is not None
    assert letter.error_chain[0] == {"type": "DeliveryRejected", "message": "HTTP 422: bad",
                                     "status": 422}


def test_replaying_a_dead_delivery_sends_it_once(ctx: Context) -> None:
    out = ctx.outputs["erp"]
    out.fail_with = [errors.DeliveryRejected("HTTP 400", status=400)]  # type: ignore[attr-defined]
    _receive(ctx)
    _drain(ctx)
    with db.transaction(ctx.engine) as s:  # the dead-letter tooling's replay of a delivery
        d = s.scalars(select(Delivery)).one()
        d.status = "pending"
        claims.enqueue(s, "deliver", message_id=None, delivery_id=d.id)
    _drain(ctx)
    with db.transaction(ctx.engine) as s:
        d = s.scalars(select(Delivery)).one()
        claims.enqueue(s, "deliver", delivery_id=d.id)  # a second replay of a delivered one
    _drain(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        d = s.scalars(select(Delivery)).one()
    assert (d.status, d.attempts) == ("delivered", 2)
    assert len(out.written) == 1  # type: ignore[attr-defined]


def test_an_event_no_route_matches_is_dead_lettered_at_route(ctx: Context) -> None:
    conf = {"destinations": {"erp": {"type": "file", "config": {"path": "x.jsonl"}}},
            "routes": [{"match": {"type": "invoice"}, "to": ["erp"]}]}
    ctx.settings = settings.parse(conf, {}, None)
    _receive(ctx)
    _drain(ctx)
    [letter] = _letters(ctx)
    assert letter.stage == "route" and letter.reason.startswith("no route matches")


def test_a_mapping_failure_is_dead_lettered_at_map(ctx: Context, tmp_path: Path) -> None:
    bad = tmp_path / "850.yaml"
    bad.write_text("format: x12\nevent: purchase_order\nnot_a_key: 1\n", encoding="utf-8")
    ctx.partners = partners.Partners([partners.Partner(
        id="acme", name="Acme", file="acme.yaml", isa_ids=(("ZZ", "ACMERETAIL"),),
        mappings={"850": bad})])
    _receive(ctx)
    _drain(ctx)
    letters = _letters(ctx)
    assert [d.stage for d in letters] == ["map"], [d.reason for d in letters]
    assert letters[0].reason.startswith("mapping failed") and str(bad) in letters[0].reason
    assert _count(ctx, Event) == 0 and _count(ctx, Acknowledgment) == 2  # the 997 still goes


class FakeClock:
    """The worker's monotonic clock, moved by the test only."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _freeze_batch_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Give the worker's batch timing (BATCH_SECONDS) a clock that stands still until moved."""
    from gateway.pipeline import worker as worker_mod

    clock = FakeClock()
    monkeypatch.setattr(worker_mod, "time", clock)
    return clock


def _letters(ctx: Context) -> list[DeadLetter]:
    with db.transaction(ctx.engine, write=False) as s:
        return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def _validate_alone(ctx: Context, tmp_path: Path) -> None:
    """Validate each waiting message on its own, by the validate stage (no fused batch):
    its map item is left waiting."""
    _reconfigure(ctx, tmp_path, workers={"batch": 1})
    Worker(ctx, "w0", kinds=("validate",)).run(until_idle=True)
    _reconfigure(ctx, tmp_path)


def test_a_batch_is_one_commit_and_one_failing_item_is_undone_alone(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The map and route items (of a replay, or of messages validated alone) run a batch
    in one transaction, a savepoint each."""
    from sqlalchemy import event as sa_event

    from gateway.pipeline import stages

    ids = [_receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode())) for n in (11, 12, 13)]
    _validate_alone(ctx, tmp_path)
    real_map = stages.TRANSACTIONAL["map"]
    calls: list[int] = []

    def flaky_map(c: Context, s: Any, item: WorkItem) -> None:
        real_map(c, s, item)  # writes its events, then fails: the savepoint must undo them
        calls.append(item.message_id)
        if item.message_id == ids[1] and calls.count(ids[1]) == 1:
            raise RuntimeError("a bug, once")

    monkeypatch.setitem(stages.TRANSACTIONAL, "map", flaky_map)
    _freeze_batch_clock(monkeypatch)  # one batch however slow this machine is
    commits: list[int] = []
    sa_event.listen(ctx.engine, "commit", lambda conn: commits.append(1))
    worker = Worker(ctx, "w1", kinds=("map",))
    assert worker.step()  # the three map items, one batch
    assert len(commits) == 4  # the claim, the read, the batch, and the failure's record
    with db.transaction(ctx.engine, write=False) as s:
        mapped = set(s.scalars(select(Event.message_id)))
    assert mapped == {ids[0], ids[2]}  # the failed one left nothing behind
    # It is tried again once the stage retry delay is over, and goes through.
    _skip_waits(ctx)
    _drain(ctx)
    assert _count(ctx, Event) == 3 and _count(ctx, DeadLetter) == 0
    assert len(ctx.outputs["erp"].written) == 3  # type: ignore[attr-defined]


def test_a_long_batch_is_cut_into_transactions_of_about_a_second(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event as sa_event

    from gateway.pipeline import stages
    from gateway.pipeline import worker as worker_mod

    for n in (21, 22, 23, 24):
        _receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode()))
    _validate_alone(ctx, tmp_path)
    real_map = stages.TRANSACTIONAL["map"]
    now = [0.0]  # the worker's clock: only slow_map moves it, whatever the machine

    def slow_map(c: Context, s: Any, item: WorkItem) -> None:
        real_map(c, s, item)
        now[0] += 0.3  # a large file

    monkeypatch.setitem(stages.TRANSACTIONAL, "map", slow_map)
    monkeypatch.setattr(worker_mod, "BATCH_SECONDS", 0.5)
    commits: list[int] = []
    sa_event.listen(ctx.engine, "commit", lambda conn: commits.append(1))
    worker = Worker(ctx, "w1", kinds=("map",))
    worker.clock = lambda: now[0]
    assert worker.step()
    # The claim and the read, then 2 + 2 items: each transaction stops taking items after
    # 0.5 s.
    assert len(commits) == 4
    assert _count(ctx, Event) == 4


# ---- the failure branches: a stage failing for good, a batch failing, bad partners, ---------
# ---- a TA1 rejection, an output's bug, a failed ack write -----------------------------------

def _skip_waits(ctx: Context) -> int:
    """Make every pending item due now, as if its retry delay were over; how many there were."""
    with db.transaction(ctx.engine) as s:
        return s.execute(update(WorkItem).where(WorkItem.status == "pending")
                         .values(run_after=db.utcnow() - timedelta(seconds=1))).rowcount


def _drain_with_retries(ctx: Context, rounds: int = 20) -> None:
    """Run the worker until idle, skipping each retry delay, until nothing is pending."""
    for _ in range(rounds):
        _drain(ctx)
        if not _skip_waits(ctx):
            return
    raise AssertionError(f"still pending after {rounds} rounds")


def _reconfigure(ctx: Context, tmp_path: Path, **extra: Any) -> None:
    conf: dict[str, Any] = {
        "acks": {"folder": str(tmp_path / "outbox")},
        "destinations": {"erp": {"type": "file", "config": {"path": str(tmp_path / "e.jsonl")},
                                 "retry": {"maximum_redeliveries": 2, "jitter": 0}}},
        **extra}
    ctx.settings = settings.parse(conf, {}, None)


def _message(ctx: Context, message_id: int) -> Message:
    with db.transaction(ctx.engine, write=False) as s:
        msg = s.get(Message, message_id)
        assert msg is not None
        return msg


def _items(ctx: Context) -> dict[str, tuple[str, int]]:
    with db.transaction(ctx.engine, write=False) as s:
        return {i.kind: (i.status, i.attempts) for i in s.scalars(select(WorkItem))}


def test_a_stage_failing_every_time_is_dead_lettered_after_the_stage_retries(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.pipeline import stages

    _reconfigure(ctx, tmp_path, workers={"stage_retries": 2})
    calls: list[int] = []

    def broken_map(c: Context, s: Any, item: WorkItem) -> None:
        calls.append(item.attempts)
        raise RuntimeError("a bug in the map stage")

    monkeypatch.setitem(stages.TRANSACTIONAL, "map", broken_map)
    message_id = _receive(ctx)
    _drain_with_retries(ctx)
    assert calls == [1, 2, 3]  # the first try and 2 retries, each a claim of its own
    [letter] = _letters(ctx)
    assert (letter.stage, letter.attempts, letter.message_id) == ("map", 3, message_id)
    assert letter.reason == "a bug in the map stage"
    assert letter.error_chain[0]["type"] == "RuntimeError"
    assert _items(ctx)["map"] == ("failed", 3)
    assert _message(ctx, message_id).status == "dead"
    assert ctx.outputs["erp"].written == []  # type: ignore[attr-defined]


def test_a_batch_whose_commit_fails_is_run_again_item_by_item(
        ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import OperationalError

    ids = [_receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode())) for n in (31, 32)]
    real_complete = claims.complete
    batches: list[list[int]] = []

    def complete_fails_for_a_batch(s: Any, worker_id: str, done: Any, **kw: Any) -> None:
        done = list(done)
        if len(done) > 1 and not batches:
            batches.append(done)
            raise OperationalError("UPDATE work_items", {}, Exception("disk I/O error"))
        real_complete(s, worker_id, done, **kw)

    monkeypatch.setattr(claims, "complete", complete_fails_for_a_batch)
    worker = Worker(ctx, "w1")
    assert worker.step()  # both validate items in one batch, whose commit fails
    assert len(batches) == 1 and len(batches[0]) == 2
    assert "a batch of 2 validate items failed (OperationalError" in caplog.text
    assert _count(ctx, Interchange) == 2  # each validated once more, on its own
    _drain(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        assert set(s.scalars(select(Event.message_id))) == set(ids)
        assert {i.status for i in s.scalars(select(WorkItem))} == {"done"}
    assert _count(ctx, DeadLetter) == 0
    assert len(ctx.outputs["erp"].written) == 2  # type: ignore[attr-defined]


def test_a_batch_of_acks_that_fails_is_written_ack_by_ack(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from gateway.pipeline import outbound

    for n in (41, 42):
        _receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode()))
    real_ack_many = outbound.ack_many
    sizes: list[int] = []

    def ack_many(c: Context, items: Any) -> None:
        sizes.append(len(items))
        if len(items) > 1:
            raise OSError(28, "No space left on device")
        real_ack_many(c, items)

    monkeypatch.setitem(outbound.BATCHED, "ack", ack_many)
    _drain(ctx)
    assert sizes == [2]  # then each on its own through the ack stage (outbound.ack)
    assert "a batch of 2 ack items failed (OSError" in caplog.text
    assert len(list((tmp_path / "outbox" / "acme").glob("997_*"))) == 2
    with db.transaction(ctx.engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(Acknowledgment)
                        .where(Acknowledgment.sent_at.is_(None))) == 0


def test_a_message_whose_partner_configuration_is_gone_is_dead_lettered(
        ctx: Context, tmp_path: Path) -> None:
    gone = _receive(ctx, partner="oldco")  # received before oldco.yaml was removed
    _drain(ctx)
    [letter] = _letters(ctx)
    assert (letter.stage, letter.message_id) == ("validate", gone)
    assert letter.reason.startswith("unknown partner 'oldco': no ") and "oldco.yaml" in letter.reason
    assert _message(ctx, gone).status == "dead"
    assert not (tmp_path / "outbox").exists()  # no acknowledgment to a partner we lost


def test_a_partner_removed_between_validate_and_map_is_dead_lettered_at_map(
        ctx: Context, tmp_path: Path) -> None:
    message_id = _receive(ctx)
    worker = Worker(ctx, "w1")
    assert worker.step()  # validate: the map item is waiting
    ctx.partners = partners.Partners([p for p in ctx.partners.by_id.values() if p.id != "acme"])
    _drain(ctx)
    [letter] = _letters(ctx)
    assert (letter.stage, letter.attempts) == ("map", 1)  # permanent: no retry
    assert letter.reason == "unknown partner 'acme'"
    assert letter.error_chain[0]["type"] == "MissingInput"
    assert _message(ctx, message_id).status == "dead"
    assert _count(ctx, Event) == 0


@pytest.mark.parametrize(("sender", "reason"), [
    (b"GLOBEX    ", "sender of another partner: ZZ:GLOBEX is globex, but the file came in "
                   "for acme"),
    (b"NOBODY    ", "unknown partner: ISA sender ZZ:NOBODY is not in "),
])
def test_a_file_from_a_sender_that_is_not_the_inbox_partner_is_dead_lettered(
        ctx: Context, tmp_path: Path, sender: bytes, reason: str) -> None:
    data = ACME.replace(b"ZZ*ACMERETAIL     *", b"ZZ*" + sender + b"     *", 1)
    assert data != ACME
    message_id = _receive(ctx, data)
    _drain(ctx)
    [letter] = _letters(ctx)
    assert letter.stage == "validate" and letter.reason.startswith(reason), letter.reason
    assert _message(ctx, message_id).status == "dead"
    assert _count(ctx, Acknowledgment) == 0  # we do not answer senders we do not know
    assert _count(ctx, Event) == 0


def test_an_interchange_rejected_with_a_ta1_is_dead_lettered_with_its_ta1_sent(
        ctx: Context, tmp_path: Path) -> None:
    data = ACME.replace(b"IEA*1*000001001~", b"IEA*1*000001002~")
    assert data != ACME
    message_id = _receive(ctx, data)
    _drain(ctx)
    [letter] = _letters(ctx)
    assert letter.stage == "validate"
    assert letter.reason.startswith("rejected by validation: interchange 000001001: TA1 R 001"), \
        letter.reason
    assert _message(ctx, message_id).status == "dead"
    [ta1] = (tmp_path / "outbox" / "acme").glob("TA1_*")
    assert "TA1*000001001*" in ta1.read_text("ascii") and "*R*001~" in ta1.read_text("ascii")
    assert _items(ctx).keys() == {"validate", "ack"}  # nothing mapped
    assert _count(ctx, Event) == 0


def test_an_output_raising_a_non_gateway_error_is_retried_then_delivered(
        ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    out = ctx.outputs["erp"]
    out.fail_with = [KeyError("a bug in the output")]  # type: ignore[attr-defined]
    _receive(ctx)
    _drain(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        d = s.scalars(select(Delivery)).one()
    assert (d.status, d.attempts) == ("pending", 1)
    assert d.last_error == "KeyError: 'a bug in the output'" and d.last_status_code is None
    assert "attempt 1: KeyError" in caplog.text
    _drain_with_retries(ctx)
    with db.transaction(ctx.engine, write=False) as s:
        d = s.scalars(select(Delivery)).one()
    assert (d.status, d.attempts) == ("delivered", 2)
    assert len(out.written) == 1 and _count(ctx, DeadLetter) == 0  # type: ignore[attr-defined]


def test_a_failed_ack_write_leaves_no_temporary_file_and_is_retried(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.pipeline import outbound

    real_fsync = os.fsync
    failing = [True]

    def fsync(fd: int) -> None:
        if failing[0] and stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(outbound.os, "fsync", fsync)
    _receive(ctx)
    _drain(ctx)
    box = tmp_path / "outbox" / "acme"
    assert list(box.iterdir()) == []  # neither the acks nor their temporary files
    status, attempts = _items(ctx)["ack"]
    assert (status, attempts) == ("pending", 1)
    with db.transaction(ctx.engine, write=False) as s:
        item = s.scalars(select(WorkItem).where(WorkItem.kind == "ack")).one()
    assert "No space left on device" in (item.last_error or "")
    failing[0] = False
    _drain_with_retries(ctx)
    assert sorted(p.name[:4] for p in box.iterdir()) == ["997_", "TA1_"]
    assert _items(ctx)["ack"][0] == "done" and _count(ctx, DeadLetter) == 0


class FakeRemoteOutbox:
    """A partner's remote outbox (as channels.sftp.SftpInput.put): fails while told to."""

    def __init__(self) -> None:
        self.put_files: dict[str, bytes] = {}
        self.failing = True
        self.closed = False

    def put(self, name: str, data: bytes) -> str:
        if self.failing:
            raise errors.TransientError("sftp://acme: uploading: connection lost")
        self.put_files[name] = data
        return f"/inbound/{name}"

    def close(self) -> None:
        self.closed = True


def test_acks_go_to_the_partners_remote_outbox_and_a_failed_upload_is_retried(
        ctx: Context, tmp_path: Path) -> None:
    box = FakeRemoteOutbox()
    ctx.remote_outboxes["acme"] = box
    _receive(ctx)
    _drain(ctx)
    assert box.put_files == {}
    status, attempts = _items(ctx)["ack"]
    assert (status, attempts) == ("pending", 1)  # a TransientError: tried again later
    for _ in range(7):  # more than the stage retries (5): as patient as a delivery
        _skip_waits(ctx)
        _drain(ctx)
    assert _items(ctx)["ack"] == ("pending", 8) and _count(ctx, DeadLetter) == 0
    box.failing = False
    _drain_with_retries(ctx)
    assert sorted(n[:4] for n in box.put_files) == ["997_", "TA1_"]
    assert b"ST*997*" in next(d for n, d in box.put_files.items() if n.startswith("997_"))
    assert not (tmp_path / "outbox" / "acme").exists()  # not the local folder as well
    assert _items(ctx)["ack"][0] == "done" and _count(ctx, DeadLetter) == 0
    ctx.close()
    assert box.closed


def test_a_partner_without_an_sftp_outbox_keeps_the_local_folder(ctx: Context) -> None:
    assert ctx.remote_outbox("acme") is None and ctx.remote_outbox("nobody") is None
