"""Engines and transactions: SQLite tuned for safe concurrent writers, or PostgreSQL."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from canonical.errors import ConfigError, TransientError
from gateway import private
from gateway.store import writers

DEFAULT_URL = "sqlite:///var/edigw.db"
# How long one SQLite statement waits for the write lock inside SQLite's own busy handler.
BUSY_TIMEOUT = 5.0
# How long the store keeps retrying BEGIN IMMEDIATE beyond that before it gives up.
# Bounded on purpose: a lock held this long is a stuck process, and the caller's retry
# policy (persistent, in the store) is the right place to wait longer.
LOCKED_RETRY_FOR = 20.0

_WRITE = "edigw_write"
_DURABLE = "edigw_durable"
_MODE = "edigw_mode"  # (write, durable) the connection's pragmas are set for
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class StoreBusy(TransientError):
    """The database stayed locked by another writer; try the step again later."""


class StoreUnavailable(TransientError):
    """The database could not be reached; try the step again later."""


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def make_engine(url: str | URL | None = None, *, busy_timeout: float = BUSY_TIMEOUT,
                locked_retry_for: float = LOCKED_RETRY_FOR, **kwargs: Any) -> Engine:
    """An engine for the store URL (SQLite under ./var/ when none is given)."""
    url = make_url(url or DEFAULT_URL)
    if url.get_backend_name() != "sqlite":
        # pool_pre_ping: a worker outliving a PostgreSQL restart gets a fresh connection
        # instead of failing its next step on a dead one.
        kwargs.setdefault("pool_pre_ping", True)
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "begin", _begin_server)
        return engine
    file_db = bool(url.database) and url.database != ":memory:" \
        and not url.database.startswith("file:")
    if file_db:
        # The store holds partners' documents: its folder 0700, the file (and so SQLite's
        # -wal and -shm, which take its mode) 0600.
        try:
            private.make_file(Path(url.database))
        except OSError as exc:  # a folder in the path is a file, or not ours to write
            raise ConfigError(f"the store {url.database} cannot be made: "
                              f"{exc.strerror or exc}: {exc.filename or url.database}; "
                              "check store.url") from exc
        # Its connections queue as writers (see writers): one wakes when the last one ends.
        kwargs["connect_args"] = {"factory": writers.Connection, **kwargs.get("connect_args", {})}
    engine = sa.create_engine(url, **kwargs)
    _tune_sqlite(engine, busy_timeout, locked_retry_for, url.database if file_db else None)
    return engine


def is_sqlite(bind: Engine | Connection | Session) -> bool:
    """Whether bind talks to SQLite."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "sqlite"


def core(session: Session, statement: Any, rows: Any = None) -> Any:
    """A Core statement (on tables, no ORM objects wanted back) run on the session's
    connection, in its transaction. session.execute would first take it through the ORM
    (its bulk-insert path for a list of rows, its compile-state look-ups), which on SQLite
    costs more than the statement itself, and on the hot paths (the webhook intake, a
    fused batch) it is paid while the write lock is held. Pending ORM changes are flushed
    first, as session.execute would."""
    session.flush()
    return session.connection().execute(statement, rows)


