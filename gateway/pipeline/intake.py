"""The intake: what every inbound channel hands over becomes a stored message, then is acked.

One function for every way a partner reaches us (a folder, SFTP, a webhook, a portal
upload): `accept` stores the messages' bytes and enqueues their validate items in one
commit, and only then tells the channel (`Input.ack`) that it may archive or delete its
copy. A crash before the commit leaves the channel's copy in place, offered again; a
crash after it and before the ack offers the same bytes again, and the store recognises
them (same partner, same bytes: the same message, nothing done twice). The format is not
looked at here: the validate stage tells X12 from CSV and JSON.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from channels.base import InboundMessage, Input
from gateway.pipeline import crash, parking
from gateway.pipeline.context import Context
from gateway.store import claims, db, payloads, receive

log = logging.getLogger(__name__)
_CHANGED = b"changed while it was stored"  # a marker, compared by identity


@dataclass(frozen=True)
class Accepted:
    """What became of one inbound message: new, a repeat of a known one, or refused."""

    message: InboundMessage
    outcome: str  # new, duplicate, refused
    message_id: int | None = None


def accept(ctx: Context, messages: Sequence[InboundMessage], source: Input | None = None, *,
           within: Callable[[Session, list[Accepted]], None] | None = None,
           session: Session | None = None) -> list[Accepted]:
    """Store messages and enqueue their validation in one commit; then ack each to source.

    A message whose `fd` holds its content has its parts past the first stored before,
    one short transaction each (payloads.store_file), so the commit stays small. A refused
    message becomes a dead letter naming the channel and the reason. Without a source
    (a webhook answers its caller itself) nothing is acked. `within` is called once in the
    same transaction with what became of every message (a webhook records its idempotency
    keys there); what it raises rolls the whole commit back.

    session: store them in the caller's transaction instead (it commits, then logs them
    with log_accepted; nothing is acked, so there must be no source), for messages whose
    bytes are in hand (no fd).
    """
    if session is not None and (source is not None or any(m.fd is not None for m in messages)):
        raise ValueError("accept in the caller's transaction takes no source and no fd")
    if not messages:
        return []
    contents: list[bytes | payloads.Stored | None] = []
    for m in messages:
        if m.refused is not None:
            contents.append(None)
        elif m.fd is not None:
            try:
                contents.append(payloads.store_file(ctx.engine, m.fd, m.source_name))
            except payloads.ChangedWhileRead:
                if source is None:
                    raise
                contents.append(_CHANGED)  # its channel sees the change below, lets it go
        else:
            contents.append(m.data)
    crash.point("after_download_before_commit")
    if source is not None:
        # A source written to since it was read is left out: it comes again once settled.
        kept = [(m, data) for m, data in zip(messages, contents, strict=True)
                if source.unchanged(m) and data is not _CHANGED]
    else:
        kept = list(zip(messages, contents, strict=True))
    out: list[Accepted] = []
    with (contextlib.nullcontext(session) if session is not None
          else db.transaction(ctx.engine)) as s:
        # Bytes in hand are received set-based, in a few statements for all of them.
        plain = [i for i, (_, data) in enumerate(kept) if isinstance(data, bytes)]
        got_plain = dict(zip(plain, receive.receive_many(s, [
            receive.Incoming(kept[i][0].partner, kept[i][0].endpoint or "unknown",
                             kept[i][0].source_name, kept[i][1])  # type: ignore[arg-type]
            for i in plain]), strict=True)) if plain else {}
        fresh: list[int] = []
        for i, (m, data) in enumerate(kept):
            if data is None:
                parking.park(s, stage="validate", endpoint=m.endpoint or f"partner:{m.partner}",
                             reason=f"{m.source_name}: refused unread: {m.refused}", chain=[])
                out.append(Accepted(m, "refused"))
                continue
            if i in got_plain:
                message_id, new = got_plain[i]
            else:
                got = receive.receive(s, partner=m.partner, channel=m.endpoint or "unknown",
                                      source_name=m.source_name, data=data)
                message_id, new = got.message.id, got.new
            if new:
                fresh.append(message_id)
            out.append(Accepted(m, "new" if new else "duplicate", message_id))
        claims.enqueue_many(s, "validate", fresh)
        if within is not None:
            within(s, out)
    if source is not None:
        for a in out:
            crash.point("after_commit_before_archive")
            source.ack(a.message)
    if session is None:
        log_accepted(out)
    return out


def log_accepted(out: Sequence[Accepted]) -> None:
    """A line for each message accepted, once its commit is done (not while it holds the
    store's write lock)."""
    for a in out:
        if a.outcome == "refused":
            log.warning("%s %s: refused unread: %s", a.message.endpoint, a.message.source_name,
                        a.message.refused)
        else:
            log.info("%s %s: %s message %s", a.message.endpoint, a.message.source_name,
                     "new" if a.outcome == "new" else "repeat of", a.message_id)
