"""The transactional stages: validate (and acknowledge), map, route.

Each is `(ctx, session, item) -> None` and runs in the worker's one transaction, which
also completes the item: its input is read from the store and its output written there,
so a crash before the commit leaves nothing half done. Each is safe to run again for the
same input (a replay): interchanges, acknowledgments, events and deliveries are looked up
before they are made, and the next stage is enqueued only once.

What a stage's findings come to is decided by functions with no SQL (settle_x12,
judge_documents, mapping_outcome, route_events and the Outcome they give), shared with
the fused batch (see fused), which runs the three stages at once for a batch of small
messages; these stages run a lone message, a replay and, through streaming, a large one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from canonical.envelope import Event as CloudEvent
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
from mappings.x12.reader import Segment, X12Reader
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
    close(session, item, msg, Outcome([Park(item.kind, reason, error)],
                                      MessageStatus.DEAD if dead else None))


@dataclass
class Park:
    """A dead letter a stage leaves for an operator: at which stage, why, and the error."""

    stage: str
    reason: str
    error: BaseException | None = None


@dataclass
class Outcome:
    """What a stage's findings come to for a message: its dead letters, and the status it
    ends in (None: left as it is). The one-by-one stages and the fused batch (see fused)
    both close a message by these."""

    parks: list[Park] = field(default_factory=list)
    status: str | None = None

    def then(self, later: Outcome) -> Outcome:
        """This stage's outcome followed by a later stage's on the same message."""
        return Outcome([*self.parks, *later.parks], later.status or self.status)


def close(session: Session, item: WorkItem, msg: Message, outcome: Outcome) -> None:
    """An outcome kept, one by one: its dead letters parked, the message's status set."""
    for p in outcome.parks:
        parking.park(session, stage=p.stage, reason=p.reason, message_id=msg.id,
                     work_item_id=item.id, endpoint=f"partner:{msg.partner}", error=p.error,
                     attempts=item.attempts)
    if outcome.status is not None:
        messages.mark(msg, status=outcome.status)


# ---- validate --------------------------------------------------------------------------

def validate(ctx: Context, session: Session, item: WorkItem) -> None:
    """Validate the message: X12 (interchanges recorded, acks built, map and ack enqueued),
    or CSV/JSON documents checked by the partner's mapping and the schema (map enqueued)."""
    msg = message_of(session, item)
    messages.mark(msg, stage="validate", status=MessageStatus.PROCESSING)
    partner = ctx.partners.by_id.get(msg.partner)
    if partner is None:
        close(session, item, msg, partner_gone(ctx, msg.partner))
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


def partner_gone(ctx: Context, partner: str) -> Outcome:
    """The outcome of a message whose partner's configuration is gone."""
    return Outcome([Park("validate", f"unknown partner {partner!r}: no "
                         f"{ctx.settings.partners_folder}/{partner}.yaml")], MessageStatus.DEAD)


def mapping_refs(partner: Partner) -> dict[str, str]:
    """The partner's mapping files by key, as mappings.translate takes them (absolute, but
    not resolved: resolving asks the file system for every file of every message)."""
    return {k: os.path.abspath(v) for k, v in partner.mappings.items()}


def format_of(partner: Partner, head: bytes) -> str:
    """x12, csv or json: by the content, and by the formats of the partner's mappings."""
    return translate.detect(head, translate.formats(mapping_refs(partner)))


def settle_documents(session: Session, item: WorkItem, msg: Message, partner: Partner,
                     fmt: str, data: bytes) -> None:
    """CSV or JSON: each document mapped and schema-checked; verdicts kept for the map
    stage; a bad document parked with its position (row and column, JSON path). No
    acknowledgment: 997s answer X12 only."""
    results, outcome = judge_documents(msg, partner, fmt, data)
    if results:
        set_verdicts.save(session, msg.id, (r.verdict() for r in results))
    if any(r.ok for r in results):
        claims.enqueue_once(session, "map", message_id=msg.id)
    close(session, item, msg, outcome)


def judge_documents(msg: Message | Any, partner: Partner, fmt: str, data: bytes
                    ) -> tuple[list[translate.Translated], Outcome]:
    """CSV or JSON translated (mapped and schema-checked: that is their validation), and
    what it comes to at the validate stage; no SQL. The good documents' events are the
    results' (the map stage makes them again the same)."""
    try:
        results = list(translate.translate(
            data, fmt=fmt, mappings=mapping_refs(partner), partner=partner.id,
            name=msg.source_name, time=msg.received_at))
    except (PermanentError, ValueError) as exc:
        # Not text or not JSON (the error names the file), or no mapping of this format.
        why = str(exc) if isinstance(exc, InputError) else f"{msg.source_name} ({fmt}): {exc}"
        return [], Outcome([Park("validate", why, exc)], MessageStatus.DEAD)
    if not results:
        return [], Outcome([Park("validate", f"{msg.source_name} ({fmt}): no document in it "
                                 "(CSV: no data row under the header)")], MessageStatus.DEAD)
    good = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    if not bad:
        return results, Outcome()
    return results, Outcome([Park("validate", "rejected by validation: "
                                  + "; ".join(f"{r.where}: {r.reason}" for r in bad[:10])
                                  + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""),
                                  bad[0].error)],
                            None if good else MessageStatus.DEAD)


