"""Whether the store answers: for health checks, which must not touch any table."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from gateway.store import db


def check(engine: Engine) -> None:
    """Return when the store answers a trivial read; raise whatever reaching it raised."""
    with db.transaction(engine, write=False) as s:
        s.execute(text("SELECT 1"))
