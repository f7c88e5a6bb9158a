"""The audit trail: one row per operator action and per refused caller."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import Audit

# Reasons and details come from people and callers; the table is not a dump site.
MAX_REASON = 2000


def record(session: Session, *, actor: str, action: str, target: str,
           reason: str | None = None, details: dict[str, Any] | None = None) -> Audit:
    """Add an audit row in the caller's transaction, so it commits with the action."""
    # PostgreSQL text cannot hold NUL; the trail keeps a visible stand-in instead of failing.
    reason = reason.replace("\x00", "\ufffd")[:MAX_REASON] if reason else reason
    row = Audit(at=db.utcnow(), actor=actor[:200], action=action[:64], target=target[:200],
                reason=reason, details=details or {})
    session.add(row)
    return row