def settle_validation(ctx: Context, session: Session, item: WorkItem, msg: Message,
                      partner: Partner, result: FileResult,
                      digests_of: Callable[[], dict[int, str]],
                      prebuilt: Mapping[int, acks.AckBatch] | None = None) -> None:
    """What validation found, kept: interchanges judged, acks built, map and ack enqueued.

    prebuilt: the acks of interchange n (by place in the file), when they were built
    before this transaction (a large file's: see streaming.validate). The sets' verdicts
    are kept for the map stage (gateway/store/set_verdicts).
    """
    problem = unreadable_or_unknown(ctx, partner, result)
    if problem:
        close(session, item, msg, problem)
        return
    digests = digests_of()
    earlier = receive.interchanges_of(session, msg.id)
    rows = (earlier if len(earlier) == len(result.interchanges)
            else [_record(session, msg, ic, digests.get(n, msg.payload_sha256))
                  for n, ic in enumerate(result.interchanges)])
    settled = settle_x12(result, [r.status for r in rows], [r.duplicate_of_id for r in rows])
    numbers = SessionControlNumbers(session, scope=f"partner:{partner.id}")
    for n in settled.acknowledge:
        _acknowledge(session, msg, partner, result.interchanges[n], rows[n], numbers,
                     prebuilt.get(n) if prebuilt is not None else None)
    settle_returns(ctx, session, msg, partner, result, settled)
    if acknowledgments.any_unsent(session, msg.id):
        claims.enqueue_once(session, "ack", message_id=msg.id)
    if settled.to_map:
        claims.enqueue_once(session, "map", message_id=msg.id)
        set_verdicts.save(session, msg.id, translate.verdicts_of(result))
    close(session, item, msg, settled.outcome)


def settle_returns(ctx: Context, session: Session, msg: Message, partner: Partner,
                   result: FileResult, settled: Settled) -> None:
    """The partner's 997/999s in the file mark the purchase orders they answer, and tell
    their chains (gateway/pipeline/returns)."""
    for n in settled.answers:
        returns.settle_returned_acks(session, msg, partner, result.interchanges[n],
                                     routes=ctx.settings.routes)


def unreadable_or_unknown(ctx: Context, partner: Partner, result: FileResult) -> Outcome | None:
    """The outcome of an X12 file that cannot be read, or comes from a sender other than
    the partner (no acknowledgment either: we do not answer senders we do not know)."""
    if not result.readable or not result.interchanges:
        why = result.read_error or "no interchange (ISA) found"
        return Outcome([Park("validate", f"cannot be read as X12: {why}")], MessageStatus.DEAD)
    problem = sender_problem(ctx, partner, result.interchanges)
    if problem:
        return Outcome([Park("validate", problem)], MessageStatus.DEAD)
    return None


@dataclass
class Settled:
    """What validation comes to once the duplicate check judged each interchange."""

    acknowledge: list[int]  # the interchanges (by place in the file) to acknowledge
    passed: set[str]  # the ISA13s whose sets go on to mapping
    to_map: bool  # some set goes on to mapping
    outcome: Outcome
    # The accepted interchanges (by place) that carry 997/999s: returns reads them for
    # the purchase orders we sent (see settle_returns).
    answers: list[int] = field(default_factory=list)


def settle_x12(result: FileResult, statuses: Sequence[str],
               originals: Sequence[int | None]) -> Settled:
    """Validation's findings with each interchange's status (and the one it repeats), in
    file order: no SQL, the same for the one-by-one stage and the fused batch."""
    rejected: list[str] = []
    held: list[str] = []
    acknowledge: list[int] = []
    answers: list[int] = []
    passed: set[str] = set()
    to_map = False
    for n, ic in enumerate(result.interchanges):
        status = statuses[n]
        if status == InterchangeStatus.DUPLICATE:
            continue  # the same interchange came before: it has had its effect and its acks
        if status not in receive.PASSED:
            held.append(f"interchange {ic.control_number} is {status}: the same ISA13 "
                        f"came before with other content (interchange #{originals[n]})")
            continue
        acknowledge.append(n)
        passed.add(ic.control_number.strip())
        if not ic.accepted:
            rejected.append(f"interchange {ic.control_number}: TA1 {ic.ta1_ack_code} "
                            f"{ic.ta1_note_code}: {_words(ic.errors)}")
            continue
        if any(g.is_acknowledgment for g in ic.groups):
            answers.append(n)  # a 997/999 of the partner's: maybe for our purchase orders
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
    outcome = Outcome()
    if held:
        outcome = Outcome([Park("validate", "quarantined: " + "; ".join(held))],
                          MessageStatus.QUARANTINED)
    if rejected:
        outcome = outcome.then(Outcome(
            [Park("validate", "rejected by validation: " + "; ".join(rejected[:20]))],
            None if to_map else MessageStatus.DEAD))
    if not to_map and not held and not rejected:
        outcome.status = MessageStatus.DONE  # nothing to map: inbound acks, or duplicates only
    return Settled(acknowledge, passed, to_map, outcome, answers)


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


