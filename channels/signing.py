"""Standard Webhooks signatures: HMAC-SHA256 over id.timestamp.body, base64, "v1," prefix."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from canonical import errors

PREFIX = "whsec_"
TOLERANCE = 300  # seconds either way, as the spec suggests, against replays of old requests


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

    def __repr__(self) -> str:
        return "Secret('**********')"


def sign(secret: Secret, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value for one message."""
    signed = msg_id.encode("utf-8") + b"." + str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.key(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: Secret, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers of a signed message."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(secrets: list[Secret], msg_id: str | None, timestamp: str | None,
           signature: str | None, body: bytes, now: float) -> str | None:
    """None if the headers carry a valid signature by any of `secrets`, else why not."""
    if not msg_id or not timestamp or not signature:
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    try:
        when = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not an integer"
    if abs(now - when) > TOLERANCE:
        return f"webhook-timestamp is more than {TOLERANCE} s from now"
    # The header may list several space-separated signatures (during a secret rotation),
    # and several secrets may be valid at once for the same reason.
    offered = [s.partition(",")[2] for s in signature.split() if s.startswith("v1,")]
    for secret in secrets:
        expected = sign(secret, msg_id, when, body).partition(",")[2]
        if any(hmac.compare_digest(expected.encode(), o.encode()) for o in offered):
            return None
    return "no valid v1 signature"
