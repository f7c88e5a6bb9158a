"""Schema migrations, run from code: no alembic.ini is needed at run time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Connection

from gateway.store import db

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def config(url: str | URL | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic Config for the store at url (or on an open connection)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Handed over as attributes, not as sqlalchemy.url: the ini parser would read the
    # `%` of an escaped URL (e.g. ?options=-csearch_path%3Dx) as interpolation.
    cfg.attributes["url"] = url or db.DEFAULT_URL
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | URL | None = None, revision: str = "head") -> None:
    """Bring the store at url up to revision (the newest by default); safe to repeat."""
    command.upgrade(config(url), revision)


def head() -> str:
    """The newest revision this code knows."""
    rev = ScriptDirectory.from_config(config()).get_current_head()
    assert rev is not None
    return rev


def current(url: str | URL | None = None) -> str | None:
    """The revision the store at url is at (None before the first upgrade)."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
