"""Alembic's entry point: migrate the connection or URL that gateway.store.migrate hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from gateway.store import db, models

# Any constant will do, as long as it never changes: it names "the migration lock".
_PG_LOCK_KEY = 0x6564_6967_775F_6462  # "edigw_db"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=models.Base.metadata,
        # SQLite DDL is transactional too once we emit BEGIN ourselves: a failed upgrade
        # leaves the previous schema, not half of the new one.
        transactional_ddl=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two processes starting `edigw run` at once must not both create the tables;
            # SQLite needs nothing here, as BEGIN IMMEDIATE already serialises them.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        context.run_migrations()


def main() -> None:
    """Run the migrations online (we never render SQL scripts offline)."""
    attrs = context.config.attributes
    connection = attrs.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = db.make_engine(attrs["url"])
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


main()
