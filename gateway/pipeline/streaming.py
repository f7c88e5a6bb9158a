"""The transactional stages for a large message: set by set, in short transactions.

A message whose payload is kept in several parts (over a megabyte) would hold SQLite's
write lock, and its whole payload, events and results in memory, for as long as one
transaction of validate, map or route takes on it: minutes for 100 MB. Here each stage
reads the payload a part at a time outside any write transaction, and writes its output
a page at a time, each page in its own short transaction that first checks the item is
still this worker's (and extends its lease), and is followed by a pause as long as it
held the lock, so that the API and other workers get it between pages. The last
transaction writes what is left, enqueues the next stage and completes the item, as the
batched stages do in their one.

A crash between pages leaves the pages written so far; the item comes back when its
lease runs out and runs again from the start, and every page it writes again is keyed
(events by event id, deliveries by event and destination) so nothing is doubled.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from canonical.envelope import Event as CloudEvent
from gateway.chains import correlate as chain_hooks
from gateway.partners import Partner
from gateway.pipeline import stages
from gateway.pipeline.context import Context
from gateway.store import claims, db, events, messages, payloads, receive
from gateway.store.models import Message, MessageStatus, WorkItem
from gateway.store.sequences import StoreControlNumbers
from mappings import translate
from mappings.x12 import acks, validator
from mappings.x12.results import FileResult

Streamed = Callable[[Context, WorkItem, str], None]
# A page is written when it has this many events, or when this long went into making it:
# each transaction stays well under a second, and memory holds one page (an event of a
# 100-line order is some 200 KB as Python objects).
PAGE_EVENTS = 50
PAGE_SECONDS = 0.5
# After each page's commit the stage waits as long as the commit's transaction took, at
# most this long: a writer that begins again at once can keep SQLite's write lock from
# the API and other workers for good, however short each of its transactions.
PAUSE_MAX = 0.2
# Events routed per transaction.
ROUTE_PAGE = 50


def _begin(ctx: Context, item: WorkItem) -> tuple[Message, str]:
    """The item's message (read only) and its payload's digest."""
    with db.transaction(ctx.engine, write=False) as s:
        msg = stages.message_of(s, item)
        return msg, msg.payload_sha256


def _write_page(ctx: Context, write: Callable[[Session], None]) -> None:
    """One page's short write transaction, then a pause as long as it held the lock."""
    started = time.monotonic()
    with db.transaction(ctx.engine) as s:
        write(s)
    time.sleep(min(time.monotonic() - started, PAUSE_MAX))


def _finish(ctx: Context, item: WorkItem, worker: str,
            last: Callable[[Session, WorkItem, Message], None]) -> None:
    """The last transaction: the stage's remaining output, then the item completed."""
    with db.transaction(ctx.engine) as s:
        current = claims.load(s, item.id)
        msg = stages.message_of(s, current)
        last(s, current, msg)
        claims.complete(s, worker, [item.id])


def _validated(ctx: Context, msg: Message, lenient: frozenset[str]) -> FileResult:
    return validator.validate(payloads.open_payload(ctx.engine, msg.payload_sha256),
                              path=msg.source_name, max_bytes=ctx.settings.max_input_bytes,
                              accept_with_errors=lenient)


def _head(ctx: Context, digest: str) -> bytes:
    with payloads.open_payload(ctx.engine, digest) as f:
        return f.read(512)


def validate(ctx: Context, item: WorkItem, worker: str) -> None:
    """stages.validate, with the file read twice a part at a time before the one commit.

    A large CSV or JSON file is read whole (its rows group into documents across the
    file) and settled in the one transaction, as stages.validate does."""
    msg, digest = _begin(ctx, item)
    partner = ctx.partners.by_id.get(msg.partner)
    if partner is not None and stages.format_of(partner, _head(ctx, digest)) != "x12":
        _finish(ctx, item, worker, lambda s, current, m: stages.validate(ctx, s, current))
        return
    result = (_validated(ctx, msg, partner.accept_with_errors) if partner is not None
              else None)
    digests = (stages.interchange_digests(payloads.open_payload(ctx.engine, digest))
               if result is not None and result.readable else {})
    prebuilt = (_acknowledgments(ctx, msg, partner, result)
                if partner is not None and result is not None else None)

    def last(s: Session, current: WorkItem, m: Message) -> None:
        messages.mark(m, stage="validate", status=MessageStatus.PROCESSING)
        if partner is None or result is None:
            stages.close(s, current, m, stages.partner_gone(ctx, m.partner))
            return
        stages.settle_validation(ctx, s, current, m, partner, result, lambda: digests,
                                 prebuilt)

    _finish(ctx, item, worker, last)