class Digests:
    """A content hash of each interchange, by its place in the file, delimiters aside: fed
    the file's segments in order (as the validator's tap, or by interchange_digests)."""

    def __init__(self) -> None:
        self.hashes: list[Any] = []

    def __call__(self, seg: Segment) -> None:
        if seg.id == "ISA":
            self.hashes.append(hashlib.sha256())
        if self.hashes:
            self.hashes[-1].update("\x1f".join(seg.fields).encode("utf-8", "replace") + b"\n")

    def result(self) -> dict[int, str]:
        return {n: h.hexdigest() for n, h in enumerate(self.hashes)}


def interchange_digests(data: bytes | BinaryIO) -> dict[int, str]:
    """A content hash of each interchange, by its place in the file, delimiters aside."""
    digests = Digests()
    try:
        with X12Reader(data) as reader:
            for seg in reader:
                digests(seg)
    except X12ReadError:
        pass  # the validator has said what is wrong; hash what could be read
    return digests.result()


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
    made, failed = sort_mapped(results, passed)
    # One statement for all (a small message's events fit in memory; see streaming for large).
    store_events.add_events(session, msg.id, msg.partner, made)
    chain_hooks.observe(session, ctx.partners, made, message_id=msg.id)  # PO chains
    if made:
        claims.enqueue_once(session, "route", message_id=msg.id)
    close(session, item, msg, mapping_outcome(len(made), failed[:10], len(failed)))


def sort_mapped(results: Iterable[translate.Translated], passed: set[str]
                ) -> tuple[list[CloudEvent], list[translate.Translated]]:
    """The events made, and the sets or documents whose mapping failed, of those that count."""
    made, failed = [], []
    for r in results:
        if not mapped_here(r, passed):
            continue
        if r.status == "translated" and r.event is not None:
            made.append(r.event)
        elif r.status == "failed":
            failed.append(r)
    return made, failed


def mapping_outcome(made: int, failed: list[translate.Translated], count: int) -> Outcome:
    """What mapping comes to: failed (the first few given, count in all) parked with their
    positions; the message dead if nothing was made, done if nothing was to be made."""
    if failed:
        more = f" (and {count - len(failed)} more)" if count > len(failed) else ""
        return Outcome([Park("map", f"mapping failed: {failures(failed)}{more}",
                             failed[0].error)], None if made else MessageStatus.DEAD)
    return Outcome() if made else Outcome(status=MessageStatus.DONE)


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
    routed = route_events(ctx, events)
    # Set-based: a per-delivery look-up of waiting items grew with the square of the sets.
    store_events.add_deliveries(session, msg.id, routed.pairs)
    close(session, item, msg, routed.outcome(len(events)))


@dataclass
class Routed:
    """Where a message's events go: (event id, destination) pairs, and those going nowhere."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    unrouted: list[str] = field(default_factory=list)  # the first 20, in words
    unrouted_count: int = 0

    def outcome(self, seen: int) -> Outcome:
        """What routing `seen` events comes to: the unrouted parked, the message dead when
        none went anywhere, else done."""
        if self.unrouted:
            return Outcome([Park("route", "no route matches: " + ", ".join(self.unrouted))],
                           MessageStatus.DEAD if self.unrouted_count == seen else None)
        return Outcome(status=MessageStatus.DONE) if seen else Outcome()


def route_events(ctx: Context, events: Iterable[tuple[str, str, Mapping[str, Any]]],
                 into: Routed | None = None) -> Routed:
    """Route events, each (event id, type, envelope), adding to `into` (a message routed a
    page at a time) or to a new Routed. The one place a message's events are routed: the
    route stage, its streamed form and the fused batch all call it."""
    routed = into if into is not None else Routed()
    for event_id, type_, envelope in events:
        targets = routing.destinations(ctx.settings.routes, envelope)
        if not targets:
            routed.unrouted_count += 1
            if len(routed.unrouted) < 20:
                routed.unrouted.append(f"{type_} {event_id}")
        routed.pairs += [(event_id, dest) for dest in targets]
    return routed


TRANSACTIONAL: dict[str, Stage] = {"validate": validate, "map": map_, "route": route}
