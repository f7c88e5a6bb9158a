"""Standard Webhooks signatures, computed by the spec's reference package (standardwebhooks).

This module only holds the secrets, parses headers defensively and applies our injected
clock; the signing scheme itself (HMAC-SHA256 over ``id.timestamp.body``, base64, ``v1,``)
is the reference implementation's, so it cannot drift from the spec.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from datetime import UTC, datetime

import standardwebhooks

from canonical import errors

PREFIX = "whsec_"
TOLERANCE = 300  # seconds either way, as the spec suggests, against replays of old requests
MAX_SIGNATURES = 16  # a rotation lists a few; more is someone probing


class Secret:
    """Signing key bytes that never show in a repr, a log line or a traceback's locals."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise errors.ConfigError("a signing secret must not be empty")
        self._key = key

    @classmethod
    def parse(cls, text: str) -> Secret:
        """A secret as written: "whsec_" + base64 (the spec's form), else the UTF-8 bytes."""
        if text.startswith(PREFIX):
            try:
                return cls(base64.b64decode(text[len(PREFIX):], validate=True))
            except binascii.Error:
                raise errors.ConfigError("a whsec_ secret must be base64") from None
        return cls(text.encode("utf-8"))

    @classmethod
    def from_env(cls, name: str) -> Secret:
        """The secret held by environment variable `name`; ConfigError naming it if unset."""
        value = os.environ.get(name)
        if not value:
            raise errors.ConfigError(f"environment variable {name} (the signing secret) is not set")
        return cls.parse(value)

    def key(self) -> bytes:
        return self._key

    def webhook(self) -> standardwebhooks.Webhook:
        # Bytes are taken as the raw key by the reference package (a str would be base64).
        return standardwebhooks.Webhook(self._key)

    def __repr__(self) -> str:
        return "Secret('**********')"


def sign(secret: Secret, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value for one message (body must be UTF-8 text)."""
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return secret.webhook().sign(msg_id, when, body.decode("utf-8"))


def headers(secret: Secret, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers of a signed message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def _offered(signature: str) -> list[bytes]:
    """The v1 signatures a header lists (space-separated during a rotation), decoded."""
    found = []
    for item in signature.split(" ")[:MAX_SIGNATURES]:
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except binascii.Error:
            continue
    return found


def verify(secrets: list[Secret], msg_id: str | None, timestamp: str | None,
           signature: str | None, body: bytes, now: float) -> str | None:
    """None if the headers carry a valid signature by any of `secrets`, else why not.

    Never raises: every malformed header or body is a reason. The reference package's own
    verify() reads the wall clock and raises on malformed input, so the timestamp check is
    done here against `now` and only the signature computation is delegated.
    """
    if not msg_id or not timestamp or not signature:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return "webhook-timestamp is not an integer"
    when = int(timestamp)
    if abs(now - when) > TOLERANCE:
        return f"webhook-timestamp is more than {TOLERANCE} s from now"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8 text, which Standard Webhooks signatures cover"
    offered = _offered(signature)
    if not offered:
        return "no v1 signature in webhook-signature"
    for secret in secrets:
        expected = sign_text(secret, msg_id, when, text)
        if any(hmac.compare_digest(expected, o) for o in offered):
            return None
    return "no valid v1 signature"


def sign_text(secret: Secret, msg_id: str, timestamp: int, text: str) -> bytes:
    """The raw v1 signature bytes of one message, by the reference package."""
    value = secret.webhook().sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), text)
    return base64.b64decode(value.partition(",")[2])
