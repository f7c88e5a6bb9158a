"""Missed deadlines, found by the workers: no timers in memory, only due times in the store.

fire_due claims the pending deadlines due by `now` (SKIP LOCKED on PostgreSQL, so two
workers never take the same one), emits each one's exception and marks it fired in one
transaction: a worker killed before the commit leaves it pending for the next tick, one
killed after has fired it for good. A deadline whose partner has a message received
before it was due and not yet validated or mapped waits for it: under a backlog, the 997
or 855 that meets it may be in the queue. The same tick routes exception events kept with
no message and no routes (see correlate).
"""

from __future__ import annotations

import logging
from datetime import datetime

from gateway.chains import correlate, variances
from gateway.chains import readings as r
from gateway.pipeline import routing
from gateway.pipeline.context import Context
from gateway.store import claims, db, po_chains
from gateway.store import events as store_events

log = logging.getLogger(__name__)
BATCH = 100
# The stages in which a partner's message can meet a deadline: its 997/999 is settled when
# validated, its 855 joins the chain when mapped (a small message's are done together).
MEETING_STAGES = ("validate", "map")
_last: dict[int, datetime] = {}  # engine id -> the last tick's time, for `every`


def fire_due(ctx: Context, now: datetime, *, every: float = 0.0, limit: int = BATCH) -> int:
    """Emit the exceptions of deadlines due by now, each once; route unrouted ones. The
    deadlines fired. every: skip the tick when the last one was less than this many
    seconds ago; the worker loop calls it so between batches, and a failure (the store
    busy or away) is then logged and left to the next tick rather than stop the worker."""
    last = _last.get(id(ctx.engine))
    if every and last is not None and 0 <= (now - last).total_seconds() < every:
        return 0
    _last[id(ctx.engine)] = now
    if not every:
        return _fire(ctx, now, limit)
    try:
        return _fire(ctx, now, limit)
    except Exception:  # nothing was committed: the deadlines are still due
        log.exception("checking chain deadlines failed; trying again at the next tick")
        return 0


def _fire(ctx: Context, now: datetime, limit: int) -> int:
    with db.transaction(ctx.engine, write=False) as s:
        if not po_chains.anything_due(s, now):
            return 0  # the usual tick: no write transaction (on SQLite, no write lock)
    fired = held = 0
    with db.transaction(ctx.engine) as s:
        claimed = po_chains.claim_due(s, now, limit)
        # A message from the partner received before a deadline was due may be the 997 or
        # the 855 that meets it, still queued behind others: the deadline is judged once
        # such messages are worked, not fired meanwhile as missed.
        waiting = claims.earliest_waiting(s, {d.partner for d in claimed}, MEETING_STAGES)
        for due in claimed:
            first = waiting.get(due.partner)
            if first is not None and first <= due.due_at:
                held += 1
                continue
            if not po_chains.fire(s, due.id, now):
                continue
            fired += 1
            docs = variances.ordered_docs(correlate.readings_of(po_chains.documents(s, due.chain_id)))
            pos = [d for d in docs if d.type == r.PURCHASE_ORDER][-1:]
            kind = correlate.MISSING[due.kind]
            what = "997/999" if due.kind == correlate.ACK else "855"
            finding = variances.Finding(  # keyed by its due time: a PO sent again has its own
                f"{kind}:{due.due_at.isoformat()}", kind, f"PO {due.po_number}: no {what} from {due.partner} within "
                f"{due.hours:g} hours of the PO (due {due.due_at.isoformat()})",
                documents=pos, expected=due.due_at.isoformat(), tolerance={"hours": due.hours})
            correlate.emit(s, due.chain_id, due.partner, due.po_number, [finding],
                           message_id=None, routes=ctx.settings.routes, now=now, at=due.due_at)
        unrouted = po_chains.claim_unrouted(s, limit)
        pairs = [(event_id, d) for _, event_id, env in unrouted
                 for d in routing.destinations(ctx.settings.routes, env)]
        store_events.add_deliveries(s, None, pairs)  # type: ignore[arg-type]
        po_chains.mark_routed(s, [i for i, _, _ in unrouted], now)
    if fired:
        log.info("%d chain deadline(s) missed: exceptions emitted", fired)
    if held:
        log.debug("%d chain deadline(s) wait for messages received before they were due", held)
    return fired
