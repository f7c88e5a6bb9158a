"""Signed session cookies with a CSRF token in each, and the key that signs them.

The cookie holds who signed in (or nobody yet), the session's CSRF token and when it was
issued, signed with itsdangerous; nothing is kept on the server. Every form carries the
token, and a POST whose token does not match its cookie's is refused. Signing in issues a
new token, so a token seen before sign-in is worth nothing after it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from gateway import private

COOKIE = "edigw_portal"
CSRF_FIELD = "csrf_token"
KEY_ENV = "EDIGW_PORTAL_SESSION_KEY"
KEY_BYTES = 32
# Within this much of the future a cookie's issue time is taken as clock skew, not forgery.
SKEW = 60.0


@dataclass(frozen=True)
class Session:
    """One browser's session: signed in (username and partner) or not yet."""

    csrf: str
    issued: float
    username: str | None = None
    partner: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.username is not None


class Sessions:
    """Issues and reads session cookies, with an injected clock for their age."""

    def __init__(self, key: bytes, *, max_age: float, clock: Callable[[], float]) -> None:
        if len(key) < 16:
            raise ValueError("the portal's session key must be at least 16 bytes")
        self._signer = URLSafeSerializer(key, salt="edigw-portal-session")
        self.max_age = max_age
        self.clock = clock

    def new(self, username: str | None = None, partner: str | None = None) -> Session:
        """A fresh session with a new CSRF token (anonymous unless a user is given)."""
        return Session(csrf=secrets.token_urlsafe(32), issued=self.clock(), username=username,
                       partner=partner)

    def sign_in(self, username: str, partner: str) -> Session:
        """The session after a successful sign-in: a new token, a new issue time."""
        return self.new(username, partner)

    def dump(self, session: Session) -> str:
        """The cookie value."""
        return self._signer.dumps({"c": session.csrf, "t": session.issued,
                                   "u": session.username, "p": session.partner})

    def load(self, value: str | None) -> Session | None:
        """The session in a cookie value; None if absent, forged, malformed or expired."""
        if not value or len(value) > 4096:
            return None
        try:
            data = self._signer.loads(value)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        csrf, issued = data.get("c"), data.get("t")
        user, partner = data.get("u"), data.get("p")
        if not isinstance(csrf, str) or not isinstance(issued, int | float):
            return None
        if not (user is None or isinstance(user, str)) or not (
                partner is None or isinstance(partner, str)) or (user is None) != (partner is None):
            return None
        now = self.clock()
        if issued > now + SKEW or now - issued > self.max_age:
            return None
        return Session(csrf=csrf, issued=float(issued), username=user, partner=partner)


def csrf_ok(session: Session | None, presented: object) -> bool:
    """Whether a form's token is the session's (in constant time)."""
    if session is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(session.csrf.encode(), presented.encode())


def signing_key(key_file: Path) -> bytes:
    """The session key: from EDIGW_PORTAL_SESSION_KEY, else key_file, made (0600) if absent.

    A key made here survives restarts, so signing in again is needed only when it changes.
    """
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        key = from_env.encode()
        if len(key) < 16:
            raise ValueError(f"{KEY_ENV} is shorter than 16 characters; use a long random "
                             "value (e.g. python -c 'import secrets; print(secrets.token_hex(32))')")
        return key
    if not key_file.exists():
        private.make_file(key_file)
        # Written once, by whoever created the empty file first; an empty file read below
        # by a racing process fails loudly rather than signing with an empty key.
        if key_file.stat().st_size == 0:
            key_file.write_text(secrets.token_hex(KEY_BYTES) + "\n", encoding="ascii")
    key = key_file.read_text(encoding="ascii").strip().encode()
    if len(key) < 16:
        raise ValueError(f"{key_file}: the portal's session key is missing or too short; "
                         "delete the file to have a new one made")
    return key
