"""The SQLite engine: pragmas, BEGIN IMMEDIATE for writers, read-only steps, lock retries."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from canonical.errors import TransientError
from gateway.store import db
from tests.store_support import counter_store

pytestmark = pytest.mark.unit


def test_pragmas_are_set_on_every_connection(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'var' / 'edigw.db'}", busy_timeout=3.5)
    with db.transaction(engine, write=False) as s:
        got = {p: s.execute(text(f"PRAGMA {p}")).scalar()
               for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}
    assert got == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 3500,
                   "foreign_keys": 1}
    assert (tmp_path / "var").is_dir()  # made for the default ./var/edigw.db too


def test_only_a_step_that_asks_skips_the_wait_for_the_disk(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    engine.pool.dispose()
    seen = []
    for durable in (True, False, True):
        with db.transaction(engine, durable=durable) as s:
            seen.append(s.execute(text("PRAGMA synchronous")).scalar())
            s.execute(text("UPDATE counter SET n = n + 1"))
    assert seen == [2, 1, 2]  # FULL, NORMAL for that one step only, FULL again
    with db.transaction(engine, write=False) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar() == 3


def test_the_mode_pragmas_are_sent_only_when_the_mode_changes(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    engine.pool.dispose()
    sent: list[str] = []
    with db.transaction(engine) as s:  # the one pooled connection, traced from now on
        s.connection().connection.driver_connection.set_trace_callback(sent.append)
    steps = [("write", True), ("write", True), ("read", False), ("read", False),
             ("write", True)]
    pragmas = []
    for _, write in steps:
        sent.clear()
        with db.transaction(engine, write=write) as s:
            s.execute(text("SELECT n FROM counter"))
            if not write:
                with pytest.raises(Exception, match="readonly"):
                    s.execute(text("UPDATE counter SET n = 5"))
        pragmas.append([q for q in sent if q.startswith("PRAGMA query_only")])
    assert pragmas == [[], [], ["PRAGMA query_only = ON"], [], ["PRAGMA query_only = OFF"]]
    with db.transaction(engine) as s:  # and the writer writes
        s.execute(text("UPDATE counter SET n = 7"))


def test_default_url_is_sqlite_under_var() -> None:
    assert db.DEFAULT_URL == "sqlite:///var/edigw.db"


def test_a_writer_holds_the_write_lock_from_its_first_statement(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    with db.transaction(engine) as s:
        s.execute(text("SELECT n FROM counter")).scalar()  # a read only, so far
        other = sqlite3.connect(str(tmp_path / "store.db"), timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_read_modify_write_from_three_threads_loses_nothing(tmp_path: Path) -> None:
    # With deferred transactions, one of two read-then-write steps fails at once with
    # "database is locked" (or, without a transaction, an update is lost).
    engine = counter_store(tmp_path, busy_timeout=0.2)
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(40):
                with db.transaction(engine) as s:
                    n = s.execute(text("SELECT n FROM counter")).scalar_one()
                    time.sleep(0.0005)
                    s.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.transaction(engine, write=False) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 120


def test_a_read_step_cannot_write(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    with pytest.raises(Exception, match="readonly"), db.transaction(engine, write=False) as s:
        s.execute(text("UPDATE counter SET n = 5"))
    with db.transaction(engine) as s:  # and the pooled connection writes again afterwards
        s.execute(text("UPDATE counter SET n = 6"))


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path: Path) -> None:
    engine = counter_store(tmp_path, busy_timeout=0.05, locked_retry_for=5)
    holder = sqlite3.connect(str(tmp_path / "store.db"), isolation_level=None,
                             check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.4, holder.commit).start()
    started = time.monotonic()
    with db.transaction(engine) as s:
        s.execute(text("UPDATE counter SET n = n + 1"))
    assert time.monotonic() - started >= 0.3
    holder.close()


def test_a_lock_that_never_goes_is_a_transient_store_error(tmp_path: Path) -> None:
    engine = counter_store(tmp_path, busy_timeout=0.05, locked_retry_for=0.3)
    holder = sqlite3.connect(str(tmp_path / "store.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(db.StoreBusy) as caught, db.transaction(engine):
            pass
        assert isinstance(caught.value, TransientError)
        assert "locked" in str(caught.value.__cause__)
    finally:
        holder.rollback()
        holder.close()
    with db.transaction(engine) as s:  # the pool is not poisoned by the failed BEGIN
        s.execute(text("UPDATE counter SET n = n + 1"))


def test_an_error_in_the_step_rolls_everything_back(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    with pytest.raises(RuntimeError), db.transaction(engine) as s:
        s.execute(text("UPDATE counter SET n = 99"))
        raise RuntimeError("the stage failed")
    with db.transaction(engine, write=False) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 0
