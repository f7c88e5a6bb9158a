"""The store's tables, as SQLAlchemy 2 typed declarative models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gateway.store.db import utcnow

# Named constraints, so that later migrations can drop or alter them by name on both backends.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only autoincrements a column declared exactly INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# AUTOINCREMENT: without it SQLite hands a deleted row's id out again, and a log or an
# operator's note naming "work item 42" would suddenly mean another item.
NO_REUSE = {"sqlite_autoincrement": True}
# Envelope ids (ISA05-08, ISA13, GS06) as read, legal or not: a malformed ISA still gets
# recorded and answered with its TA1. Longer values are cut to this (see fit()).
ENVELOPE_ID = 255
Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive time could be local or UTC; guessing would shift leases by hours.
            raise ValueError(f"the store takes timezone-aware times only, got {value!r}")
        value = value.astimezone(UTC)
        # SQLite keeps text: with every value in UTC and fixed width, text order is time
        # order, which the claim query's comparisons rely on.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        # A batch of rows is written with one `now` in several columns of every row: the
        # same object is converted (and on SQLite formatted) once, not once per cell, the
        # cost that showed among the statements of the webhook intake and a fused batch.
        process = super().bind_processor(dialect)
        if process is None:
            return None
        memo: list[tuple[Any, Any]] = [(None, None)]  # swapped whole: safe across threads

        def cached(value: Any) -> Any:
            last = memo[0]
            if value is last[0] and value is not None:
                return last[1]
            out = process(value)
            memo[0] = (value, out)  # holds value, so no other object can take its id
            return out

        return cached


class Base(DeclarativeBase):
    """The declarative base of every store model."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: Json,
        list[Any]: Json,
    }


class MessageStatus(enum.StrEnum):
    """Where a received message is in its life."""

    RECEIVED = "received"
    PROCESSING = "processing"
    DONE = "done"
    QUARANTINED = "quarantined"
    DEAD = "dead"


class InterchangeStatus(enum.StrEnum):
    """The duplicate check's verdict on an interchange, and the operator's decision."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # same control number and content: seen before, no new effect
    QUARANTINED = "quarantined"  # same control number, other content: an operator decides
    RELEASED = "released"
    DISCARDED = "discarded"


class WorkStatus(enum.StrEnum):
    """The state of a work item in the queue."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"  # the stage gave up on it and parked it itself
    DEAD = "dead"  # its workers kept dying; the store parked it


