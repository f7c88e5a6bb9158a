"""The transactional stages: validate (and acknowledge), map, route.

Each is `(ctx, session, item) -> None` and runs in the worker's one transaction, which
also completes the item: its input is read from the store and its output written there,
so a crash before the commit leaves nothing half done. Each is safe to run again for the
same input (a replay): interchanges, acknowledgments, events and deliveries are looked up
before they are made, and the next stage is enqueued only once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from canonical.errors import InputError, PermanentError, X12ReadError
from gateway.chains import correlate as chain_hooks
from gateway.partners import Partner
from gateway.pipeline import parking, returns, routing
from gateway.pipeline.context import Context
from gateway.store import acknowledgments, claims, db, messages, receive, set_verdicts
from gateway.store import events as store_events
from gateway.store.models import (
    Interchange,
    InterchangeStatus,
    Message,
    MessageStatus,
    WorkItem,
)
from gateway.store.sequences import SessionControlNumbers
from mappings import translate
from mappings.verdicts import Verdict
from mappings.x12 import acks, validator
from mappings.x12.reader import X12Reader
from mappings.x12.results import FileResult, InterchangeResult

Stage = Callable[[Context, Session, WorkItem], None]


class MissingInput(PermanentError):
    """The work item names a message or delivery that is not in the store."""


def message_of(session: Session, item: WorkItem) -> Message:
    """The message a work item is about."""
    msg = messages.load(session, item.message_id)
    if msg is None:
        raise MissingInput(f"work item {item.id} ({item.kind}): no message {item.message_id}")
    return msg


def park_item(session: Session, item: WorkItem, msg: Message, reason: str, *,
              error: BaseException | None = None, dead: bool = True) -> None:
    """Dead-letter the item's message with its stage (dead=False leaves the message's status)."""
    parking.park(session, stage=item.kind, reason=reason, message_id=msg.id,
                 work_item_id=item.id, endpoint=f"partner:{msg.partner}", error=error,
                 attempts=item.attempts)
    if dead:
        messages.mark(msg, status=MessageStatus.DEAD)


# ---- validate --------------------------------------------------------------------------

def validate(ctx: Context, session: Session, item: WorkItem) -> None:
    """Validate the message: X12 (interchanges recorded, acks built, map and ack enqueued),
    or CSV/JSON documents checked by the partner's mapping and the schema (map enqueued)."""
    msg = message_of(session, item)
    messages.mark(msg, stage="validate", status=MessageStatus.PROCESSING)
    partner = ctx.partners.by_id.get(msg.partner)
    if partner is None:
        park_item(session, item, msg, f"unknown partner {msg.partner!r}: no "
                  f"{ctx.settings.partners_folder}/{msg.partner}.yaml")
        return
    data = receive.payload(session, msg.payload_sha256)
    fmt = format_of(partner, data[:512])
    if fmt != "x12":
        settle_documents(session, item, msg, partner, fmt, data)
        return
    # The partner's agreed leniency: a set with only those errors is accepted (AK5 E).
    result = validator.validate(data, path=msg.source_name,
                                max_bytes=ctx.settings.max_input_bytes,
                                accept_with_errors=partner.accept_with_errors)
    settle_validation(ctx, session, item, msg, partner, result, lambda: interchange_digests(data))


def mapping_refs(partner: Partner) -> dict[str, str]:
    """The partner's mapping files by key, as mappings.translate takes them."""
    return {k: str(v.resolve()) for k, v in partner.mappings.items()}


def format_of(partner: Partner, head: bytes) -> str:
    """x12, csv or json: by the content, and by the formats of the partner's mappings."""
    return translate.detect(head, translate.formats(mapping_refs(partner)))


def settle_documents(session: Session, item: WorkItem, msg: Message, partner: Partner,
                     fmt: str, data: bytes) -> None:
    """CSV or JSON: each document mapped and schema-checked; verdicts kept for the map
    stage; a bad document parked with its position (row and column, JSON path). No
    acknowledgment: 997s answer X12 only."""
    try:
        results = list(translate.translate(
            data, fmt=fmt, mappings=mapping_refs(partner), partner=partner.id,
            name=msg.source_name, time=msg.received_at))
    except (PermanentError, ValueError) as exc:
        # Not text or not JSON (the error names the file), or no mapping of this format.
        why = str(exc) if isinstance(exc, InputError) else f"{msg.source_name} ({fmt}): {exc}"
        park_item(session, item, msg, why, error=exc)
        return
    if not results:
        park_item(session, item, msg, f"{msg.source_name} ({fmt}): no document in it "
                  "(CSV: no data row under the header)")
        return
    set_verdicts.save(session, msg.id, (r.verdict() for r in results))
    good = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    if good:
        claims.enqueue_once(session, "map", message_id=msg.id)
    if bad:
        park_item(session, item, msg, "rejected by validation: "
                  + "; ".join(f"{r.where}: {r.reason}" for r in bad[:10])
                  + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""),
                  error=bad[0].error, dead=not good)


