"""The writers' queue of a SQLite store (gateway/store/writers.py): a flock beside the
database, held by a write transaction from BEGIN to its COMMIT or ROLLBACK."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store import db, writers
from tests.store_support import counter_store

pytestmark = pytest.mark.unit


def _queue_free(tmp_path: Path) -> bool:
    fd = os.open(tmp_path / f"store.db{writers.SUFFIX}", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def _held(tmp_path: Path) -> Iterator[int]:
    """The queue taken by someone else (as another gateway process would)."""
    fd = os.open(tmp_path / f"store.db{writers.SUFFIX}", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)


def test_a_write_transaction_holds_the_queue_until_it_ends(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    assert _queue_free(tmp_path)
    with db.transaction(engine) as s:
        assert not _queue_free(tmp_path)
        s.execute(text("UPDATE counter SET n = 1"))
        assert not _queue_free(tmp_path)
    assert _queue_free(tmp_path)  # committed: free
    with pytest.raises(RuntimeError), db.transaction(engine) as s:
        s.execute(text("UPDATE counter SET n = 2"))
        assert not _queue_free(tmp_path)
        raise RuntimeError("the step failed")
    assert _queue_free(tmp_path)  # rolled back: free
    with db.transaction(engine, write=False) as s:
        assert _queue_free(tmp_path)  # a reader does not queue
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 1
    mode = stat.S_IMODE((tmp_path / f"store.db{writers.SUFFIX}").stat().st_mode)
    assert mode & 0o077 == 0  # beside the store's own files, as private as they are


def test_a_writer_waits_for_the_one_ahead_and_goes_when_it_ends(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    done = threading.Event()

    def write() -> None:
        with db.transaction(engine) as s:
            s.execute(text("UPDATE counter SET n = n + 1"))
        done.set()

    with _held(tmp_path) as held:
        t = threading.Thread(target=write)
        t.start()
        # The database itself is not locked (nobody began a transaction): what holds the
        # writer is the queue.
        assert not done.wait(0.3)
        fcntl.flock(held, fcntl.LOCK_UN)
        t.join(30)
    assert done.is_set()
    with db.transaction(engine, write=False) as s:
        assert s.execute(text("SELECT n FROM counter")).scalar_one() == 1


def test_a_queue_that_never_moves_is_a_transient_store_error(tmp_path: Path) -> None:
    engine = counter_store(tmp_path, busy_timeout=0.05, locked_retry_for=0.2)
    with _held(tmp_path):
        with pytest.raises(db.StoreBusy, match="locked"), db.transaction(engine):
            pass
        assert not _queue_free(tmp_path)
    # The waiter given up on takes the flock when it comes and gives it back at once:
    # the next write goes through, and then the queue is free.
    with db.transaction(engine) as s:
        s.execute(text("UPDATE counter SET n = 5"))
    assert _queue_free(tmp_path)


def test_a_failed_begin_gives_the_turn_back(tmp_path: Path) -> None:
    engine = counter_store(tmp_path, busy_timeout=0.05, locked_retry_for=0.2)
    holder = sqlite3.connect(str(tmp_path / "store.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # SQLite's own lock, by a program that does not queue
    try:
        with pytest.raises(db.StoreBusy), db.transaction(engine):
            pass
        assert _queue_free(tmp_path)
    finally:
        holder.rollback()
        holder.close()


_HOLDER = """
import sys, time
from sqlalchemy import text
from gateway.store import db
from tests.store_support import counter_store
engine = db.make_engine(sys.argv[1])
with db.transaction(engine) as s:
    s.execute(text("UPDATE counter SET n = 100"))
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_writer_killed_in_its_transaction_holds_up_nobody(tmp_path: Path) -> None:
    engine = counter_store(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, f"sqlite:///{tmp_path / 'store.db'}"],
                            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"holding"
        assert not _queue_free(tmp_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        with db.transaction(engine) as s:
            s.execute(text("UPDATE counter SET n = n + 1"))
        with db.transaction(engine, write=False) as s:
            assert s.execute(text("SELECT n FROM counter")).scalar_one() == 1  # its 100 undone
        assert _queue_free(tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
