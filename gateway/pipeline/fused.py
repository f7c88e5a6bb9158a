"""Validate, map and route fused for a batch of small messages: compute all, then write once.

A batch's validate items whose messages are small (a payload in one part) are loaded in
one read (messages and payloads in one query, and the last control numbers of their
partners), then each message is taken as far as it goes in memory, with no SQL: format,
validation, the sender check, its acknowledgments, its sets or documents mapped with the
validation's verdicts (not validated again) and schema-checked, its events routed. Only
then does the write transaction open, and it writes the whole batch in a fixed number of
set-based statements (gateway/store): the interchanges judged against the store's and each
other in one look-up and one insert, the control numbers of each partner reserved in one
UPDATE, the acknowledgments, events, deliveries and their deliver items, ack items, the
messages' stages and statuses, dead letters, and the items completed. So SQLite's one
write lock is held for the writes only, never while validating or mapping.

What a message comes to is decided by the same functions as the one-by-one stages
(stages.settle_x12, judge_documents, mapping_outcome, route_events): the same interchange
verdicts, acknowledgments, events, deliveries and dead letters (at the stage they belong
to, with the same reasons), only without map and route items in between. Writing again is
harmless as it is for those stages: interchanges recorded before are kept, acks made once
per interchange, events by id, deliveries by event and destination, items once.

Acknowledgments are built before the transaction with the numbers the store would hand
out next (read with the batch); an ack whose numbers turn out otherwise (another worker
took some meanwhile, or an interchange before it in the batch was a duplicate) is built
again in the transaction with the numbers reserved: cheap, and numbers are never reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from canonical.errors import OutboundDataError
from gateway.chains import correlate as chain_hooks
from gateway.partners import Partner
from gateway.pipeline import parking, stages
from gateway.pipeline.context import Context
from gateway.store import acknowledgments, claims, db, messages, receive, sequences
from gateway.store import events as store_events
from gateway.store.models import MessageStatus, WorkItem
from mappings import translate
from mappings.x12 import acks, validator
from mappings.x12.control_numbers import KINDS, Sequences
from mappings.x12.results import FileResult
from mappings.x12.writer import MAX_CONTROL_NUMBER

# A batch is written a chunk at a time, a chunk holding about this many bytes of input
# (and their events in memory): 50 single-set files are one chunk, 50 files of a
# megabyte are 50.
CHUNK_BYTES = 1 << 20


class Handed(Sequences):
    """Control numbers handed out in memory, from the next number of each kind on."""

    def __init__(self, scope: str, next_numbers: dict[str, int]) -> None:
        self.scope = scope
        self.next = dict(next_numbers)

    def _take(self, kind: str) -> int:
        n = self.next[kind]
        if n > MAX_CONTROL_NUMBER:
            raise OutboundDataError(f"the {kind} control numbers of {self.scope!r} are used "
                                    f"up (last {n - 1}); they are never wrapped around")
        self.next[kind] = n + 1
        return n


@dataclass
class Planned:
    """One interchange as computed: what identifies it, and its acks as first built."""

    key: tuple[str, ...]
    digest: str
    acks: acks.AckBatch
    first: dict[str, int]  # the numbers its acks start from
    taken: dict[str, int]  # how many of each kind they take


@dataclass
class Computed:
    """A message taken as far as it goes without the store."""

    item: WorkItem
    message: Row[Any]
    partner: Partner | None
    closed: stages.Outcome | None = None  # settled at validate, nothing else to do
    result: FileResult | None = None  # X12
    interchanges: list[Planned] = field(default_factory=list)
    translated: list[translate.Translated] = field(default_factory=list)
    documents: stages.Outcome | None = None  # CSV or JSON: what their validation came to
    now: datetime | None = None  # the acknowledgments' time


def load(session: Session, items: Sequence[WorkItem]) -> tuple[dict[int, Row[Any]], dict[str, Handed]]:
    """The items' messages with their payloads, and each partner's next control numbers
    (as the store has them now): two queries, in the caller's (the claim's) transaction."""
    rows = {r.id: r for r in messages.with_payloads(session, [i.message_id for i in items
                                                               if i.message_id is not None])}
    scopes = {_scope(r.partner) for r in rows.values()}
    last = sequences.last_taken(session, scopes)
    return rows, {scope: Handed(scope, {k: last.get((scope, k), 0) + 1 for k in KINDS})
                  for scope in scopes}


def _scope(partner: str) -> str:
    return f"partner:{partner}"  # as the one-by-one stage's SessionControlNumbers


def compute(ctx: Context, item: WorkItem, row: Row[Any], numbers: dict[str, Handed]) -> Computed:
    """Everything about one message that needs no store; raises what the stages would."""
    partner = ctx.partners.by_id.get(row.partner)
    c = Computed(item, row, partner)
    if partner is None:
        c.closed = stages.partner_gone(ctx, row.partner)
        return c
    data = row.data
    fmt = stages.format_of(partner, data[:512])
    if fmt != "x12":
        c.translated, c.documents = stages.judge_documents(row, partner, fmt, data)
        return c
    # The partner's agreed leniency: a set with only those errors is accepted (AK5 E).
    # The interchanges' content hashes taken as the validator reads (not read again).
    digested = stages.Digests()
    result = validator.validate(data, path=row.source_name,
                                max_bytes=ctx.settings.max_input_bytes,
                                accept_with_errors=partner.accept_with_errors, tap=digested)
    c.closed = stages.unreadable_or_unknown(ctx, partner, result)
    if c.closed is not None:
        return c
    c.result, c.now = result, db.utcnow()
    digests = digested.result()
    handed = numbers.setdefault(_scope(partner.id), Handed(_scope(partner.id),
                                                           dict.fromkeys(KINDS, 1)))
    for n, ic in enumerate(result.interchanges):
        first = dict(handed.next)
        built = acks.build_acknowledgments(ic, handed, c.now)
        c.interchanges.append(Planned(
            receive.envelope_key(partner.id, ic.sender_qualifier, ic.sender_id,
                                 ic.receiver_qualifier, ic.receiver_id, ic.control_number),
            receive.content_digest(digests.get(n, row.payload_sha256)), built, first,
            {k: handed.next[k] - first[k] for k in KINDS}))
    # The event time is the arrival, not now, so that mapping again gives the same event.
    c.translated = list(translate.translate(
        data, fmt="x12", mappings=stages.mapping_refs(partner), partner=partner.id,
        name=row.source_name, time=row.received_at, verdicts=translate.verdicts_of(result),
        accept_with_errors=partner.accept_with_errors))
    return c


def write(ctx: Context, session: Session, worker_id: str, batch: Sequence[Computed],
          numbers: dict[str, Handed]) -> None:
    """The batch's outputs and its items' completion, in the caller's one transaction.

    numbers: each partner's next control numbers as compute speculated them; left as
    the store has them after this batch's reservation.
    """
    x12 = [c for c in batch if c.result is not None]
    judged = receive.record_interchanges(
        session, [(c.message.id, [(p.key, p.digest) for p in c.interchanges]) for c in x12])
    settled = {c.message.id: stages.settle_x12(
        c.result, [j.status for j in judged[c.message.id]],  # type: ignore[arg-type]
        [j.duplicate_of_id for j in judged[c.message.id]]) for c in x12}
    for c in x12:
        if settled[c.message.id].answers:
            stages.settle_returns(ctx, session, c.message, ctx.partners.by_id[c.message.partner],
                                  c.result, settled[c.message.id])  # type: ignore[arg-type]
    again = [c.message.id for c in x12 if any(j.recorded_before for j in judged[c.message.id])]
    made_before = acknowledgments.made_among(session, again)
    # The acks to make, in batch order: the numbers for all of a partner's, reserved at once.
    todo = [(c, n) for c in x12 for n in settled[c.message.id].acknowledge
            if judged[c.message.id][n].id not in made_before]
    wanted: dict[str, dict[str, int]] = {}
    for c, n in todo:
        counts = wanted.setdefault(_scope(c.message.partner), dict.fromkeys(KINDS, 0))
        for k, taken in c.interchanges[n].taken.items():
            counts[k] += taken
    for scope, counts in wanted.items():
        first = sequences.reserve(session, scope, counts)
        handed = numbers.setdefault(scope, Handed(scope, {}))
        handed.next = {k: first.get(k, handed.next.get(k, 1)) for k in KINDS}
    made: list[tuple[int, int, str, acks.Acknowledgment]] = []
    for c, n in todo:
        p, handed = c.interchanges[n], numbers[_scope(c.message.partner)]
        if all(p.first[k] == handed.next[k] for k in KINDS if p.taken[k]):
            built = p.acks
            for k in KINDS:
                handed.next[k] += p.taken[k]
        else:
            built = acks.build_acknowledgments(c.result.interchanges[n], handed,  # type: ignore[union-attr]
                                               c.now)
        made += [(c.message.id, judged[c.message.id][n].id, c.message.partner, a)
                 for a in built]
    acknowledgments.add_many(session, made)
    due = {m for m, *_ in made} | acknowledgments.unsent_among(session, again)
    claims.enqueue_once_of(session, "ack", sorted(due))

    events, targets, letters, moves = [], [], [], []
    for c in batch:
        stage, outcome, made_events, routed = _carry_on(ctx, c, settled.get(c.message.id))
        events += [(c.message.id, c.message.partner, e) for e in made_events]
        targets += [(c.message.id, e, d) for e, d in routed]
        moves.append((c.message.id, stage, outcome.status or MessageStatus.PROCESSING))
        letters += [{"stage": p.stage, "reason": p.reason, "error": p.error,
                     "message_id": c.message.id, "work_item_id": c.item.id,
                     "endpoint": f"partner:{c.message.partner}", "attempts": c.item.attempts}
                    for p in outcome.parks]
    store_events.add_events_of(session, events)
    # PO chains: the batch's documents join theirs; exceptions are kept and routed now.
    chain_hooks.observe(session, ctx.partners, [e for _, _, e in events],
                        message_ids={e.id: m for m, _, e in events}, routes=ctx.settings.routes)
    store_events.add_deliveries_of(session, targets)
    messages.move_many(session, moves)
    parking.park_many(session, letters)
    claims.complete(session, worker_id, [c.item.id for c in batch])


def _carry_on(ctx: Context, c: Computed, settled: stages.Settled | None
              ) -> tuple[str, stages.Outcome, list[Any], list[tuple[str, str]]]:
    """Where the message ends: its last stage, its outcome, its events and their routes."""
    if c.closed is not None:
        return "validate", c.closed, [], []
    if c.documents is not None:
        # Their validation was their mapping: the good ones' events are made.
        outcome = c.documents
        made, failed = [r.event for r in c.translated if r.ok and r.event is not None], []
        if not made:
            return "validate", outcome, [], []
    else:
        assert settled is not None
        outcome = settled.outcome
        if not settled.to_map:
            return "validate", outcome, [], []
        made, failed = stages.sort_mapped(c.translated, settled.passed)
    outcome = outcome.then(stages.mapping_outcome(len(made), failed[:10], len(failed)))
    if not made:
        return "map", outcome, [], []
    routed = stages.route_events(ctx, ((e.id, e.type, e.to_dict()) for e in made))
    return "route", outcome.then(routed.outcome(len(made))), made, routed.pairs