def settle_validation(ctx: Context, session: Session, item: WorkItem, msg: Message,
                      partner: Partner, result: FileResult,
                      digests_of: Callable[[], dict[int, str]],
                      prebuilt: Mapping[int, acks.AckBatch] | None = None) -> None:
    """What validation found, kept: interchanges judged, acks built, map and ack enqueued.

    prebuilt: the acks of interchange n (by place in the file), when they were built
    before this transaction (a large file's: see streaming.validate). The sets' verdicts
    are kept for the map stage (gateway/store/set_verdicts).
    """
    if not result.readable or not result.interchanges:
        why = result.read_error or "no interchange (ISA) found"
        park_item(session, item, msg, f"cannot be read as X12: {why}")
        return
    problem = sender_problem(ctx, partner, result.interchanges)
    if problem:
        # No acknowledgment either: we do not answer senders we do not know.
        park_item(session, item, msg, problem)
        return
    digests = digests_of()
    earlier = receive.interchanges_of(session, msg.id)
    numbers = SessionControlNumbers(session, scope=f"partner:{partner.id}")
    rejected: list[str] = []
    held: list[str] = []
    to_map = False
    for n, ic in enumerate(result.interchanges):
        row = (earlier[n] if len(earlier) == len(result.interchanges)
               else _record(session, msg, ic, digests.get(n, msg.payload_sha256)))
        if row.status == InterchangeStatus.DUPLICATE:
            continue  # the same interchange came before: it has had its effect and its acks
        if row.status not in receive.PASSED:
            held.append(f"interchange {ic.control_number} is {row.status}: the same ISA13 "
                        f"came before with other content (interchange #{row.duplicate_of_id})")
            continue
        _acknowledge(session, msg, partner, ic, row, numbers,
                     prebuilt.get(n) if prebuilt is not None else None)
        if not ic.accepted:
            rejected.append(f"interchange {ic.control_number}: TA1 {ic.ta1_ack_code} "
                            f"{ic.ta1_note_code}: {_words(ic.errors)}")
            continue
        returns.settle_returned_acks(session, msg, partner, ic, routes=ctx.settings.routes)  # our 850s' 997/999s
        for group in ic.groups:
            if group.is_acknowledgment:
                continue
            for s in group.sets:
                if s.accepted:
                    to_map = True
                else:
                    rejected.append(f"set {s.set_id} {ic.control_number}.{group.control_number}."
                                    f"{s.control_number} (line {s.line}): "
                                    f"{_words([*group.errors, *s.errors])}")
    if acknowledgments.any_unsent(session, msg.id):
        claims.enqueue_once(session, "ack", message_id=msg.id)
    if to_map:
        claims.enqueue_once(session, "map", message_id=msg.id)
        set_verdicts.save(session, msg.id, translate.verdicts_of(result))
    if held:
        park_item(session, item, msg, "quarantined: " + "; ".join(held), dead=False)
        messages.mark(msg, status=MessageStatus.QUARANTINED)
    if rejected:
        park_item(session, item, msg, "rejected by validation: " + "; ".join(rejected[:20]),
                  dead=not to_map)
    if not to_map and not held and not rejected:
        messages.mark(msg, status=MessageStatus.DONE)  # nothing to map: inbound acks, or duplicates only


def _words(findings: list[Any]) -> str:
    return "; ".join(f"{f.segment_id or f.level} (line {f.line}): {f.message}" if f.line
                     else f.message for f in findings[:5]) or "rejected"


def sender_problem(ctx: Context, partner: Partner,
                   interchanges: list[InterchangeResult]) -> str | None:
    unknown, elsewhere = [], []
    for ic in interchanges:
        who = ctx.partners.find_by_sender(ic.sender_qualifier, ic.sender_id)
        sender = f"{ic.sender_qualifier}:{ic.sender_id.strip()}"
        if who is None:
            unknown.append(sender)
        elif who.id != partner.id:
            elsewhere.append(f"{sender} is {who.id}")
    if unknown:
        return (f"unknown partner: ISA sender {', '.join(sorted(set(unknown)))} is not in "
                f"{ctx.settings.partners_folder} (the file came in for {partner.id})")
    if elsewhere:
        return (f"sender of another partner: {', '.join(sorted(set(elsewhere)))}, but the "
                f"file came in for {partner.id}")
    return None


def interchange_digests(data: bytes | BinaryIO) -> dict[int, str]:
    """A content hash of each interchange, by its place in the file, delimiters aside."""
    hashes: list[Any] = []
    try:
        with X12Reader(data) as reader:
            for seg in reader:
                if seg.id == "ISA":
                    hashes.append(hashlib.sha256())
                if hashes:
                    hashes[-1].update("\x1f".join(seg.fields).encode("utf-8", "replace") + b"\n")
    except X12ReadError:
        pass  # the validator has said what is wrong; hash what could be read
    return {n: h.hexdigest() for n, h in enumerate(hashes)}


