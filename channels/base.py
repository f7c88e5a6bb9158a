"""The small interfaces of the channels: Output (write events) and Input (hand over bytes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from canonical import envelope, errors
from canonical.envelope import Event


@dataclass(frozen=True)
class DeliveryReceipt:
    """The destination has the event: newly applied, or already had it (duplicate)."""

    event_id: str
    endpoint: str  # where it went, e.g. "erp:http http://127.0.0.1:8080/events"
    duplicate: bool = False  # the destination already had this event id
    status: int | None = None  # the HTTP status, for HTTP destinations
    detail: str = ""


@runtime_checkable
class Output(Protocol):
    """A destination: connect once, write events, close. It never retries on its own."""

    def connect(self) -> None:
        """Open what writing needs; raise TransientError or PermanentError if it cannot."""

    def write(self, event: Event) -> DeliveryReceipt:
        """Deliver one event, at most once per event id; raise TransientError or PermanentError."""

    def close(self) -> None:
        """Release what connect opened; safe to call twice or without connect."""


def encode(event: Event) -> bytes:
    """The event's canonical JSON bytes; PermanentError if its data cannot be JSON."""
    try:
        return envelope.to_json(event)
    except (TypeError, ValueError) as exc:
        raise errors.PermanentError(f"event {event.id} cannot be written as JSON: {exc}") from exc


@dataclass(frozen=True)
class InboundMessage:
    """One input handed over by an inbound channel: who sent which bytes under what name.

    A channel that cannot take something it found (not a regular file, too large) hands
    it over with `refused` saying why and no bytes: the intake records a dead letter that
    says so, and the channel's ack then moves it aside. A large input may come as an open
    descriptor (`fd`, positioned anywhere: it is read from its start) instead of bytes, so
    that it never has to be in memory whole; the channel closes it on ack or close.
    """

    partner: str
    source_name: str  # the name the partner gave it (a remote file name), checked, never a path
    data: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)  # endpoint, remote path, size, ...
    # The channel's own handle for ack(); opaque to everyone else.
    token: object = field(default=None, compare=False, repr=False)
    fd: int | None = field(default=None, compare=False, repr=False)
    refused: str | None = None  # why the channel would not take it (then there are no bytes)

    @property
    def endpoint(self) -> str:
        """Where it came from, as the store records it (`folder:/var/inbox/acme`, `sftp://...`)."""
        return self.metadata.get("endpoint", "")


@runtime_checkable
class Input(Protocol):
    """A source: connect, read what is ready, ack each message once the store has committed it.

    A message read but never acked is offered again after the next connect (same bytes),
    so a crash anywhere before the store's commit loses nothing; the store recognises the
    repeat (same partner, same bytes). A caller whose commit failed closes the input to have
    its unacked messages offered again. It never retries on its own beyond its backoff.
    """

    def connect(self) -> None:
        """Open what reading needs; raise TransientError or PermanentError if it cannot."""

    def read(self) -> list[InboundMessage]:
        """The messages ready now (maybe none); raise TransientError or PermanentError."""

    def unchanged(self, message: InboundMessage) -> bool:
        """Just before the commit: whether the source still holds what was read.

        False lets the message go (it is offered again once it settles) and the caller
        leaves it out of the commit: a partner still writing a file after it was read
        must not have its first half stored as a message.
        """

    def ack(self, message: InboundMessage) -> None:
        """The store has committed `message`: archive or delete it at the source."""

    def close(self) -> None:
        """Release what connect opened; unacked messages will be offered again."""
