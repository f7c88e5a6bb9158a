"""Chains in the store (gateway.chains.correlate, deadlines, gateway/store/po_chains): the
same chain in every arrival order, documents kept once, deadlines fired exactly once
across restarts, exceptions with no message routed once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from gateway.chains import correlate, deadlines, readings, views
from gateway.chains.agreement import ChainPolicy
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import claims, db, receive
from gateway.store.models import Delivery, Event, PoChainDeadline, WorkItem, WorkStatus
from tests.chain_support import PO, T0, context, is_exception, receipt, story_events

pytestmark = pytest.mark.unit


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    c = context(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)
    yield c
    c.close()


def exception_envelopes(ctx: Context) -> list[dict]:
    with db.transaction(ctx.engine, write=False) as s:
        return [e for e in s.scalars(select(Event.envelope).order_by(Event.id)) if is_exception(e)]


def deliveries(ctx: Context) -> int:
    with db.transaction(ctx.engine, write=False) as s:
        return s.scalar(select(func.count()).select_from(Delivery)) or 0


def summary(ctx: Context, po: str) -> tuple:
    with db.transaction(ctx.engine, write=False) as s:
        shown = views.chain(s, po, "globex")
    return (shown["state"], tuple(d["type"] for d in shown["documents"]),
            tuple(tuple(ln[k] for k in ("line_number", "ordered", "acknowledged", "shipped",
                                   "invoiced", "received")) for ln in shown["lines"]),
            tuple(sorted((e["kind"], e["line_number"], e["expected"], e["actual"])
                   for e in shown["exceptions"])))


def test_every_arrival_order_assembles_the_same_chain(ctx: Context) -> None:
    results = set()
    for n, order in enumerate(itertools.permutations(range(5))):
        po = f"PO-{n:03d}"
        events = story_events(po)
        for k in order:  # a transaction each, as messages come (not waiting for the disk)
            with db.transaction(ctx.engine, durable=False) as s:
                if k == 4:
                    views.post_receipt(s, ctx.partners, ctx.settings.routes, receipt(po), "globex")
                else:
                    correlate.observe(s, ctx.partners, [events[k]], message_id=None,
                                      routes=ctx.settings.routes)
        results.add(summary(ctx, po)[2:])
    assert results == {(
        (("1", "24", "24", "24", "24", "24"), ("2", "10", "8", "8", "8", "6")),
        (("acknowledged_quantity", "2", "10", "8"), ("three_way_quantity", "2", "6", "8")))}
    assert len(exception_envelopes(ctx)) == 2 * 120


def test_documents_and_exceptions_are_kept_once(ctx: Context) -> None:
    events = story_events()
    with db.transaction(ctx.engine) as s:
        made = correlate.observe(s, ctx.partners, events[:2], routes=ctx.settings.routes)
    assert [e.data["kind"] for e in made] == ["acknowledged_quantity"]
    again = exception_envelopes(ctx)
    with db.transaction(ctx.engine) as s:  # a replay of the same message
        assert correlate.observe(s, ctx.partners, events[:2], routes=ctx.settings.routes) == []
    assert exception_envelopes(ctx) == again
    assert again[0]["id"] == made[0].id and again[0]["data"]["line_number"] == "2"
    assert deliveries(ctx) == 1


def test_an_855_before_its_po_waits_and_is_matched_when_it_comes(ctx: Context) -> None:
    po850, ack855 = story_events()[:2]
    with db.transaction(ctx.engine) as s:
        assert correlate.observe(s, ctx.partners, [ack855]) == []
    assert summary(ctx, PO)[0] == "waiting"
    with db.transaction(ctx.engine) as s:
        made = correlate.observe(s, ctx.partners, [po850], routes=ctx.settings.routes)
    assert [e.data["kind"] for e in made] == ["acknowledged_quantity"]
    assert summary(ctx, PO)[:2] == ("open", ("purchase_order", "po_acknowledgment"))


def _po_data() -> dict:
    return story_events()[0].data


def _sent(ctx: Context, policy: ChainPolicy | None = None) -> None:
    with db.transaction(ctx.engine) as s:
        correlate.po_sent(s, "globex", _po_data(), T0, policy or ChainPolicy(
            ack_within_hours=24, po_ack_within_hours=48))


def test_missed_deadlines_fire_once_each_across_restarts(ctx: Context, tmp_path: Path) -> None:
    _sent(ctx)
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=23, minutes=59)) == 0
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=24)) == 1  # due at 24 h: missed
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=24)) == 0
    ctx.close()
    restarted = context(f"sqlite:///{tmp_path / 'store.db'}", tmp_path)  # a new process's view
    try:
        assert deadlines.fire_due(restarted, T0 + timedelta(hours=49)) == 1
        assert deadlines.fire_due(restarted, T0 + timedelta(hours=500)) == 0
        found = exception_envelopes(restarted)
        assert [(e["data"]["kind"], e["data"]["tolerance"]) for e in found] == [
            ("ack_missing", {"hours": 24}), ("po_ack_missing", {"hours": 48})]
        assert found[0]["time"] == "2026-11-21T09:30:00.000Z"  # the due time: a re-run, same event
        assert deliveries(restarted) == 2
    finally:
        restarted.close()


def test_a_deadline_met_in_time_never_fires(ctx: Context) -> None:
    _sent(ctx)
    events = story_events()
    with db.transaction(ctx.engine) as s:
        correlate.po_acknowledged(s, "globex", PO, True, None, T0 + timedelta(hours=2))
        correlate.observe(s, ctx.partners, [events[1]])  # the 855
    assert deadlines.fire_due(ctx, T0 + timedelta(days=30)) == 0
    with db.transaction(ctx.engine, write=False) as s:
        assert sorted(s.scalars(select(PoChainDeadline.state))) == ["met", "met"]


def test_a_crash_while_firing_leaves_the_deadline_to_the_next_tick(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    _sent(ctx)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(correlate, "emit", crash)
        with pytest.raises(RuntimeError):
            deadlines.fire_due(ctx, T0 + timedelta(hours=30))
    assert exception_envelopes(ctx) == []
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=30)) == 1
    assert len(exception_envelopes(ctx)) == 1


def test_a_rejected_po_is_an_exception_routed_by_the_next_tick(ctx: Context) -> None:
    _sent(ctx)
    with db.transaction(ctx.engine) as s:
        [made] = correlate.po_acknowledged(s, "globex", PO, False, "AK5*R: segment BEG missing",
                                           T0 + timedelta(hours=1))
    assert made.data["kind"] == "ack_rejected" and made.data["severity"] == "error"
    assert deliveries(ctx) == 0  # kept with no message and no routes: the tick routes it
    with db.transaction(ctx.engine) as s:  # the same 997 again
        assert correlate.po_acknowledged(s, "globex", PO, False, "AK5*R", T0 + timedelta(hours=1)) == []
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=2)) == 0
    assert deliveries(ctx) == 1
    deadlines.fire_due(ctx, T0 + timedelta(hours=3))
    assert deliveries(ctx) == 1


def test_the_worker_loop_fires_due_deadlines_by_its_injected_clock(ctx: Context,
                                                                   tmp_path: Path) -> None:
    _sent(ctx)
    worker = Worker(ctx)
    worker.now = lambda: T0 + timedelta(hours=1)
    worker.run(until_idle=True)
    assert exception_envelopes(ctx) == []
    worker.now = lambda: T0 + timedelta(hours=72)
    worker.run(until_idle=True)
    lines = (tmp_path / "erp" / "events.jsonl").read_text("utf-8").splitlines()
    assert sorted(line.split('"kind":"')[1].split('"')[0] for line in lines) == [
        "ack_missing", "po_ack_missing"]
    with db.transaction(ctx.engine, write=False) as s:
        assert set(s.scalars(select(WorkItem.status))) == {"done"}


def test_a_receipt_must_be_goods_receipt_data(ctx: Context) -> None:
    from canonical.errors import SchemaError

    with pytest.raises(views.NoSuchChain), db.transaction(ctx.engine) as s:
        views.post_receipt(s, ctx.partners, ctx.settings.routes, receipt())
    bad = receipt() | {"lines": []}
    with pytest.raises(SchemaError), db.transaction(ctx.engine) as s:
        views.post_receipt(s, ctx.partners, ctx.settings.routes, bad, "globex")
    assert readings.receipt_key(receipt()) == f"receipt:GR-{PO}"


def test_a_failing_tick_in_the_worker_loop_is_logged_not_raised(
        ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _sent(ctx)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("store away")

    with monkeypatch.context() as m:
        m.setattr(correlate, "emit", crash)
        assert deadlines.fire_due(ctx, T0 + timedelta(hours=30), every=1.0) == 0
    assert "checking chain deadlines failed" in caplog.text
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=31), every=1.0) == 1


def _queued(ctx: Context, name: str, at: datetime) -> int:
    """A message from globex received at `at`, its validate item not yet worked."""
    with db.transaction(ctx.engine) as s:
        [(message_id, _)] = receive.receive_many(
            s, [receive.Incoming("globex", "test", name, f"{name} {at}".encode())], now=at)
        claims.enqueue_many(s, "validate", [message_id], now=at)
    return message_id


def _worked(ctx: Context, message_id: int) -> None:
    with db.transaction(ctx.engine) as s:
        s.execute(update(WorkItem).where(WorkItem.message_id == message_id)
                  .values(status=WorkStatus.DONE))


def test_a_deadline_waits_for_a_message_received_before_it_was_due(ctx: Context) -> None:
    # Under a backlog, the 997 received at 23 h may still be queued at 30 h: the ack
    # deadline (due at 24 h) is not missed until that message is worked.
    _sent(ctx)
    early = _queued(ctx, "997-early.edi", T0 + timedelta(hours=23))
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=30)) == 0
    assert exception_envelopes(ctx) == []
    _worked(ctx, early)  # it was not the ack after all (nothing met the deadline)
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=30)) == 1
    assert [e["data"]["kind"] for e in exception_envelopes(ctx)] == ["ack_missing"]


def test_a_message_received_after_the_due_time_does_not_hold_the_deadline(ctx: Context) -> None:
    _sent(ctx)
    _queued(ctx, "997-late.edi", T0 + timedelta(hours=25))  # after the 24 h ack deadline
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=30)) == 1  # the ack one: missed
    # ... but it holds the 855 deadline, due at 48 h, while it waits.
    assert deadlines.fire_due(ctx, T0 + timedelta(hours=50)) == 0
    with db.transaction(ctx.engine, write=False) as s:
        assert sorted(s.scalars(select(PoChainDeadline.state))) == ["fired", "pending"]
