"""The work queue on SQLite with a frozen clock: claims, leases, heartbeats, expiry, R4."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from gateway.store import claims, db
from gateway.store.models import DeadLetter, WorkItem, WorkStatus
from tests.store_support import T0, add_items, migrated, now_after

pytestmark = pytest.mark.unit
LEASE = 30.0


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


def _claim(engine: Engine, worker: str, at: float, limit: int = 1, **kw: object) -> list[int]:
    with db.transaction(engine) as s:
        return [i.id for i in claims.claim(s, ["parse"], worker, LEASE, limit,
                                           now=now_after(at), **kw)]  # type: ignore[arg-type]


def _item(engine: Engine, item_id: int) -> WorkItem:
    with db.transaction(engine, write=False) as s:
        return s.get_one(WorkItem, item_id)


def test_claim_takes_ready_items_oldest_first_up_to_the_limit(engine: Engine) -> None:
    add_items(engine, 5)
    assert _claim(engine, "w1", 0, limit=3) == [1, 2, 3]
    assert _claim(engine, "w2", 0, limit=3) == [4, 5]
    assert _claim(engine, "w3", 0, limit=3) == []
    item = _item(engine, 1)
    assert (item.status, item.lease_owner, item.attempts) == (WorkStatus.CLAIMED, "w1", 1)
    assert item.lease_expires_at == now_after(LEASE)


def test_claim_returns_work_items_whatever_their_order_in_returning(engine: Engine) -> None:
    with db.transaction(engine) as s:
        for delay in (5, 1, 3):
            claims.enqueue(s, "parse", run_after=now_after(delay))
    with db.transaction(engine) as s:
        got = claims.claim(s, ["parse"], "w", LEASE, 10, now=now_after(10))
    assert [i.run_after for i in got] == [now_after(1), now_after(3), now_after(5)]
    assert all(i.status == WorkStatus.CLAIMED for i in got)


def test_claim_skips_other_kinds_and_items_not_yet_due(engine: Engine) -> None:
    add_items(engine, 1, kind="deliver")
    with db.transaction(engine) as s:
        later = claims.enqueue(s, "parse", run_after=now_after(60)).id
    assert _claim(engine, "w", 0) == []
    assert _claim(engine, "w", 60) == [later]


def test_an_expired_lease_is_claimed_again_and_counted(engine: Engine) -> None:
    add_items(engine, 1)
    assert _claim(engine, "dead", 0) == [1]
    assert _claim(engine, "other", LEASE - 1) == []  # still held
    assert _claim(engine, "other", LEASE + 1) == [1]
    item = _item(engine, 1)
    assert (item.lease_owner, item.attempts, item.lost_leases) == ("other", 2, 1)


def test_heartbeat_extends_only_leases_the_worker_holds(engine: Engine) -> None:
    add_items(engine, 2)
    assert _claim(engine, "w1", 0, limit=2) == [1, 2]
    with db.transaction(engine) as s:
        assert claims.heartbeat(s, "w2", [1, 2], LEASE, now=now_after(10)) == set()
        assert claims.heartbeat(s, "w1", [1], LEASE, now=now_after(10)) == {1}
    assert _item(engine, 1).lease_expires_at == now_after(10 + LEASE)
    assert _item(engine, 2).lease_expires_at == now_after(LEASE)
    # Past the first lease only the item that was not heartbeated is taken back.
    assert _claim(engine, "w2", LEASE + 1, limit=2) == [2]
    with db.transaction(engine) as s:
        assert claims.heartbeat(s, "w1", [1, 2], LEASE, now=now_after(LEASE + 2)) == {1}


def test_a_live_worker_heartbeating_past_three_leases_is_never_robbed(engine: Engine) -> None:
    add_items(engine, 1)
    assert _claim(engine, "live", 0) == [1]
    for t in range(10, int(4 * LEASE), 10):
        with db.transaction(engine) as s:
            assert claims.heartbeat(s, "live", [1], LEASE, now=now_after(t)) == {1}
        assert _claim(engine, "thief", t + 1) == []
    with db.transaction(engine) as s:
        claims.complete(s, "live", [1], now=now_after(4 * LEASE))
    assert _item(engine, 1).status == WorkStatus.DONE


def test_complete_by_a_worker_that_lost_the_lease_rolls_the_step_back(engine: Engine) -> None:
    add_items(engine, 1)
    assert _claim(engine, "slow", 0) == [1]
    assert _claim(engine, "fast", LEASE + 1) == [1]
    with pytest.raises(claims.LeaseLost), db.transaction(engine) as s:
        claims.enqueue(s, "map")  # the stage's output, which must not be committed
        claims.complete(s, "slow", [1], now=now_after(LEASE + 2))
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(WorkItem)) == 1
    assert _item(engine, 1).lease_owner == "fast"


def test_an_expired_lease_not_yet_taken_back_can_still_be_completed(engine: Engine) -> None:
    add_items(engine, 1)
    assert _claim(engine, "w", 0) == [1]
    with db.transaction(engine) as s:
        claims.complete(s, "w", [1], now=now_after(LEASE * 2))
    assert _claim(engine, "other", LEASE * 3) == []


def test_fail_with_run_after_retries_later_and_without_gives_up(engine: Engine) -> None:
    add_items(engine, 2)
    assert _claim(engine, "w", 0, limit=2) == [1, 2]
    with db.transaction(engine) as s:
        claims.fail(s, "w", 1, "ERP answered 503", run_after=now_after(60), now=now_after(1))
        claims.fail(s, "w", 2, "bad data", now=now_after(1))
    one, two = _item(engine, 1), _item(engine, 2)
    assert (one.status, one.lease_owner, one.last_error) == ("pending", None, "ERP answered 503")
    assert (two.status, two.last_error) == ("failed", "bad data")
    assert _claim(engine, "w", 59) == []
    assert _claim(engine, "w", 60) == [1]
    assert _item(engine, 1).attempts == 2
    assert _item(engine, 1).lost_leases == 0  # a failure is not a death


def test_an_item_that_kills_its_worker_every_time_is_dead_lettered(engine: Engine) -> None:
    # R4: claimed three times by workers that died; the fourth claim parks it instead.
    add_items(engine, 1)  # the poison: oldest, so always claimed first
    t = 0.0
    for _ in range(claims.MAX_CLAIMS):
        assert _claim(engine, "doomed", t) == [1]
        add_items(engine, 2)
        with db.transaction(engine) as s:  # the rest keeps flowing meanwhile
            got = [i.id for i in claims.claim(s, ["parse"], "healthy", LEASE, 10,
                                              now=now_after(t))]
            claims.complete(s, "healthy", got, now=now_after(t))
        assert len(got) == 2 and 1 not in got
        t += LEASE + 1
    assert _claim(engine, "next", t + LEASE + 1) == []
    assert _item(engine, 1).status == WorkStatus.DEAD
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(func.count()).where(WorkItem.status == "done")) == 6
    with db.transaction(engine, write=False) as s:
        (letter,) = s.scalars(select(DeadLetter)).all()
    assert letter.work_item_id == 1
    assert letter.stage == "parse"
    assert letter.reason == "worker died 3 times while processing"
    assert letter.attempts == 3
    assert letter.status == "parked"
    assert letter.error_chain[0]["type"] == "LeaseExpired"


def test_max_claims_is_a_parameter(engine: Engine) -> None:
    add_items(engine, 1)
    assert _claim(engine, "w", 0, max_claims=1) == [1]
    assert _claim(engine, "w", LEASE + 1, max_claims=1) == []
    assert _item(engine, 1).status == WorkStatus.DEAD


def test_times_come_back_timezone_aware(engine: Engine) -> None:
    add_items(engine, 1)
    _claim(engine, "w", 0)
    item = _item(engine, 1)
    assert item.run_after == T0 and item.run_after.tzinfo is not None


def test_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="timezone-aware"), db.transaction(engine) as s:
        claims.enqueue(s, "parse", run_after=T0.replace(tzinfo=None))


def test_times_written_many_at_once_are_each_their_own(engine: Engine) -> None:
    # The store converts the same time object once per batch (UTCDateTime.bind_processor):
    # one object repeated, then others, one equal in value and one in another zone, must
    # each come back as what it was.
    from datetime import timedelta, timezone

    t1 = T0 + timedelta(seconds=1)
    times = [T0, T0, t1, T0, T0.replace(), t1.astimezone(timezone(timedelta(hours=5))), T0]
    with db.transaction(engine) as s:  # one statement for all, as the hot paths write
        db.core(s, WorkItem.__table__.insert(), [
            {"kind": "parse", "status": WorkStatus.PENDING, "run_after": at, "created_at": T0,
             "updated_at": at} for at in times])
        claims.enqueue(s, "parse", run_after=t1)  # and one more through the ORM
    with db.transaction(engine, write=False) as s:
        rows = s.scalars(select(WorkItem).order_by(WorkItem.id)).all()
    assert [i.run_after for i in rows] == [*times, t1]
    assert [i.updated_at for i in rows[:-1]] == times
    assert all(i.run_after.tzinfo is not None for i in rows)


def test_an_item_whose_worker_died_is_claimed_alone_and_not_batched(engine: Engine) -> None:
    add_items(engine, 4)
    assert _claim(engine, "w1", 0, limit=2) == [1, 2]
    # w1 dies; both come back with a lost lease, and each is then claimed on its own, so
    # that an item that kills workers cannot take a batch of others down with it.
    assert _claim(engine, "w2", LEASE + 1, limit=10) == [1]
    assert _claim(engine, "w3", LEASE + 1, limit=10) == [2]
    assert _claim(engine, "w4", LEASE + 1, limit=10) == [3, 4]
    assert _item(engine, 1).lost_leases == 1 and _item(engine, 3).lost_leases == 0


def test_enqueue_once_adds_an_item_only_while_none_is_waiting_or_running(engine: Engine) -> None:
    with db.transaction(engine) as s:
        first = claims.enqueue_once(s, "parse", message_id=None)
        assert first is not None
        assert claims.enqueue_once(s, "parse") is None  # pending already
        other = claims.enqueue_once(s, "deliver")  # another kind is other work
        assert other is not None and other != first
    with db.transaction(engine) as s:  # enqueued ready now, so claimed now (not at T0)
        assert [i.id for i in claims.claim(s, ["parse"], "w", LEASE)] == [first]
    with db.transaction(engine) as s:
        assert claims.enqueue_once(s, "parse") is None  # claimed: still running
        claims.complete(s, "w", [first])
    with db.transaction(engine) as s:
        again = claims.enqueue_once(s, "parse")  # a replay after it is done: new work
    assert again is not None and again > other
    item = _item(engine, again)
    assert (item.status, item.attempts, item.lost_leases) == (WorkStatus.PENDING, 0, 0)
    assert item.message_id is None and item.run_after.tzinfo is not None
