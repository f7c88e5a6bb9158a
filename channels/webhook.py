"""Webhooks: partners POST documents to us, signed as the Standard Webhooks spec says.

The HTTP server reads the request (gateway/api/webhooks.py); this channel decides, from
the three webhook-* headers, the content type, the body and the clock, whether it is a
signed message of the partner's, and makes the InboundMessage the intake stores. It is an
`Input` whose messages arrive by themselves: read() has nothing to poll, and the HTTP
answer (202, after the store's commit) is the acknowledgment, so ack() has nothing to do.

The signature is checked against every configured secret (`secret`, or `secrets` while
rotating), with the spec's 5-minute tolerance on webhook-timestamp against the caller's
clock (channels.signing, which leaves the HMAC to the spec's reference package).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import pydantic

from canonical import errors
from channels import signing
from channels.base import InboundMessage
from channels.config import ChannelConfig, EnvSecret, setting

# What a partner may post, and the extension its stored name gets (the validate stage
# tells X12, CSV and JSON apart; the name helps a person reading the timeline).
CONTENT_TYPES = {"application/json": "json", "application/edi-x12": "edi", "text/csv": "csv"}
# Signatures cover UTF-8 text (the reference package signs str), so only these charsets.
CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}
# The spec's ids look like msg_2KWPBgLlAfxdpx2AI54pPJ85f4W; any visible ASCII is taken.
_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MIN_SECRET_BYTES = 16  # the spec suggests 24 to 64 random bytes; fewer is guessable
DEFAULT_MAX_BYTES = 10_000_000


class WebhookRefused(errors.PermanentError):
    """The request is not a message this webhook takes."""

    status = 400


class Unsigned(WebhookRefused):
    """The request does not carry a valid signature of the partner's."""

    status = 401


class UnsupportedType(WebhookRefused):
    """The body's content type is not one this webhook takes."""

    status = 415


class WebhookInputConfig(ChannelConfig):
    """Settings of a partner's `webhook` channel (conf/partners/<id>.yaml, channels.webhook)."""

    secret: EnvSecret | None = setting(
        None, secret=True, example={"env": "BRIGHTLINE_WEBHOOK_SECRET"},
        description="The signing secret, by environment variable, whose value is written "
                    "as the spec does: whsec_ then the key in base64. Or give secrets.")
    secrets: list[EnvSecret] | None = setting(
        None, secret=True, min_length=1, max_length=8,
        example=[{"env": "BRIGHTLINE_WEBHOOK_SECRET"}, {"env": "BRIGHTLINE_WEBHOOK_SECRET_NEW"}],
        description="Several secrets at once, while rotating: a message signed with any of "
                    "them is taken. Or give secret.")
    max_bytes: int = setting(
        DEFAULT_MAX_BYTES, gt=0, le=100_000_000, example=DEFAULT_MAX_BYTES,
        description="The largest body taken; a larger one is refused (413) as it is read.")

    @pydantic.model_validator(mode="after")
    def _one_of_secret_and_secrets(self) -> WebhookInputConfig:
        if (self.secret is None) == (self.secrets is None):
            raise ValueError("give exactly one of secret and secrets")
        return self

    def envs(self) -> list[EnvSecret]:
        """The secrets' variables, in order."""
        return [self.secret] if self.secret is not None else list(self.secrets or ())


def load_secret(env: EnvSecret) -> signing.Secret:
    """The signing secret held by env's variable; ConfigError naming the variable (never
    the value) when it is unset, not whsec_ + base64, or too short."""
    text = env.value()
    if not text.startswith(signing.PREFIX):
        raise errors.ConfigError(f"environment variable {env.env}: a webhook secret is "
                                 f"written {signing.PREFIX}<base64 of the key>")
    try:
        secret = signing.Secret.parse(text)
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"environment variable {env.env}: {exc}") from None
    if len(secret.key()) < MIN_SECRET_BYTES:
        raise errors.ConfigError(f"environment variable {env.env}: the key is "
                                 f"{len(secret.key())} bytes; use at least {MIN_SECRET_BYTES}"
                                 " random bytes (the spec suggests 24 to 64)")
    return secret


def media_type(content_type: str | None) -> str:
    """The extension for a Content-Type header; UnsupportedType if it is not one we take."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    ext = CONTENT_TYPES.get(media)
    if ext is None:
        taken = ", ".join(CONTENT_TYPES)
        raise UnsupportedType(f"Content-Type {media or '(none)'!r} is not taken here; send "
                              f"one of {taken}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in CHARSETS:
            raise UnsupportedType("only UTF-8 bodies are taken (signatures cover UTF-8 text)")
    return ext


class WebhookInput:
    """A partner's webhook endpoint: take() turns one checked request into a message."""

    def __init__(self, settings: WebhookInputConfig, *, partner: str) -> None:
        self.settings = settings
        self.partner = partner
        self.endpoint = f"webhook:/v1/partners/{partner}/messages"
        self._secrets: list[signing.Secret] | None = None

    @property
    def max_bytes(self) -> int:
        return self.settings.max_bytes

    def connect(self) -> None:
        """Read the secrets from the environment; ConfigError naming the variable if one is
        unset or malformed."""
        self._secrets = [load_secret(env) for env in self.settings.envs()]

    def read(self) -> list[InboundMessage]:
        """Nothing to poll: each request is handed to the intake as it arrives."""
        return []

    def unchanged(self, message: InboundMessage) -> bool:
        """A request's body cannot change once received."""
        return True

    def ack(self, message: InboundMessage) -> None:
        """The HTTP answer after the store's commit is the acknowledgment: nothing to do."""

    def close(self) -> None:
        self._secrets = None

    def take(self, headers: Mapping[str, str], body: bytes, *, now: float) -> InboundMessage:
        """The message of one request (headers with lower-case names), or why not:
        Unsigned (401), UnsupportedType (415) or WebhookRefused (400)."""
        if self._secrets is None:
            self.connect()
        assert self._secrets is not None
        ext = media_type(headers.get("content-type"))
        msg_id = headers.get("webhook-id")
        why = signing.verify(self._secrets, msg_id, headers.get("webhook-timestamp"),
                             headers.get("webhook-signature"), body, now)
        if why is not None:
            raise Unsigned(why)
        assert msg_id is not None
        if not _ID.match(msg_id):
            raise WebhookRefused("webhook-id must be 1 to 255 visible ASCII characters")
        if ext == "json":
            try:
                json.loads(body)
            except ValueError as exc:  # UnicodeDecodeError too; verify has ruled it out
                raise WebhookRefused(f"the body is not JSON: {exc}") from None
        name = _UNSAFE.sub("_", msg_id).lstrip(".")[:200] or "message"
        return InboundMessage(
            partner=self.partner, source_name=f"{name}.{ext}", data=body,
            metadata={"endpoint": self.endpoint, "webhook_id": msg_id,
                      "content_type": next(k for k, v in CONTENT_TYPES.items() if v == ext)})
