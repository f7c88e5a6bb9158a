"""Helpers shared by the store tests: a migrated store, and worker processes to run or kill."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Engine

from gateway.store import claims, db, migrate, models

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def migrated(url: str) -> Engine:
    """An engine on the store at url, upgraded to the newest schema."""
    migrate.upgrade(url)
    return db.make_engine(url)


def counter_store(tmp_path: Path, **kw: float) -> Engine:
    """A bare SQLite store at tmp_path/store.db (make_engine's keyword arguments) holding
    one table, counter, with one row n = 0: for tests of the engine and its transactions."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'store.db'}", **kw)
    with db.transaction(engine) as s:
        s.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        s.execute(text("INSERT INTO counter VALUES (0)"))
    return engine


def schema_diff(engine: Engine, metadata: MetaData = models.Base.metadata) -> list[Any]:
    """What Alembic finds different between the database and the models (empty when equal)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def add_items(engine: Engine, count: int, kind: str = "parse") -> None:
    """count pending work items of kind, ready since T0."""
    with db.transaction(engine) as s:
        s.execute(models.WorkItem.__table__.insert(),
                  [{"kind": kind, "status": "pending", "attempts": 0, "lost_leases": 0,
                    "run_after": T0, "created_at": T0, "updated_at": T0}] * count)


def now_after(seconds: float) -> datetime:
    """T0 plus seconds: a frozen clock for lease tests."""
    return T0 + timedelta(seconds=seconds)


# ---- worker processes (module-level so that a spawned process can import them) ----

HOLDS_DDL = ["""CREATE TABLE holds (id BIGSERIAL PRIMARY KEY, item BIGINT NOT NULL,
    worker TEXT NOT NULL, held_from DOUBLE PRECISION NOT NULL,
    held_to DOUBLE PRECISION NOT NULL)""", "CREATE INDEX holds_item ON holds (item)"]

# Holds of one item that begin before the previous one ended (1 us of slack for float
# rounding). Checking neighbours in start order is enough: if any two holds overlap,
# some hold overlaps the one just before it.
OVERLAPPING_HOLDS = """SELECT item, prev_worker, prev_to, worker, held_from FROM (
    SELECT item, worker, held_from,
           lag(held_to) OVER w AS prev_to, lag(worker) OVER w AS prev_worker
    FROM holds WINDOW w AS (PARTITION BY item ORDER BY held_from, id)) AS h
    WHERE held_from < prev_to - 0.000001"""


def _clock() -> tuple[datetime, float]:
    # The database keeps microseconds: round first, so the log and the leases agree.
    now = datetime.now(UTC)
    return now, now.timestamp()


def hold_worker(url: str, worker: str, lease: float, batch: int, slow_every: int) -> int:
    """Claim and complete items until none is left, logging each hold; the items completed.

    Now and then (one batch in slow_every) it sleeps past its lease without heartbeating,
    so that other workers take the batch back and this one's completion must fail: the
    case R9 is about. Each hold is logged in the transaction of its claim, and its end
    in the transaction of its completion, so the log says what the database decided.
    """
    engine = db.make_engine(url)
    rng = random.Random(worker)
    completed = 0
    idle = 0
    while idle < 20:
        with db.transaction(engine) as s:
            now, claimed_at = _clock()
            # R9 is about overlap, not R4: an item that happens to sit in three slow
            # batches (about 10,000 / 25**3 of them) must not be dead-lettered here.
            got = claims.claim(s, ["r9"], worker, lease, batch, now=now, max_claims=1000)
            if got:
                s.execute(text("INSERT INTO holds (item, worker, held_from, held_to) "
                               "VALUES (:i, :w, :f, :t)"),
                          [{"i": i.id, "w": worker, "f": claimed_at, "t": claimed_at + lease}
                           for i in got])
        if not got:
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        if slow_every and rng.randrange(slow_every) == 0:
            time.sleep(lease * 1.5)
        try:
            with db.transaction(engine) as s:
                now, ts = _clock()
                claims.complete(s, worker, [i.id for i in got], now=now)
                # Its end is the completion, even past an expired lease nobody took back.
                s.execute(text("UPDATE holds SET held_to = :t WHERE worker = :w "
                               "AND item = ANY(:ids) AND held_from = :f"),
                          {"t": ts, "w": worker, "ids": [i.id for i in got], "f": claimed_at})
            completed += len(got)
        except claims.LeaseLost:
            pass  # rolled back; the hold ended when its lease did
    engine.dispose()
    return completed


def stubborn_worker(url: str, worker: str, lease: float, heartbeat_every: float,
                    hold_for: float, ready_file: str) -> None:
    """Claim one item and keep it for hold_for seconds, heartbeating, then complete it."""
    engine = db.make_engine(url)
    with db.transaction(engine) as s:
        (item,) = claims.claim(s, ["crash"], worker, lease, 1)
    # Written then renamed, so the test never reads half of it.
    Path(ready_file + ".tmp").write_text(str(item.id))
    os.replace(ready_file + ".tmp", ready_file)
    end = time.monotonic() + hold_for
    while time.monotonic() < end:
        time.sleep(heartbeat_every)
        with db.transaction(engine) as s:
            assert claims.heartbeat(s, worker, [item.id], lease) == {item.id}
    with db.transaction(engine) as s:
        claims.complete(s, worker, [item.id])


def hammer(url: str, seconds: float, who: str) -> tuple[int, list[str]]:
    """Write (and read) the store for seconds as fast as possible; the steps and any errors."""
    engine = db.make_engine(url)
    errors: list[str] = []
    steps = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with db.transaction(engine) as s:
                # Read before writing, as a stage does: the pattern that fails at once
                # under deferred transactions when the other process commits in between.
                s.execute(text("SELECT max(id) FROM work_items")).scalar()
                claims.enqueue(s, "hammer")
                got = claims.claim(s, ["hammer"], who, 30, 5)
                claims.complete(s, who, [i.id for i in got])
            with db.transaction(engine, write=False) as s:
                s.execute(text("SELECT count(*) FROM work_items")).scalar()
            steps += 1
        except Exception as exc:  # every error counts against R8; none may escape unseen
            errors.append(f"{type(exc).__name__}: {exc}")
    engine.dispose()
    return steps, errors


def pid() -> int:
    """This process's id (for the kill tests)."""
    return os.getpid()


