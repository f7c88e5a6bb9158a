"""The writers' queue of a SQLite store: who writes next is woken when the last one ends.

SQLite lets one connection write at a time. A writer that finds the write lock taken
waits in SQLite's busy handler, which sleeps and looks again: 1, 2, 5, 10, 15 ms and on
(its built-in schedule). A lock given up 9 ms into the wait is taken at 18 ms, and under
load (the webhook intake committing while a worker writes its batches) a third of the
time the lock stood free while everyone slept. Here every writer of the store first takes
an exclusive flock(2) on a file beside the database (`<database>-writer`) and gives it up
as its transaction ends (COMMIT or ROLLBACK done): the kernel wakes the next one at once.

The flock only orders the gateway's own writers; SQLite's own lock still decides. A writer
that does not take it (the sqlite3 shell, another program) is waited for by BEGIN
IMMEDIATE and its busy handler as before. The kernel lets the flock go when its process
dies, so a writer killed mid-transaction holds up nobody. A wait has the same bound as
SQLite's (its busy timeout and the retries after it): a writer still waiting then gives up
with StoreBusy, and the flock it would have been given is given back at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

SUFFIX = "-writer"


class WriterTimeout(Exception):
    """The writers' queue was not through in time (the caller says StoreBusy)."""


class Connection(sqlite3.Connection):
    """sqlite3's connection, giving up its place in the writers' queue once the transaction
    it was taken for has ended: after COMMIT or ROLLBACK, never before."""

    writer_path: str | None = None  # set on connect (see attach); None: no queue
    _held: int | None = None  # the flocked descriptor while a write transaction is open

    def take_turn(self, timeout: float) -> None:
        """Wait for the other writers of the store (WriterTimeout past timeout seconds)."""
        if self._held is not None or self.writer_path is None:
            return
        try:
            fd = os.open(self.writer_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # a read-only folder: SQLite decides alone, as before
            log.debug("no writers' queue at %s: %s", self.writer_path, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._held = _wait(fd, timeout)
            return
        except BaseException:
            os.close(fd)
            raise
        self._held = fd

    def give_turn(self) -> None:
        fd, self._held = self._held, None
        if fd is not None:
            os.close(fd)  # the only descriptor of its open file: the flock goes with it

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.give_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.give_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.give_turn()


def _wait(fd: int, timeout: float) -> int:
    """fd flocked, waited for in a thread of its own so that the wait can end in time: a
    flock(2) that blocks cannot be given a timeout. A waiter given up on releases the flock
    as soon as it gets it (it owns fd alone: an open file of its own, not a dup)."""
    mutex = threading.Lock()
    got = threading.Event()
    abandoned = False

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            os.close(fd)
            raise
        with mutex:
            if abandoned:
                os.close(fd)
                return
            got.set()

    threading.Thread(target=wait, name="edigw-store-writer", daemon=True).start()
    if got.wait(timeout):
        return fd
    with mutex:
        if got.is_set():  # came just now
            return fd
        abandoned = True
    raise WriterTimeout(f"another writer of the store held it for over {timeout:g} s")


def attach(dbapi_conn: sqlite3.Connection, database: str) -> None:
    """On connect: where the connection's writers' queue is (beside its database, resolved
    now, as SQLite resolved the database's own path)."""
    if isinstance(dbapi_conn, Connection):
        dbapi_conn.writer_path = os.path.abspath(database) + SUFFIX


def take_turn(dbapi_conn: sqlite3.Connection, timeout: float) -> None:
    """Before BEGIN IMMEDIATE: this connection's turn among the store's writers."""
    if isinstance(dbapi_conn, Connection):
        dbapi_conn.take_turn(timeout)


def give_turn(dbapi_conn: sqlite3.Connection) -> None:
    """After a BEGIN that failed: nothing to commit or roll back, the turn goes on."""
    if isinstance(dbapi_conn, Connection):
        with contextlib.suppress(OSError):
            dbapi_conn.give_turn()