def insert_new(bind: Engine | Connection | Session, table: Any, *key: Any) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING in the store's dialect: a row whose key is
    taken already is skipped, the first one stays. Without key, any unique key counts.

    The one place the dialect is chosen: SQLite and PostgreSQL both spell it the same,
    but SQLAlchemy keeps the construct per dialect. Add .values(), .returning(), or pass
    rows to execute for executemany.
    """
    dialect = sqlite if is_sqlite(bind) else postgresql
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(key) or None)


def _begin_server(conn: Connection) -> None:
    options = conn.get_execution_options()
    # A read step that writes fails here too, so the mistake shows on either backend.
    if not options.get(_WRITE, True):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    elif not options.get(_DURABLE, True):
        # Visible at once and safe from a crash of any process; only a crash of the server
        # machine in the next moment may lose it (see transaction()).
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")


def _tune_sqlite(engine: Engine, busy_timeout: float, locked_retry_for: float,
                 database: str | None) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        if database is not None:
            writers.attach(dbapi_conn, database)
        # sqlite3's legacy mode begins transactions late (never before a SELECT) and
        # deferred; we emit BEGIN ourselves in the begin event below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # busy_timeout first, so the journal_mode switch itself waits for other openers.
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit reported to a partner (a 997 sent, a file deleted remotely)
        # must survive a power cut, which NORMAL does not promise in WAL mode.
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, True)
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        durable = conn.get_execution_options().get(_DURABLE, True)
        # The pragmas below stay set on the connection: each is sent only when it changes
        # (a statement costs a hand-over of the GIL, which a busy thread beside may hold).
        mode = conn.connection.info.get(_MODE)
        if mode != (write, durable):
            # A read transaction that writes would fail now and then under load (see
            # below); query_only turns the mistake into an immediate, always-visible error
            # instead. (Set before BEGIN: a query_only connection cannot BEGIN IMMEDIATE.)
            raw.execute(f"PRAGMA query_only = {'OFF' if write else 'ON'}")
            # NORMAL in WAL mode: the commit survives any process dying, not a power cut.
            raw.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            conn.connection.info[_MODE] = (write, durable)
        # IMMEDIATE takes the write lock up front, where SQLite's busy handler waits for it;
        # a deferred transaction that reads then writes fails at once with "database is
        # locked" whatever the timeout, because waiting could not make its snapshot valid.
        if not write:
            _begin_retrying(raw, "BEGIN", locked_retry_for)
            return
        # The gateway's other writers first (the writers' queue), then SQLite's own lock,
        # which anyone else writing the file may hold; both waits bounded alike.
        try:
            writers.take_turn(raw, busy_timeout + locked_retry_for)
        except writers.WriterTimeout as error:
            raise StoreBusy(f"the SQLite database stayed locked: {error}") from error
        try:
            _begin_retrying(raw, "BEGIN IMMEDIATE", locked_retry_for)
        except BaseException:
            writers.give_turn(raw)
            raise


def _is_locked(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError):
        error = error.orig  # type: ignore[assignment]
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _begin_retrying(raw: sqlite3.Connection, sql: str, retry_for: float) -> None:
    try:
        raw.execute(sql)
        return
    except sqlite3.OperationalError as error:
        if not _is_locked(error):
            raise
    # Retrying BEGIN is always safe: nothing of the step has run yet.
    retrying = Retrying(
        retry=retry_if_exception(_is_locked),
        wait=wait_random_exponential(multiplier=0.02, max=0.5),
        stop=stop_after_delay(retry_for),
        reraise=True,
    )
    try:
        retrying(raw.execute, sql)
    except sqlite3.OperationalError as error:
        if _is_locked(error):
            raise StoreBusy(f"the SQLite database stayed locked for over {retry_for:g} s"
                            " beyond its busy timeout") from error
        raise


@contextlib.contextmanager
def transaction(engine: Engine, *, write: bool = True, durable: bool = True) -> Iterator[Session]:
    """One transaction for one step: committed when the block ends, rolled back on error.

    write=False is for steps that only read: on SQLite they do not take the write lock,
    and writing in them fails.

    durable=False skips the wait for the disk (SQLite synchronous=NORMAL, PostgreSQL
    synchronous_commit=off): the commit survives a killed worker or server process, but a
    power cut just after it may undo it. Only for records whose loss repeats an effect
    the other side already makes idempotent (the ERP's 2xx to an event id), never for
    what a partner was told or what was received.
    """
    session = Session(bind=engine, expire_on_commit=False, autoflush=True)
    try:
        # Opening the connection here, with the options, is what lets the begin event
        # know which BEGIN to emit.
        session.connection(execution_options={_WRITE: write, _DURABLE: durable})
        yield session
        session.commit()
    except exc.DBAPIError as error:
        session.rollback()
        if is_sqlite(engine) and _is_locked(error):
            raise StoreBusy(f"the SQLite database is locked: {error.orig}") from error
        # On PostgreSQL, OperationalError is a lost connection, a restart, a deadlock or
        # a serialization failure: all worth trying the step again later.
        if error.connection_invalidated or (
                isinstance(error, exc.OperationalError) and not is_sqlite(engine)):
            raise StoreUnavailable(f"the database is unavailable: {error.orig}") from error
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