def _acknowledgments(ctx: Context, msg: Message, partner: Partner,
                     result: FileResult) -> dict[int, acks.AckBatch] | None:
    """The acks of each interchange, built before the transaction that keeps them.

    A 997 answering every set of a large group takes seconds to build, too long to hold
    the write lock for; so its control numbers are taken each in a short commit of its
    own (StoreControlNumbers) and the text is built outside. Numbers of acks that end up
    not kept (the interchange turns out a duplicate, or the stage fails) are skipped,
    never reused. None (build them in the transaction, as for a small file) when the
    message has interchanges recorded already: a replay, whose acks were made then.
    """
    if not result.readable or stages.sender_problem(ctx, partner, result.interchanges):
        return None
    with db.transaction(ctx.engine, write=False) as s:
        if receive.interchanges_of(s, msg.id):
            return None
    numbers = StoreControlNumbers(ctx.engine, scope=f"partner:{partner.id}")
    now = db.utcnow()
    return {n: acks.build_acknowledgments(ic, numbers, now)
            for n, ic in enumerate(result.interchanges)}


def map_(ctx: Context, item: WorkItem, worker: str) -> None:
    """stages.map_, a page of events per transaction."""
    msg, digest = _begin(ctx, item)
    partner = ctx.partners.by_id.get(msg.partner)
    if partner is None:
        raise stages.MissingInput(f"unknown partner {msg.partner!r}")
    fmt = stages.format_of(partner, _head(ctx, digest))
    with db.transaction(ctx.engine, write=False) as s:
        passed = receive.passed_isa13s(s, msg.id)
        # The validate stage's verdicts, a chunk at a time, each in a short read of its own.
        verdicts = stages.kept_verdicts(
            s, msg.id, lambda: db.transaction(ctx.engine, write=False))
    if verdicts is None and fmt == "x12":
        # Validated before verdicts were kept: validate again (a part at a time).
        verdicts = translate.verdicts_of(_validated(ctx, msg, partner.accept_with_errors))
    lease = ctx.settings.workers.lease_seconds
    made, failed, failures = 0, 0, []
    page: list[CloudEvent] = []
    started = time.monotonic()

    def write(s: Session, page: list[CloudEvent]) -> None:
        claims.hold(s, worker, item.id, lease)
        events.add_events(s, msg.id, msg.partner, page)
        chain_hooks.observe(s, ctx.partners, page, message_id=msg.id)  # PO chains

    results = translate.translate(
        payloads.open_payload(ctx.engine, digest), fmt=fmt,
        mappings=stages.mapping_refs(partner), partner=partner.id, name=msg.source_name,
        time=msg.received_at, verdicts=verdicts, accept_with_errors=partner.accept_with_errors)
    for r in results:
        if not stages.mapped_here(r, passed):
            continue
        if r.status == "translated" and r.event is not None:
            page.append(r.event)
            made += 1
        elif r.status == "failed":
            failed += 1
            if len(failures) < 10:
                failures.append(r)
        if len(page) >= PAGE_EVENTS or (page and time.monotonic() - started > PAGE_SECONDS):
            _write_page(ctx, functools.partial(write, page=page))
            page, started = [], time.monotonic()
    del results, verdicts

    def last(s: Session, current: WorkItem, m: Message) -> None:
        messages.mark(m, stage="map")
        write(s, page)
        if made:
            claims.enqueue_once(s, "route", message_id=m.id)
        stages.close(s, current, m, stages.mapping_outcome(made, failures, failed))

    _finish(ctx, item, worker, last)


def route(ctx: Context, item: WorkItem, worker: str) -> None:
    """stages.route, a page of events per transaction (their deliver items enqueued with them)."""
    msg, _ = _begin(ctx, item)
    lease = ctx.settings.workers.lease_seconds
    after, seen = 0, 0
    routed = stages.Routed()
    while True:
        # Read and routed outside the write transaction, which then only inserts.
        with db.transaction(ctx.engine, write=False) as s:
            rows = events.page(s, msg.id, after, ROUTE_PAGE)
        if not rows:
            break
        routed.pairs = []
        stages.route_events(ctx, (r[1:] for r in rows), into=routed)

        def write(s: Session, targets: list[tuple[str, str]] = routed.pairs) -> None:
            claims.hold(s, worker, item.id, lease)
            events.add_deliveries(s, msg.id, targets)

        _write_page(ctx, write)
        seen += len(rows)
        after = rows[-1][0]

    def last(s: Session, current: WorkItem, m: Message) -> None:
        messages.mark(m, stage="route")
        stages.close(s, current, m, routed.outcome(seen))

    _finish(ctx, item, worker, last)


STREAMED: dict[str, Streamed] = {"validate": validate, "map": map_, "route": route}
