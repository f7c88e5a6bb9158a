"""The store on a real PostgreSQL: schema, receive, SKIP LOCKED claims, R3, R4 and R9."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from gateway.store import claims, db, migrate, receive
from gateway.store.models import DeadLetter, Message, WorkItem, WorkStatus
from tests.store_support import (
    HOLDS_DDL,
    OVERLAPPING_HOLDS,
    add_items,
    hold_worker,
    migrated,
    now_after,
    r3_scenario,
    schema_diff,
    spawn,
    take_numbers,
)

pytestmark = pytest.mark.integration
LEASE = 30.0


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = migrated(pg_url)
    yield engine
    engine.dispose()  # before the schema is dropped, or DROP waits on our connections


def test_the_migrated_schema_equals_the_models(engine: Engine, pg_url: str) -> None:
    assert schema_diff(engine) == []
    migrate.upgrade(pg_url)  # again: nothing to do
    assert migrate.current(pg_url) == migrate.head()


def test_a_read_step_cannot_write(engine: Engine) -> None:
    with pytest.raises(Exception, match="read-only"), db.transaction(engine, write=False) as s:
        claims.enqueue(s, "parse")
    with db.transaction(engine) as s:  # and the pooled connection writes again afterwards
        claims.enqueue(s, "parse")


def test_two_processes_upgrading_at_once_both_succeed(pg_url: str) -> None:
    with spawn().Pool(2) as pool:
        pool.map(migrate.upgrade, [pg_url, pg_url])
    assert migrate.current(pg_url) == migrate.head()


def test_receiving_the_same_file_at_once_from_four_threads_makes_one_message(
        engine: Engine) -> None:
    results: list[receive.Received] = []
    start = threading.Barrier(4)

    def take() -> None:
        start.wait()
        with db.transaction(engine) as s:
            results.append(receive.receive(s, partner="acme", channel="sftp://acme/inbox",
                                           source_name="po.edi", data=b"ISA*...~"))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.new for r in results) == [False, False, False, True]
    assert len({r.message.id for r in results}) == 1
    with db.transaction(engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1


def test_isa13_duplicates_and_quarantine(engine: Engine) -> None:
    with db.transaction(engine) as s:
        message = receive.receive(s, partner="acme", channel="c", source_name="f",
                                  data=b"x").message
    verdicts = []
    for at, content in ((0, b"one"), (60, b"one"), (120, b"two")):
        with db.transaction(engine) as s:
            verdicts.append(receive.record_interchange(
                s, message_id=message.id, partner="acme", sender_qualifier="ZZ",
                sender_id="ACME", receiver_qualifier="ZZ", receiver_id="US",
                isa13="000000905", content=content, now=now_after(at)).status)
    assert verdicts == ["accepted", "duplicate", "quarantined"]


def test_a_locked_item_is_skipped_not_waited_for(engine: Engine) -> None:
    add_items(engine, 2)
    with db.transaction(engine) as first:
        assert [i.id for i in claims.claim(first, ["parse"], "w1", LEASE, 1,
                                           now=now_after(0))] == [1]
        # w1 has not committed: item 1 is locked, and w2 takes item 2 without waiting. A
        # claim that waited would wait for good (w1 commits only after it), so the bound
        # below says "did not wait", not "was fast".
        got: list[int] = []

        def second_worker() -> None:
            with db.transaction(engine) as second:
                got.extend(i.id for i in claims.claim(second, ["parse"], "w2", LEASE, 2,
                                                      now=now_after(0)))

        other = threading.Thread(target=second_worker, daemon=True)
        other.start()
        other.join(timeout=30)
        assert not other.is_alive() and got == [2]


def test_leases_expire_and_heartbeats_keep_them(engine: Engine) -> None:
    add_items(engine, 2)
    with db.transaction(engine) as s:
        claims.claim(s, ["parse"], "w1", LEASE, 2, now=now_after(0))
    with db.transaction(engine) as s:
        assert claims.heartbeat(s, "w1", [1], LEASE, now=now_after(20)) == {1}
    with db.transaction(engine) as s:
        got = claims.claim(s, ["parse"], "w2", LEASE, 2, now=now_after(LEASE + 1))
        assert [(i.id, i.lost_leases) for i in got] == [(2, 1)]
    with pytest.raises(claims.LeaseLost), db.transaction(engine) as s:
        claims.complete(s, "w1", [1, 2], now=now_after(LEASE + 2))
    with db.transaction(engine) as s:
        claims.complete(s, "w1", [1], now=now_after(LEASE + 2))
        claims.complete(s, "w2", [2], now=now_after(LEASE + 2))


def test_r4_dead_lettered_after_three_dead_workers(engine: Engine) -> None:
    add_items(engine, 1)
    for n in range(claims.MAX_CLAIMS + 1):
        with db.transaction(engine) as s:
            claims.claim(s, ["parse"], f"w{n}", LEASE, 1, now=now_after(n * (LEASE + 1)))
    with db.transaction(engine, write=False) as s:
        assert s.get_one(WorkItem, 1).status == WorkStatus.DEAD
        (letter,) = s.scalars(select(DeadLetter)).all()
    assert letter.reason == "worker died 3 times while processing"


def test_control_numbers_from_two_processes_are_never_the_same(engine: Engine,
                                                              pg_url: str) -> None:
    with spawn().Pool(2) as pool:
        batches = pool.starmap(take_numbers, [(pg_url, 50)] * 2)
    assert sorted(n for b in batches for n in b) == list(range(1, 101))


def test_r3_a_killed_workers_item_is_taken_back_and_a_live_one_never(
        engine: Engine, pg_url: str, tmp_path: Path) -> None:
    lease = 1.0
    got = r3_scenario(pg_url, str(tmp_path), lease=lease, heartbeat_every=lease / 4)
    assert got["live_id"] not in got["taken"]
    assert got["live_exit"] == 0 and got["live_status"] == "done"
    # Not before its lease ran out (heartbeats every lease/4 until the kill), and soon after
    # (polling and a loaded machine's slack).
    assert lease * 0.5 <= got["taken"][got["dead_id"]] <= lease + 2.0


def test_r9_four_workers_never_hold_one_item_at_once(engine: Engine, pg_url: str) -> None:
    items, workers = 10_000, 4
    with db.transaction(engine) as s:
        for ddl in HOLDS_DDL:
            s.execute(text(ddl))
    add_items(engine, items, kind="r9")
    started = time.monotonic()
    with spawn().Pool(workers) as pool:
        completed = pool.starmap(hold_worker,
                                 [(pg_url, f"w{n}", 0.5, 20, 25) for n in range(workers)])
    elapsed = time.monotonic() - started
    with db.transaction(engine, write=False) as s:
        overlaps = s.execute(text(OVERLAPPING_HOLDS + " LIMIT 5")).all()
        holds = s.scalar(text("SELECT count(*) FROM holds"))
        done = s.scalar(select(func.count()).where(WorkItem.status == WorkStatus.DONE,
                                                   WorkItem.kind == "r9"))
    assert overlaps == []
    assert done == items
    assert sum(completed) == items  # each item completed once, by the worker holding it
    assert all(c > 0 for c in completed)  # all four really worked
    assert holds > items  # leases ran out and items were taken back: the case that matters
    print(f"R9: {items} items, {workers} workers, {holds} holds, {elapsed:.1f} s")


def test_only_a_step_that_asks_skips_the_wait_for_the_disk(engine: Engine) -> None:
    seen = []
    for durable in (True, False, True):
        with db.transaction(engine, durable=durable) as s:
            seen.append(s.execute(text("SHOW synchronous_commit")).scalar())
    assert seen == ["on", "off", "on"]  # SET LOCAL: that transaction only
