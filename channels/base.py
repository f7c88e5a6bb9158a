"""The small interfaces of the channels: Output (write events) and Input (hand over bytes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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


# One event's outcome in a batch: its receipt, or the error that write would have raised.
Outcome = DeliveryReceipt | Exception
# Told each outcome as soon as it is known (by its index in the batch), maybe from another
# thread, before write_many returns: the outbox notes each receipt at once, so that a crash
# later in the batch does not send it again.
OnOutcome = Callable[[int, Outcome], None]


@runtime_checkable
class Output(Protocol):
    """A destination: connect once, write events, close. It never retries on its own.

    It may also take a batch at once with `write_many(events, on_outcome)` (see the
    function write_many below, which the outbox calls).
    """

    def connect(self) -> None:
        """Open what writing needs; raise TransientError or PermanentError if it cannot."""

    def write(self, event: Event) -> DeliveryReceipt:
        """Deliver one event, at most once per event id; raise TransientError or PermanentError."""

    def close(self) -> None:
        """Release what connect opened; safe to call twice or without connect."""


def write_many(output: Output, events: Sequence[Event],
               on_outcome: OnOutcome | None = None) -> list[Outcome]:
    """Deliver a batch: each event's own outcome, in order (an error is returned, not raised).

    An output may do a batch at once (one fsync, one transaction, several requests in
    flight) with a method `write_many(events, on_outcome)` of the same contract; one that
    has none writes the events one by one with `write`.
    """
    own = getattr(output, "write_many", None)
    if own is not None:
        return own(events, on_outcome)
    return write_each(output.write, events, on_outcome)


def write_each(write: Callable[[Event], DeliveryReceipt], events: Sequence[Event],
               on_outcome: OnOutcome | None = None) -> list[Outcome]:
    """The events written one after the other with write, each outcome told as it comes."""
    out: list[Outcome] = []
    for n, event in enumerate(events):
        try:
            outcome: Outcome = write(event)
        except Exception as exc:  # the event's outcome, as write would raise it
            outcome = exc
        out.append(outcome)
        if on_outcome is not None:
            on_outcome(n, outcome)
    return out


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
