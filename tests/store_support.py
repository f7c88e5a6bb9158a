"""Helpers shared by the store tests: a migrated store, and worker processes to run or kill."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
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

HOLDS_DDL = """CREATE TABLE holds (item BIGINT NOT NULL, worker TEXT NOT NULL,
    held_from DOUBLE PRECISION NOT NULL, held_to DOUBLE PRECISION NOT NULL)"""


def hold_worker(url: str, worker: str, lease: float, batch: int, slow_every: int) -> int:
    """Claim and complete items until none is left, logging each hold; the items completed.

    Every slow_every-th item sleeps past its lease without heartbeating, so that other
    workers take it back and this one's completion must fail: the case R9 is about.
    """
    engine = db.make_engine(url)
    rng = random.Random(worker)
    completed = 0
    idle = 0
    while idle < 20:
        with db.transaction(engine) as s:
            now = time.time()
            got = claims.claim(s, ["r9"], worker, lease, batch,
                               now=datetime.fromtimestamp(now, UTC))
            for item in got:
                s.execute(text("INSERT INTO holds VALUES (:i, :w, :f, :t)"),
                          {"i": item.id, "w": worker, "f": now, "t": now + lease})
        if not got:
            idle += 1
            time.sleep(0.05)
            continue
        idle = 0
        if slow_every and rng.randrange(slow_every) == 0:
            time.sleep(lease * 1.5)
        try:
            with db.transaction(engine) as s:
                done_at = time.time()
                claims.complete(s, worker, [i.id for i in got],
                                now=datetime.fromtimestamp(done_at, UTC))
                # The hold ends now, in the same commit as the completion; a hold whose
                # completion fails keeps its lease's end as its end.
                s.execute(text("UPDATE holds SET held_to = :t WHERE worker = :w AND "
                               "item IN (" + ",".join(str(i.id) for i in got) + ") "
                               "AND held_to > :t"), {"t": done_at, "w": worker})
            completed += len(got)
        except claims.LeaseLost:
            pass
    engine.dispose()
    return completed


def stubborn_worker(url: str, worker: str, lease: float, heartbeat_every: float,
                    hold_for: float, ready_file: str) -> None:
    """Claim one item and keep it for hold_for seconds, heartbeating, then complete it."""
    engine = db.make_engine(url)
    with db.transaction(engine) as s:
        (item,) = claims.claim(s, ["crash"], worker, lease, 1)
    with open(ready_file, "w") as f:
        f.write(str(item.id))
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
