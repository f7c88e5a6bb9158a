"""ERP as a staging table: one row per event, the event id its unique key."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from canonical import errors
from canonical.envelope import Event
from channels import base
from channels.base import DeliveryReceipt
from channels.config import ChannelConfig, setting

log = logging.getLogger(__name__)


class SqlOutputConfig(ChannelConfig):
    """Settings of the `sql` ERP output."""

    url: str = setting(
        secret=True, example="postgresql+psycopg://gateway@erp-db/erp",
        description="SQLAlchemy database URL of the ERP's database (may hold a password).")
    table: str = setting("edigw_staging", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                         example="edigw_staging", description="The staging table.")
    db_schema: str | None = setting(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", example="erp",
                                    description="The table's schema; unset = the default one.")
    create_table: bool = setting(False, example=True,
                                 description="Create the table on connect if it is missing.")
    timeout: float = setting(10.0, gt=0, example=10.0,
                             description="Seconds to connect, or to wait for a locked database.")


def staging_table(name: str, schema: str | None = None) -> sa.Table:
    """The staging table's layout: the ERP reads rows, the event id is unique."""
    return sa.Table(
        name, sa.MetaData(schema=schema),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(200)),
        sa.Column("payload", sa.Text, nullable=False),  # the CloudEvent as JSON
        sa.Column("staged_at", sa.DateTime(timezone=True), nullable=False),
    )


class SqlOutput:
    """Inserts events into the ERP's staging table; a duplicate key means already delivered."""

    def __init__(self, config: SqlOutputConfig) -> None:
        self.config = config
        self.table = staging_table(config.table, config.db_schema)
        self.endpoint = f"erp:sql {self.table.fullname}"  # never the URL: it may hold a password
        self._engine: sa.Engine | None = None

    def connect(self) -> None:
        if self._engine is not None:
            return
        try:
            engine = sa.create_engine(self.config.url, connect_args=self._connect_args(),
                                      pool_pre_ping=True)
        except (sa_exc.ArgumentError, ImportError) as exc:
            raise errors.ConfigError(f"{self.endpoint}: bad database URL: {exc}") from None
        try:
            with engine.begin() as db:
                if self.config.create_table:
                    self.table.create(db, checkfirst=True)
                elif not sa.inspect(db).has_table(self.table.name, schema=self.table.schema):
                    raise errors.ConfigError(f"{self.endpoint}: the staging table does not exist"
                                             " (create it, or set create_table)")
        except sa_exc.DBAPIError as exc:
            engine.dispose()
            raise _mapped(exc, f"connecting to {self.endpoint}") from exc
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine

    def write(self, event: Event) -> DeliveryReceipt:
        if self._engine is None:
            self.connect()
        assert self._engine is not None
        row = _row(event)
        where = f"inserting {event.id} into {self.endpoint}"
        try:
            with self._engine.begin() as db:
                db.execute(self.table.insert(), row)
        except sa_exc.IntegrityError as exc:
            # Portable across databases, unlike ON CONFLICT; a duplicate only if the id is there.
            if self._has(event.id):
                return DeliveryReceipt(event.id, self.endpoint, duplicate=True)
            raise errors.DeliveryRejected(f"{where}: {exc.orig}") from exc
        except sa_exc.DBAPIError as exc:
            raise _mapped(exc, where) from exc
        log.debug("%s: done", where)
        return DeliveryReceipt(event.id, self.endpoint)

    def write_many(self, events: Sequence[Event],
                   on_outcome: base.OnOutcome | None = None) -> list[base.Outcome]:
        """The events whose ids the table lacks inserted in one transaction; the others
        are duplicates. Should anything go wrong (another writer inserted one meanwhile,
        an event the table refuses), the batch is undone and written event by event, so
        that each event gets its own outcome."""
        if self._engine is None:
            self.connect()
        assert self._engine is not None
        try:
            rows = [_row(e) for e in events]
        except errors.PermanentError:
            return base.write_each(self.write, events, on_outcome)
        ids = [r["event_id"] for r in rows]
        c = self.table.c
        try:
            with self._engine.begin() as db:
                have = set(db.scalars(sa.select(c.event_id).where(c.event_id.in_(ids))))
                new = {r["event_id"]: r for r in rows if r["event_id"] not in have}
                if new:
                    db.execute(self.table.insert(), list(new.values()))
        except sa_exc.IntegrityError:
            return base.write_each(self.write, events, on_outcome)
        except sa_exc.DBAPIError as exc:
            error = _mapped(exc, f"inserting {len(events)} events into {self.endpoint}")
            if isinstance(error, errors.PermanentError):
                return base.write_each(self.write, events, on_outcome)
            out: list[base.Outcome] = [error] * len(events)
        else:
            out, first = [], set()
            for event_id in ids:
                # An id twice in one batch: inserted once, the second a duplicate.
                duplicate = event_id in have or event_id in first
                first.add(event_id)
                out.append(DeliveryReceipt(event_id, self.endpoint, duplicate=duplicate))
        if on_outcome is not None:
            for n, outcome in enumerate(out):
                on_outcome(n, outcome)
        return out

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _has(self, event_id: str) -> bool:
        assert self._engine is not None
        query = sa.select(self.table.c.event_id).where(self.table.c.event_id == event_id)
        try:
            with self._engine.connect() as db:
                return db.execute(query).first() is not None
        except sa_exc.DBAPIError as exc:
            raise _mapped(exc, f"looking up {event_id} in {self.endpoint}") from exc

    def _connect_args(self) -> dict[str, object]:
        backend = sa.engine.make_url(self.config.url).get_backend_name()
        if backend == "sqlite":
            return {"timeout": self.config.timeout}  # how long to wait on a locked database
        if backend == "postgresql":
            return {"connect_timeout": max(1, round(self.config.timeout))}
        return {}


def _row(event: Event) -> dict[str, object]:
    return {"event_id": event.id, "type": event.type, "source": event.source,
            "subject": event.subject, "payload": base.encode(event).decode("utf-8"),
            "staged_at": datetime.now(UTC)}


def _mapped(exc: sa_exc.DBAPIError, where: str) -> errors.GatewayError:
    """A database error as ours: lost connections and locks are transient, bad data permanent."""
    message = f"{where}: {type(exc.orig).__name__}: {exc.orig}"
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or exc.connection_invalidated:
        return errors.DeliveryUnavailable(message)
    if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError):
        return errors.DeliveryRejected(message)
    # ProgrammingError and the like: the table does not fit what we insert; an operator must act.
    return errors.ConfigError(message)