def _record(session: Session, msg: Message, ic: InterchangeResult, digest: str) -> Interchange:
    return receive.record_interchange(
        session, message_id=msg.id, partner=msg.partner, sender_qualifier=ic.sender_qualifier,
        sender_id=ic.sender_id, receiver_qualifier=ic.receiver_qualifier,
        receiver_id=ic.receiver_id, isa13=ic.control_number, content=digest)


def _acknowledge(session: Session, msg: Message, partner: Partner, ic: InterchangeResult,
                 row: Interchange, numbers: SessionControlNumbers,
                 batch: acks.AckBatch | None = None) -> None:
    """Build and keep the interchange's TA1/997/999 once (a replay finds them made)."""
    if acknowledgments.made_for(session, row.id):
        return
    if batch is None:
        batch = acks.build_acknowledgments(ic, numbers, db.utcnow())
    acknowledgments.add(session, message_id=msg.id, interchange_id=row.id, partner=partner.id,
                        made=batch)


# ---- map -------------------------------------------------------------------------------

def map_(ctx: Context, session: Session, item: WorkItem) -> None:
    """Map the accepted sets or documents of the message into canonical events
    (schema-checked), by the verdicts its validate stage kept; enqueue route."""
    msg = message_of(session, item)
    messages.mark(msg, stage="map")
    partner = ctx.partners.by_id.get(msg.partner)
    if partner is None:
        raise MissingInput(f"unknown partner {msg.partner!r}")
    passed = receive.passed_isa13s(session, msg.id)
    data = receive.payload(session, msg.payload_sha256)
    # The event time is the arrival, not now, so that mapping again gives the same event.
    results = translate.translate(
        data, fmt=format_of(partner, data[:512]), mappings=mapping_refs(partner),
        partner=partner.id, name=msg.source_name, time=msg.received_at,
        verdicts=kept_verdicts(session, msg.id, lambda: contextlib.nullcontext(session)),
        accept_with_errors=partner.accept_with_errors)
    made, failed = [], []
    for r in results:
        if not mapped_here(r, passed):
            continue
        if r.status == "translated" and r.event is not None:
            made.append(r.event)
        elif r.status == "failed":
            failed.append(r)
    # One statement for all (a small message's events fit in memory; see streaming for large).
    store_events.add_events(session, msg.id, msg.partner, made)
    chain_hooks.observe(session, ctx.partners, made, message_id=msg.id)  # PO chains: exceptions kept with the message
    if made:
        claims.enqueue_once(session, "route", message_id=msg.id)
    if failed:
        park_item(session, item, msg, f"mapping failed: {failures(failed[:10])}",
                  error=failed[0].error, dead=not made)
    elif not made:
        messages.mark(msg, status=MessageStatus.DONE)


def kept_verdicts(session: Session, message_id: int,
                  sessions: Callable[[], AbstractContextManager[Session]]
                  ) -> Iterator[Verdict] | None:
    """The verdicts the validate stage kept (None for a message validated before they were
    kept: translate then validates again)."""
    if not set_verdicts.recorded(session, message_id):
        return None
    return set_verdicts.read(sessions, message_id)


def mapped_here(r: translate.Translated, passed: set[str]) -> bool:
    """Whether a set's outcome counts: X12 sets of interchanges that went on to mapping."""
    return r.format != "x12" or r.x12control.split(".")[0].strip() in passed


def failures(failed: list[translate.Translated]) -> str:
    """Failed sets or documents in words, each with its position."""
    return "; ".join(f"set {r.set_id} {r.x12control} (line {r.line}): {r.reason}"
                     if r.format == "x12" else f"{r.where}: {r.reason}" for r in failed)


# ---- route -----------------------------------------------------------------------------

def route(ctx: Context, session: Session, item: WorkItem) -> None:
    """One delivery per event and matching destination; enqueue deliver for each pending one."""
    msg = message_of(session, item)
    messages.mark(msg, stage="route")
    events = store_events.of_message(session, msg.id)
    unrouted, pairs = [], []
    for ev in events:
        targets = routing.destinations(ctx.settings.routes, ev.envelope)
        if not targets:
            unrouted.append(f"{ev.type} {ev.event_id}")
        pairs += [(ev.event_id, dest) for dest in targets]
    # Set-based: a per-delivery look-up of waiting items grew with the square of the sets.
    store_events.add_deliveries(session, msg.id, pairs)
    if unrouted:
        park_item(session, item, msg, "no route matches: " + ", ".join(unrouted[:20]),
                  dead=len(unrouted) == len(events))
    elif events:
        messages.mark(msg, status=MessageStatus.DONE)


TRANSACTIONAL: dict[str, Stage] = {"validate": validate, "map": map_, "route": route}