def take_numbers(url: str, count: int) -> list[int]:
    """count interchange control numbers taken one by one, in a process of its own."""
    from gateway.store.sequences import StoreControlNumbers

    engine = db.make_engine(url)
    numbers = StoreControlNumbers(engine, scope="US")
    taken = [numbers.next_interchange() for _ in range(count)]
    engine.dispose()
    return taken


def spawn() -> Any:
    """A multiprocessing context that starts clean interpreters (no inherited connections)."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def wait_for_file(path: str, timeout: float = 30.0) -> str:
    """The content of path once a worker has written it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return Path(path).read_text()
        time.sleep(0.02)
    raise TimeoutError(f"no worker wrote {path} within {timeout} s")


def r3_scenario(url: str, tmp: str, lease: float, heartbeat_every: float) -> dict[str, Any]:
    """R3: kill -9 one worker holding a lease while another heartbeats for 3.5 leases.

    A thief claims all the while; returned: what it took and how long after the kill.
    """
    import signal

    engine = db.make_engine(url)
    with db.transaction(engine) as s:
        dead_id = claims.enqueue(s, "crash", run_after=T0).id
        live_id = claims.enqueue(s, "crash", run_after=T0).id
    ctx = spawn()
    doomed = ctx.Process(target=stubborn_worker,
                         args=(url, "doomed", lease, heartbeat_every, 3600, f"{tmp}/doomed"))
    doomed.start()
    assert int(wait_for_file(f"{tmp}/doomed")) == dead_id
    live = ctx.Process(target=stubborn_worker,
                       args=(url, "live", lease, heartbeat_every, 3.5 * lease, f"{tmp}/live"))
    live.start()
    assert int(wait_for_file(f"{tmp}/live")) == live_id
    os.kill(doomed.pid, signal.SIGKILL)  # type: ignore[arg-type]
    killed_at = time.monotonic()
    doomed.join()
    taken: dict[int, float] = {}
    while live.is_alive() or dead_id not in taken:
        with db.transaction(engine) as s:
            for item in claims.claim(s, ["crash"], "thief", lease, 2):
                taken[item.id] = time.monotonic() - killed_at
                claims.complete(s, "thief", [item.id])
        time.sleep(0.05)
        if time.monotonic() - killed_at > 10 * lease + 30:
            break
    live.join(30)
    with db.transaction(engine, write=False) as s:
        live_item = s.get_one(models.WorkItem, live_id)
    engine.dispose()
    return {"dead_id": dead_id, "live_id": live_id, "taken": taken,
            "live_exit": live.exitcode, "live_status": live_item.status,
            "live_owner": live_item.lease_owner}