class DeliveryStatus(enum.StrEnum):
    """The state of one event's delivery to one destination."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class DeadLetterStatus(enum.StrEnum):
    """What an operator did with a dead letter."""

    PARKED = "parked"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class Payload(Base):
    """Raw input bytes, content-addressed, kept so any message can be reprocessed."""

    __tablename__ = "payloads"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # the whole payload, or its first part
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # How many parts: 1 when data is the whole payload; else parts 1.. are in payload_parts.
    parts: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class PayloadPart(Base):
    """Part n (from 1) of a large payload; written before its payloads row, which completes it."""

    __tablename__ = "payload_parts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Message(Base):
    """One input received from a partner on a channel: a file, a webhook body, an upload."""

    __tablename__ = "messages"
    __table_args__ = (
        # The idempotent consumer: the same bytes from the same partner are one message.
        UniqueConstraint("partner", "payload_sha256"),
        Index(None, "partner", "received_at"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(100))
    source_name: Mapped[str] = mapped_column(String(1024))
    payload_sha256: Mapped[str] = mapped_column(ForeignKey("payloads.sha256"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str] = mapped_column(String(32), default="received")
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(default=0)
    replays: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Interchange(Base):
    """One X12 interchange (ISA to IEA) of a message, for the duplicate check on ISA13."""

    __tablename__ = "interchanges"
    __table_args__ = (
        Index("ix_interchanges_control", "partner", "sender_qualifier", "sender_id",
              "receiver_qualifier", "receiver_id", "isa13", "received_at"),
        Index(None, "status"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    partner: Mapped[str] = mapped_column(String(100))
    sender_qualifier: Mapped[str] = mapped_column(String(ENVELOPE_ID))
    sender_id: Mapped[str] = mapped_column(String(ENVELOPE_ID))
    receiver_qualifier: Mapped[str] = mapped_column(String(ENVELOPE_ID))
    receiver_id: Mapped[str] = mapped_column(String(ENVELOPE_ID))
    isa13: Mapped[str] = mapped_column(String(ENVELOPE_ID))
    # The interchange's own bytes, not the file's: one file may carry several.
    content_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=InterchangeStatus.ACCEPTED)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("interchanges.id"))


class WorkItem(Base):
    """A unit of work for a stage, claimed by one worker at a time under a lease."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The claim query: ready items of some kinds, oldest first (id breaks ties, and
        # being in the index spares a sort of every tied row on each claim).
        Index("ix_work_items_ready", "status", "kind", "run_after", "id"),
        # The reaper: claimed items whose lease ran out.
        Index("ix_work_items_lease", "status", "lease_expires_at"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    # A send item's outbound document (a purchase order going to a partner).
    document_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_documents.id"),
                                                    index=True)
    status: Mapped[str] = mapped_column(String(16), default=WorkStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)  # claims so far
    lost_leases: Mapped[int] = mapped_column(default=0)  # claims whose worker vanished
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """A canonical event made from a message, kept whole so every retry sends the same one."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "partner", "type"), NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    type: Mapped[str] = mapped_column(String(200))
    partner: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(200))
    envelope: Mapped[dict[str, Any]]  # the whole CloudEvent, data included
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(Base):
    """The outbox: one event for one destination, delivered at most once once acknowledged."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "destination"),
        Index(None, "status", "next_attempt_at"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.event_id"))
    destination: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeadLetter(Base):
    """Work parked for an operator: where it failed, why, and how often."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index(None, "status", "stage"), NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    error_chain: Mapped[list[Any]] = mapped_column(default=list)
    attempts: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=DeadLetterStatus.PARKED)


class Audit(Base):
    """Who did what to which thing, and why: replays, discards, releases, auth failures."""

    __tablename__ = "audit"
    __table_args__ = (Index(None, "target"), Index(None, "at"), NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ControlNumber(Base):
    """The last outbound control number handed out per scope and kind; never reused."""

    __tablename__ = "control_numbers"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    last: Mapped[int] = mapped_column(BigInteger)


class Acknowledgment(Base):
    """An outbound 997/999/TA1 answering one inbound interchange, kept until it is sent."""

    __tablename__ = "acknowledgments"
    __table_args__ = (
        # Our control numbers are never reused, so one number is one acknowledgment.
        UniqueConstraint("partner", "kind", "control_number"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    interchange_id: Mapped[int | None] = mapped_column(ForeignKey("interchanges.id"))
    partner: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))  # 997, 999 or TA1
    answers_interchange: Mapped[str] = mapped_column(String(ENVELOPE_ID))  # their ISA13
    answers_group: Mapped[str | None] = mapped_column(String(ENVELOPE_ID))  # their GS06
    control_number: Mapped[int] = mapped_column(BigInteger)  # our ISA13
    payload_sha256: Mapped[str] = mapped_column(ForeignKey("payloads.sha256"))
    filename: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class SetVerdict(Base):
    """Chunk n (from 0) of a message's validation verdicts, one per set or document.

    Written by the validate stage, read by the map stage, so that mapping does not
    validate the same bytes again (mappings.verdicts holds the compact encoding).
    """

    __tablename__ = "set_verdicts"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class OutboundStatus(enum.StrEnum):
    """Where a document we send a partner is: queued, in its outbox, acknowledged."""

    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"  # the partner's 997/999 accepted its set (AK5/IK5 A or E)
    REJECTED = "rejected"  # ... or rejected it (R, or a group AK9 R)


class OutboundDocument(Base):
    """A document we send a partner (an 850 from the ERP's purchase order), as it went out."""

    __tablename__ = "outbound_documents"
    __table_args__ = (
        # The same order with the same content is one document, whoever sends it twice.
        UniqueConstraint("partner", "document_type", "po_number", "content_sha256"),
        # A returning 997/999 names our GS06 and ST02.
        Index(None, "partner", "gs06", "st02"),
        Index(None, "partner", "po_number"),
        Index(None, "status"),
        NO_REUSE,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner: Mapped[str] = mapped_column(String(100))
    document_type: Mapped[str] = mapped_column(String(8))  # X12 set id, 850
    po_number: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(16))  # original, change, cancel, replace
    content_sha256: Mapped[str] = mapped_column(String(64))  # of the canonical data
    data: Mapped[dict[str, Any]]  # the canonical data the ERP handed us
    isa13: Mapped[int] = mapped_column(BigInteger)
    gs06: Mapped[int] = mapped_column(BigInteger)
    st02: Mapped[int] = mapped_column(BigInteger)
    payload_sha256: Mapped[str] = mapped_column(ForeignKey("payloads.sha256"))  # the X12
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=OutboundStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(Text)  # why the partner rejected it
    ack_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]


class WebhookId(Base):
    """A webhook-id a partner has sent, and the message it became: the idempotency key."""

    __tablename__ = "webhook_ids"

    partner: Mapped[str] = mapped_column(String(100), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


def fit(value: str | None, width: int = ENVELOPE_ID) -> str | None:
    """A value as it can be kept in a column of that width (cut, never refused)."""
    return value if value is None or len(value) <= width else value[:width]


class PortalUser(Base):
    """A partner's person who signs in to the portal; the password only as an argon2 hash."""

    __tablename__ = "portal_users"
    __table_args__ = (NO_REUSE,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    partner: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class PortalUpload(Base):
    """A CSV a portal user uploaded: the message it became, as the partner named the file."""

    __tablename__ = "portal_uploads"
    __table_args__ = (Index(None, "partner", "uploaded_at"),)

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), primary_key=True)
    partner: Mapped[str] = mapped_column(String(100))
    username: Mapped[str] = mapped_column(String(64))
    original_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class PoChain(Base):
    """A purchase order's chain of documents, keyed by partner and PO number (gateway.chains)."""

    __tablename__ = "po_chains"
    __table_args__ = (UniqueConstraint("partner", "po_number"), Index(None, "state", "id"),
                      NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partner: Mapped[str] = mapped_column(String(100))
    po_number: Mapped[str] = mapped_column(String(100))
    # waiting: documents but no PO yet; open: the PO is in; matched: invoiced and received.
    state: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(16))  # outbound (ours) or inbound
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PoChainDocument(Base):
    """One document of a chain: the PO, a 997/999, an 855, an 856's order, an 810, a receipt."""

    __tablename__ = "po_chain_documents"
    __table_args__ = (UniqueConstraint("chain_id", "type", "doc_key"), NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("po_chains.id"))
    type: Mapped[str] = mapped_column(String(32))
    doc_key: Mapped[str] = mapped_column(String(100))  # event id, or the receipt's key
    number: Mapped[str | None] = mapped_column(String(100))
    x12control: Mapped[str | None] = mapped_column(String(ENVELOPE_ID))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    at: Mapped[datetime]  # the document's own time, which orders a chain's documents
    observed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Order-level facts the checks read: dates by kind, status, accepted/rejected, reason.
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PoChainLine(Base):
    """What one document says of one line: quantity, unit, unit price, dates."""

    __tablename__ = "po_chain_lines"
    __table_args__ = (NO_REUSE,)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("po_chain_documents.id"), index=True)
    line_number: Mapped[str | None] = mapped_column(String(20))
    item_ids: Mapped[list[Any]] = mapped_column(default=list)
    quantity: Mapped[str | None] = mapped_column(String(40))  # decimal strings, as sent
    unit: Mapped[str | None] = mapped_column(String(35))
    unit_price: Mapped[str | None] = mapped_column(String(40))
    dates: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PoChainFinding(Base):
    """An exception emitted for a chain, once per key; routed_at set once it has deliveries."""

    __tablename__ = "po_chain_findings"
    __table_args__ = (UniqueConstraint("chain_id", "finding_key"), Index(None, "routed_at"),
                      NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("po_chains.id"))
    finding_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.event_id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    routed_at: Mapped[datetime | None]


class PoChainDeadline(Base):
    """A document a chain waits for by a time: pending, met, fired (its exception emitted),
    or cancelled (nothing can meet it any more)."""

    __tablename__ = "po_chain_deadlines"
    __table_args__ = (UniqueConstraint("chain_id", "kind"), Index(None, "state", "due_at"),
                      NO_REUSE)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("po_chains.id"))
    kind: Mapped[str] = mapped_column(String(16))  # ack (997/999) or po_ack (855)
    state: Mapped[str] = mapped_column(String(16))  # pending, met, fired, cancelled
    due_at: Mapped[datetime]
    hours: Mapped[float] = mapped_column(Float())
    closed_at: Mapped[datetime | None]  # when it was met or fired
