"""Portal users: a partner's people who sign in to upload CSV (passwords as argon2 hashes)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import PortalUser


class UserExists(ValueError):
    """A portal user of that name exists already."""


def add(session: Session, *, username: str, partner: str, password_hash: str) -> PortalUser:
    """A new user; UserExists when the name is taken (names are unique across partners)."""
    if find(session, username) is not None:
        raise UserExists(f"portal user {username!r} exists already")
    user = PortalUser(username=username, partner=partner, password_hash=password_hash,
                      created_at=db.utcnow())
    session.add(user)
    session.flush()
    return user


def find(session: Session, username: str) -> PortalUser | None:
    """The user of that name (enabled or not), or None."""
    return session.scalars(select(PortalUser).where(PortalUser.username == username)).first()


def active(session: Session, username: str) -> PortalUser | None:
    """The user of that name if it may sign in, else None."""
    user = find(session, username)
    return user if user is not None and user.disabled_at is None else None


def set_hash(session: Session, user_id: int, password_hash: str) -> None:
    """Store a new hash (a rehash with stronger parameters, or a new password)."""
    user = session.get_one(PortalUser, user_id)
    user.password_hash = password_hash


def disable(session: Session, username: str) -> bool:
    """Stop a user signing in (their uploads stay); False when there is no such user."""
    user = find(session, username)
    if user is None:
        return False
    if user.disabled_at is None:
        user.disabled_at = db.utcnow()
    return True


def all_users(session: Session, partner: str | None = None) -> list[PortalUser]:
    """Every user (of one partner), by name."""
    q = select(PortalUser).order_by(PortalUser.username)
    if partner is not None:
        q = q.where(PortalUser.partner == partner)
    return list(session.scalars(q))
