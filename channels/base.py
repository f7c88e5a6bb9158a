"""The small interface every output channel implements, and what a write returns."""

from __future__ import annotations

from dataclasses import dataclass
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
