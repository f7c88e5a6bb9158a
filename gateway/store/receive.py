"""Receiving: raw payloads kept by content hash, one message per partner and content,
and the duplicate check on interchange control numbers (ISA13)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, insert, or_, select, text
from sqlalchemy.orm import Session

from gateway.store import db, models, payloads
from gateway.store.models import Interchange, InterchangeStatus, Message, Payload

# A partner may reuse ISA13 after wrapping or a reset; within this window a repeat is news.
DEFAULT_WINDOW = timedelta(days=365)
_PAYLOADS, _MESSAGES = Payload.__table__, Message.__table__
# Interchanges whose sets go on to mapping: new ones, and quarantined ones an operator let through.
PASSED = (InterchangeStatus.ACCEPTED, InterchangeStatus.RELEASED)


@dataclass(frozen=True)
class Received:
    """The message a payload became, and whether this call created it."""

    message: Message
    new: bool


def sha256(data: bytes) -> str:
    """The content address of data."""
    return hashlib.sha256(data).hexdigest()


def store_payload(session: Session, data: bytes | payloads.Stored, *,
                  now: datetime | None = None) -> str:
    """Keep data (once, whoever sends it) and return its sha256.

    data may be a file already stored in parts (payloads.store_file): only its payloads
    row, which completes it, is written here. Bytes over a part are kept in parts too,
    so that every large payload is read back a part at a time.
    """
    stored = data if isinstance(data, payloads.Stored) else None
    digest = stored.sha256 if stored else sha256(data)  # type: ignore[arg-type]
    # Ask first: shipping a large payload to the database only to have it ignored is waste.
    if session.scalar(select(exists().where(Payload.sha256 == digest))):
        return digest
    if stored is None:
        assert isinstance(data, bytes)
        first, rest = payloads.split(data)
        for n, part in enumerate(rest, 1):
            payloads.insert_part(session, digest, n, part)
        stored = payloads.Stored(digest, len(data), first, len(rest) + 1)
    session.execute(db.insert_new(session, Payload, Payload.sha256)
                    .values(sha256=digest, size=stored.size, data=stored.first,
                            parts=stored.parts, created_at=now or db.utcnow()))
    return digest


def receive(session: Session, *, partner: str, channel: str, source_name: str,
            data: bytes | payloads.Stored, now: datetime | None = None) -> Received:
    """The message for data from partner: a new one, or the one made when it came before.

    The same bytes from the same partner are the same message whatever the file's name
    or channel, so a re-downloaded or renamed file has no second effect.
    """
    now = now or db.utcnow()
    digest = store_payload(session, data, now=now)
    # ON CONFLICT rather than look-then-insert: two workers receiving the same file at
    # once on PostgreSQL must not both create it (or fail on the unique constraint).
    new_id = session.scalar(
        db.insert_new(session, Message, Message.partner, Message.payload_sha256)
        .values(partner=partner, channel=channel, source_name=source_name,
                payload_sha256=digest, received_at=now, updated_at=now)
        .returning(Message.id))
    message = session.scalars(select(Message).where(
        Message.partner == partner, Message.payload_sha256 == digest)).one()
    return Received(message=message, new=new_id is not None)


@dataclass(frozen=True)
class Incoming:
    """One input to receive with others in one go (receive_many)."""

    partner: str
    channel: str
    source_name: str
    data: bytes


def receive_many(session: Session, items: list[Incoming], *,
                 now: datetime | None = None) -> list[tuple[int, bool]]:
    """receive() for many inputs at once, set-based: (message id, new) for each, in order.

    A handful of statements whatever the count (a webhook's group commit takes dozens of
    requests at a time); the same bytes twice in items are one message, new once.
    """
    now = now or db.utcnow()
    digests = [sha256(i.data) for i in items]
    # No look first (one statement fewer): a payload already kept is skipped by the conflict.
    rows, seen = [], set()
    for item, digest in zip(items, digests, strict=True):
        if digest in seen:
            continue
        seen.add(digest)
        if len(item.data) > payloads.PART_BYTES:
            store_payload(session, item.data, now=now)  # kept in parts
            continue
        rows.append({"sha256": digest, "size": len(item.data), "data": item.data, "parts": 1,
                     "created_at": now})
    # Core statements on the tables (not the ORM's bulk insert): no objects are wanted
    # back, and the ORM's bookkeeping would cost more than the statements themselves.
    if rows:
        db.core(session, db.insert_new(session, _PAYLOADS, _PAYLOADS.c.sha256), rows)
    keys = {(i.partner, d): i for i, d in zip(items, digests, strict=True)}
    inserted = db.core(
        session,
        db.insert_new(session, _MESSAGES, _MESSAGES.c.partner, _MESSAGES.c.payload_sha256)
        .returning(_MESSAGES.c.id, _MESSAGES.c.partner, _MESSAGES.c.payload_sha256),
        [{"partner": p, "channel": i.channel, "source_name": i.source_name,
          "payload_sha256": d, "received_at": now, "updated_at": now}
         for (p, d), i in keys.items()]).all()
    ids = {(p, d): i for i, p, d in inserted}
    new = set(ids)
    known = keys.keys() - new  # received before: looked up, the common case has none
    if known:
        ids.update({(p, d): i for i, p, d in session.execute(
            select(Message.id, Message.partner, Message.payload_sha256)
            .where(Message.payload_sha256.in_({d for _, d in known}),
                   Message.partner.in_({p for p, _ in known})))})
    out, given = [], set()
    for item, digest in zip(items, digests, strict=True):
        key = (item.partner, digest)
        out.append((ids[key], key in new and key not in given))
        given.add(key)
    return out


def payload(session: Session, digest: str) -> bytes:
    """The raw bytes stored under digest, whole (large ones: payloads.open_payload)."""
    return payloads.read_all(session, digest)


def envelope_key(partner: str, sender_qualifier: str, sender_id: str,
                 receiver_qualifier: str, receiver_id: str, isa13: str) -> tuple[str, ...]:
    """What identifies an interchange for the duplicate check, as it is kept (trimmed, fitted)."""
    return (partner, *(models.fit(v.strip()) or "" for v in (
        sender_qualifier, sender_id, receiver_qualifier, receiver_id, isa13)))


def content_digest(content: bytes | str) -> str:
    """The content hash kept for an interchange (content: its bytes, or a digest of them)."""
    return sha256(content.encode("utf-8") if isinstance(content, str) else content)


def judge(earlier: Sequence[tuple[int, str]], digest: str) -> tuple[str, int | None]:
    """The verdict on an interchange and the one it repeats, from (id, content digest) of
    those with its key in the window before it (oldest first, duplicates left out).

    accepted: its control number is new. duplicate: the same control number with the
    same content came before, so it has no new effect. quarantined: the same control
    number with other content; an operator decides, since either copy may be the right one.
    """
    same = next((i for i, d in earlier if d == digest), None)
    if same is not None:
        return InterchangeStatus.DUPLICATE, same
    if earlier:
        return InterchangeStatus.QUARANTINED, earlier[0][0]
    return InterchangeStatus.ACCEPTED, None


def _lock_keys(session: Session, keys: Iterable[tuple[str, ...]]) -> None:
    """Two workers judging the same control number at once would both see nothing before
    them: on PostgreSQL each key is locked for the transaction, in one order for all (no
    deadlock); SQLite needs no lock, its writers already run one at a time."""
    if db.is_sqlite(session):
        return
    names = sorted({"interchange:" + "\x1f".join(k) for k in keys})
    if names:
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                             "FROM unnest(CAST(:keys AS text[])) AS k"), {"keys": names})


def _same_envelope(envelope: tuple[str, ...]) -> tuple[Any, ...]:
    """The conditions on partner, sender and receiver: a key without its ISA13."""
    return (Interchange.partner == envelope[0], Interchange.sender_qualifier == envelope[1],
            Interchange.sender_id == envelope[2], Interchange.receiver_qualifier == envelope[3],
            Interchange.receiver_id == envelope[4])


def _same_key(key: tuple[str, ...]) -> tuple[Any, ...]:
    return (*_same_envelope(key), Interchange.isa13 == key[5])


def _by_envelope(keys: Iterable[tuple[str, ...]]) -> list[tuple[tuple[str, ...], list[str]]]:
    """Keys grouped by all but their control number (ISA13), in a fixed order."""
    grouped: dict[tuple[str, ...], list[str]] = {}
    for key in sorted(keys):
        grouped.setdefault(key[:5], []).append(key[5])
    return list(grouped.items())


def record_interchange(session: Session, *, message_id: int, partner: str,
                       sender_qualifier: str, sender_id: str, receiver_qualifier: str,
                       receiver_id: str, isa13: str, content: bytes | str,
                       window: timedelta = DEFAULT_WINDOW,
                       now: datetime | None = None) -> Interchange:
    """Record an interchange and judge it against those of the window before it (judge)."""
    now = now or db.utcnow()
    key = envelope_key(partner, sender_qualifier, sender_id, receiver_qualifier, receiver_id,
                       isa13)
    _lock_keys(session, [key])
    digest = content_digest(content)
    earlier = session.execute(
        select(Interchange.id, Interchange.content_sha256)
        .where(*_same_key(key), Interchange.received_at >= now - window,
               Interchange.status != InterchangeStatus.DUPLICATE)
        .order_by(Interchange.received_at, Interchange.id)).all()
    status, original = judge([tuple(r) for r in earlier], digest)  # type: ignore[misc]
    row = Interchange(message_id=message_id, partner=key[0], sender_qualifier=key[1],
                      sender_id=key[2], receiver_qualifier=key[3], receiver_id=key[4],
                      isa13=key[5], content_sha256=digest, received_at=now, status=status,
                      duplicate_of_id=original)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class Judged:
    """One interchange of a message as recorded: its row, verdict and whether it was there
    before (a replay of the message's validation finds its interchanges recorded)."""

    id: int
    isa13: str
    status: str
    duplicate_of_id: int | None
    recorded_before: bool


def record_interchanges(session: Session, messages: Sequence[tuple[int, Sequence[tuple[tuple[str, ...], str]]]],
                        *, window: timedelta = DEFAULT_WINDOW,
                        now: datetime | None = None) -> dict[int, list[Judged]]:
    """record_interchange for a batch of messages, set-based: one look-up for all, one insert.

    messages: (message id, its interchanges in file order as (envelope_key, content_digest)).
    A message whose validation recorded as many interchanges before (a replay) keeps
    those; the others are recorded now, each judged against the store's and those before
    it in this batch, in order, as one by one would.
    """
    now = now or db.utcnow()
    ids = [m for m, _ in messages]
    keys = {k for _, ics in messages for k, _ in ics}
    if not keys:
        return {m: [] for m in ids}
    _lock_keys(session, keys)
    cols = (Interchange.partner, Interchange.sender_qualifier, Interchange.sender_id,
            Interchange.receiver_qualifier, Interchange.receiver_id, Interchange.isa13)
    rows = session.execute(
        select(Interchange.id, Interchange.message_id, *cols, Interchange.content_sha256,
               Interchange.received_at, Interchange.status, Interchange.duplicate_of_id)
        # An OR of one term per envelope (partner, sender, receiver) with its control
        # numbers IN a list, not a row-value IN: SQLite searches the index for each term of
        # an OR, but scans the whole table for (a, b, ..) IN (...). A batch is mostly one
        # envelope, so the statement stays small and its compiled form is reused.
        .where(or_(Interchange.message_id.in_(ids),
                   *(and_(*_same_envelope(envelope), Interchange.isa13.in_(isa13s))
                     for envelope, isa13s in _by_envelope(keys))))
        .order_by(Interchange.received_at, Interchange.id)).all()
    mine = set(ids)
    before: dict[int, list[Judged]] = {}
    earlier: dict[tuple[str, ...], list[tuple[int, str]]] = {}
    for r in sorted(rows, key=lambda r: r.id):
        if r.message_id in mine:
            before.setdefault(r.message_id, []).append(
                Judged(r.id, r.isa13, r.status, r.duplicate_of_id, True))
    for r in rows:
        key = tuple(r[2:8])
        if (key in keys and r.received_at >= now - window
                and r.status != InterchangeStatus.DUPLICATE):
            earlier.setdefault(key, []).append((r.id, r.content_sha256))
    out: dict[int, list[Judged]] = {}
    # New rows go in with a negative placeholder for their id until inserted.
    pending: list[tuple[int, int, dict[str, Any]]] = []  # (message, placeholder, row)
    made: dict[int, int] = {}  # placeholder -> id, once inserted
    for message_id, ics in messages:
        if len(before.get(message_id, ())) == len(ics):
            out[message_id] = before[message_id]
            continue
        out[message_id] = []
        for key, digest in ics:
            status, original = judge(earlier.get(key, []), digest)
            row = {"message_id": message_id, "partner": key[0], "sender_qualifier": key[1],
                   "sender_id": key[2], "receiver_qualifier": key[3], "receiver_id": key[4],
                   "isa13": key[5], "content_sha256": digest, "received_at": now,
                   "status": status, "duplicate_of_id": original}
            if original is not None and original < 0 and original not in made:
                # It repeats one of this batch still to insert: write those first.
                _insert_judged(session, pending, made, before)
            if original is not None and original < 0:
                row["duplicate_of_id"] = made[original]
            placeholder = -(len(made) + len(pending) + 1)
            pending.append((message_id, placeholder, row))
            out[message_id].append(Judged(placeholder, key[5], status, row["duplicate_of_id"],
                                          False))
            if status != InterchangeStatus.DUPLICATE:
                earlier.setdefault(key, []).append((placeholder, digest))
    _insert_judged(session, pending, made, before)
    for message_id, judged in out.items():
        out[message_id] = [j if j.id > 0 else Judged(made[j.id], j.isa13, j.status,
                                                     j.duplicate_of_id, False) for j in judged]
    return out


def _insert_judged(session: Session, pending: list[tuple[int, int, dict[str, Any]]],
                   made: dict[int, int], before: dict[int, list[Judged]]) -> None:
    """Insert the pending rows, noting each placeholder's new id: one INSERT of all (no
    RETURNING, which SQLite would answer row by row to keep their order), then one
    SELECT of the new ids, in insertion order within each message (ids grow as inserted)."""
    if not pending:
        return
    session.execute(insert(Interchange), [row for _, _, row in pending])
    known = set(made.values()) | {j.id for js in before.values() for j in js}
    fresh: dict[int, list[int]] = {}
    for new_id, message_id in session.execute(
            select(Interchange.id, Interchange.message_id)
            .where(Interchange.message_id.in_({m for m, _, _ in pending}))
            .order_by(Interchange.id)):
        if new_id not in known:
            fresh.setdefault(message_id, []).append(new_id)
    for message_id, placeholder, _ in pending:
        made[placeholder] = fresh[message_id].pop(0)
    pending.clear()


def interchanges_of(session: Session, message_id: int) -> list[Interchange]:
    """The message's interchanges as a validation recorded them, in file order."""
    return list(session.scalars(select(Interchange).where(Interchange.message_id == message_id)
                                .order_by(Interchange.id)))


def passed_isa13s(session: Session, message_id: int) -> set[str]:
    """The ISA13s of the message's interchanges whose sets go on to mapping (PASSED)."""
    return set(session.scalars(select(Interchange.isa13).where(
        Interchange.message_id == message_id, Interchange.status.in_(PASSED))))
