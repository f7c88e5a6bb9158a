"""Each stage on SQLite: its output in the store, and the same again when it is replayed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
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


def _letters(ctx: Context) -> list[DeadLetter]:
    with db.transaction(ctx.engine, write=False) as s:
        return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def test_a_batch_is_one_commit_and_one_failing_item_is_undone_alone(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event as sa_event

    from gateway.pipeline import stages

    ids = [_receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode())) for n in (11, 12, 13)]
    real_map = stages.TRANSACTIONAL["map"]
    calls: list[int] = []

    def flaky_map(c: Context, s: Any, item: WorkItem) -> None:
        real_map(c, s, item)  # writes its events, then fails: the savepoint must undo them
        calls.append(item.message_id)
        if item.message_id == ids[1] and calls.count(ids[1]) == 1:
            raise RuntimeError("a bug, once")

    monkeypatch.setitem(stages.TRANSACTIONAL, "map", flaky_map)
    commits: list[int] = []
    sa_event.listen(ctx.engine, "commit", lambda conn: commits.append(1))
    worker = Worker(ctx, "w1")
    assert worker.step()  # the three validate items, one batch
    assert len(commits) == 2  # the claim, and the batch
    assert worker.step()  # the three map items (and the three acks)
    with db.transaction(ctx.engine, write=False) as s:
        mapped = set(s.scalars(select(Event.message_id)))
    assert mapped == {ids[0], ids[2]}  # the failed one left nothing behind
    # It is tried again a second later (the stage retry delay), and goes through.
    deadline = time.monotonic() + 10
    while _count(ctx, Event) < 3 and time.monotonic() < deadline:
        worker.step() or time.sleep(0.1)
    _drain(ctx)
    assert _count(ctx, Event) == 3 and _count(ctx, DeadLetter) == 0
    assert len(ctx.outputs["erp"].written) == 3  # type: ignore[attr-defined]


def test_a_long_batch_is_cut_into_transactions_of_about_a_second(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event as sa_event

    from gateway.pipeline import stages
    from gateway.pipeline import worker as worker_mod

    for n in (21, 22, 23, 24):
        _receive(ctx, ACME.replace(b"000001001", f"{n:09d}".encode()))
    real_validate = stages.TRANSACTIONAL["validate"]
    now = [0.0]  # the worker's clock: only slow_validate moves it, whatever the machine

    def slow_validate(c: Context, s: Any, item: WorkItem) -> None:
        real_validate(c, s, item)
        now[0] += 0.3  # a large file

    monkeypatch.setitem(stages.TRANSACTIONAL, "validate", slow_validate)
    monkeypatch.setattr(worker_mod, "BATCH_SECONDS", 0.5)
    commits: list[int] = []
    sa_event.listen(ctx.engine, "commit", lambda conn: commits.append(1))
    worker = Worker(ctx, "w1")
    worker.clock = lambda: now[0]
    assert worker.step()
    # The claim, then 2 + 2 items: each transaction stops taking items after 0.5 s.
    assert len(commits) == 3
    assert _count(ctx, Interchange) == 4
