"""Dead letters in the store: list, show, replay and discard, each replay and discard audited.

The shared rules (filters, replay plans, diffs, timelines) live in deadletter/; this module
runs them against the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from canonical.errors import GatewayError
from deadletter import filters
from deadletter import replay as replay_rules
from deadletter import timeline as timeline_rules
from deadletter.filters import Filter, FilterError
from gateway.dry_run import Remapper
from gateway.store import audit_log, db, dead_letters, payloads
from gateway.store.models import DeadLetter, Delivery, Message

MAX_PAGE = filters.MAX_PAGE
# A filter replay does at most this many per call; the operator runs it again for more.
MAX_REPLAY = 1000
# Raw input shown by `show`: enough to read the failing segment, not a 100 MB interchange.
TEXT_EXCERPT = 64 * 1024
HEX_EXCERPT = 1024
REPLAY, DISCARD = "dead_letter.replay", "dead_letter.discard"


class NotFound(GatewayError):
    """No such dead letter or message."""


@dataclass
class Page:
    """One page of dead letters, newest first, and the cursor of the next one."""

    items: list[dict[str, Any]]
    next_before: int | None  # pass as before= for the next page; None on the last


@dataclass
class Outcome:
    """What one replay or discard did to one dead letter."""

    dead_letter_id: int
    result: str  # replayed, discarded, would-replay, skipped, not-found
    detail: str = ""
    stage: str | None = None
    work_item_id: int | None = None
    dry_run: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.result in ("replayed", "discarded", "would-replay")

    def to_dict(self) -> dict[str, Any]:
        out = {"dead_letter_id": self.dead_letter_id, "result": self.result,
               "detail": self.detail, "stage": self.stage, "work_item_id": self.work_item_id}
        if self.dry_run:
            out["dry_run"] = self.dry_run
        return out


def _summary(dl: DeadLetter, partner: str | None, source_name: str | None) -> dict[str, Any]:
    return {"id": dl.id, "status": dl.status, "stage": dl.stage, "partner": partner,
            "endpoint": dl.endpoint, "reason": dl.reason, "attempts": dl.attempts,
            "first_failed_at": dl.first_failed_at.isoformat(),
            "last_failed_at": dl.last_failed_at.isoformat(), "message_id": dl.message_id,
            "delivery_id": dl.delivery_id, "work_item_id": dl.work_item_id,
            "source_name": source_name}


def list_page(session: Session, flt: Filter, *, limit: int = 50,
              before: int | None = None) -> Page:
    """Dead letters matching flt, newest first; page on with the returned cursor."""
    limit = max(1, min(limit, MAX_PAGE))
    rows = dead_letters.newest(session, flt, limit=limit + 1, before=before)
    items = [_summary(*row) for row in rows[:limit]]
    return Page(items, items[-1]["id"] if len(rows) > limit else None)


def show(session: Session, dead_letter_id: int) -> dict[str, Any]:
    """A dead letter with its message, raw input, error chain, events and timeline."""
    got = dead_letters.detail(session, dead_letter_id)
    if got is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    dl, message = got.dead_letter, got.message
    out = _summary(dl, message.partner if message else None,
                   message.source_name if message else None)
    out["error_chain"] = dl.error_chain
    out["delivery"] = _delivery(got.delivery)
    if message is None:
        return out | {"message": None, "raw": None, "events": [], "timeline": []}
    view = message_view(session, message.id)
    out |= {"message": view["message"], "events": view["events"],
            "timeline": view["timeline"]}
    out["raw"] = raw_view(got.raw_head) if got.raw_head is not None else None
    return out


def raw_view(data: bytes, *, text_limit: int = TEXT_EXCERPT,
             hex_limit: int = HEX_EXCERPT) -> dict[str, Any]:
    """The payload as text when it decodes as UTF-8, else a hex excerpt; always bounded."""
    try:
        text = data[:text_limit].decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut through a multi-byte character at the limit is not binary data.
        if exc.start < text_limit - 4 or len(data) <= text_limit:
            head = data[:hex_limit]
            return {"encoding": "hex", "size": len(data), "truncated": len(data) > hex_limit,
                    "content": " ".join(f"{b:02x}" for b in head)}
        text = data[:exc.start].decode("utf-8")
    return {"encoding": "text", "size": len(data), "truncated": len(data) > len(text.encode()),
            "content": text}


def message_view(session: Session, message_id: int, *, partner: str | None = None,
                 show_actors: bool = True) -> dict[str, Any]:
    """A message and its timeline; NotFound when partner is given and it is not theirs."""
    found = dead_letters.history(session, message_id)
    if found is None or (partner is not None and found.message.partner != partner):
        # The same answer for "missing" and "someone else's", so ids do not leak.
        raise NotFound(f"no message {message_id}")
    message, events = found.message, found.events
    entries = timeline_rules.build(
        _row(message), work_items=[_row(w) for w in found.work_items],
        events=[_row(e) for e in events], deliveries=[_row(d) for d in found.deliveries],
        dead_letters=[_row(d) for d in found.dead_letters],
        audits=[_row(a) for a in found.audits], show_actors=show_actors)
    return {
        "message": {"id": message.id, "partner": message.partner, "channel": message.channel,
                    "source_name": message.source_name, "status": message.status,
                    "stage": message.stage, "received_at": message.received_at.isoformat(),
                    "payload_sha256": message.payload_sha256, "replays": message.replays},
        "events": [{"event_id": e.event_id, "type": e.type, "subject": e.subject,
                    "created_at": e.created_at.isoformat()} for e in events],
        "dead_letters": [d.id for d in found.dead_letters],
        "timeline": [e.to_dict() for e in entries],
    }


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__mapper__.column_attrs}


def _delivery(d: Delivery | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"id": d.id, "event_id": d.event_id, "destination": d.destination,
            "status": d.status, "attempts": d.attempts, "last_status_code": d.last_status_code,
            "last_error": d.last_error}


def matching_ids(session: Session, flt: Filter, *, limit: int = MAX_REPLAY) -> list[int]:
    """Ids of the parked dead letters flt selects, oldest first (the order they failed)."""
    if flt.empty:
        raise FilterError("a filter replay needs at least one condition "
                          "(e.g. stage=deliver since=2h)")
    return dead_letters.parked_ids(session, flt, limit=limit)


def replay(engine: Engine, ids: Iterable[int], *, actor: str, reason: str | None,
           dry_run: bool = False, remapper: Remapper | None = None) -> list[Outcome]:
    """Replay each dead letter in a transaction of its own (its audit row included)."""
    if not dry_run and not (reason and reason.strip()):
        raise GatewayError("a replay needs a reason (it goes into the audit trail)")
    out = []
    for dl_id in ids:
        if dry_run:
            with db.transaction(engine, write=False) as s:
                out.append(_dry_run(s, dl_id, remapper or Remapper()))
        else:
            with db.transaction(engine) as s:
                out.append(_replay_one(s, dl_id, actor, reason or ""))
    return out


def _plan(dl: DeadLetter) -> replay_rules.ReplayPlan:
    return replay_rules.plan(dl.id, stage=dl.stage, status=dl.status, message_id=dl.message_id,
                             delivery_id=dl.delivery_id, endpoint=dl.endpoint)


def _replay_one(s: Session, dl_id: int, actor: str, reason: str) -> Outcome:
    dl = dead_letters.get(s, dl_id)
    if dl is None:
        return Outcome(dl_id, "not-found", f"no dead letter {dl_id}")
    try:
        plan = _plan(dl)
    except replay_rules.NotReplayable as exc:
        return Outcome(dl_id, "skipped", str(exc), stage=dl.stage)
    # R7: of two replays at once (two operators, a double click) exactly one requeues.
    item = dead_letters.requeue(s, dl_id, stage=plan.stage, message_id=plan.message_id,
                                delivery_id=plan.delivery_id,
                                reset_delivery=plan.reset_delivery, now=db.utcnow())
    if item is None:
        return Outcome(dl_id, "skipped", f"dead letter {dl_id} was replayed or discarded "
                       "meanwhile", stage=dl.stage)
    audit_log.record(s, actor=actor, action=REPLAY, target=f"dead_letter:{dl_id}", reason=reason,
                     details={"stage": plan.stage, "message_id": plan.message_id,
                              "delivery_id": plan.delivery_id, "work_item_id": item.id})
    return Outcome(dl_id, "replayed", plan.why, stage=plan.stage, work_item_id=item.id)


def _dry_run(s: Session, dl_id: int, remapper: Remapper) -> Outcome:
    got = dead_letters.detail(s, dl_id)
    if got is None:
        return Outcome(dl_id, "not-found", f"no dead letter {dl_id}")
    dl = got.dead_letter
    try:
        plan = _plan(dl)
    except replay_rules.NotReplayable as exc:
        return Outcome(dl_id, "skipped", str(exc), stage=dl.stage)
    report: dict[str, Any] = {"would": f"enqueue a {plan.stage} work item"
                              + (f" and set delivery {plan.delivery_id} back to pending"
                                 if plan.reset_delivery else ""),
                              "last_error": dl.reason}
    # A validate replay maps too (CSV and JSON documents are checked by their mapping):
    # show today's mapping of the message for every stage that maps or sends its events.
    if plan.stage in ("validate", "map", "deliver") and got.message is not None:
        report |= _remap_report(s, got.message, got.delivery, remapper)
    return Outcome(dl_id, "would-replay", plan.why, stage=plan.stage, dry_run=report)


def _remap_report(s: Session, message: Message, delivery: Delivery | None,
                  remapper: Remapper) -> dict[str, Any]:
    """Today's events for the message, each beside the stored event with the same id."""
    data = payloads.read_all(s, message.payload_sha256)  # all its parts, when large
    stored = dead_letters.event_envelopes(s, message.id)
    sent = delivery.event_id if delivery is not None else None
    today = remapper.remap(partner=message.partner, source_name=message.source_name,
                           data=data or b"", time=message.received_at)
    events = []
    for event in today.events:
        if sent is not None and event.get("id") != sent:
            continue  # a deliver replay concerns only the delivery's own event
        last = stored.get(event.get("id"))
        # Time is when the event was made, which differs on every run by design.
        differences = replay_rules.diff(last, event, ignore=("time",)) if last else []
        events.append({"event": event, "stored": last is not None,
                       "differences": [str(d) for d in differences]})
    out: dict[str, Any] = {"events": events, "mapping_failures": today.failures,
                           "diff_ignores": ["time"]}
    if sent is not None:
        # The deliver stage sends the stored event, kept whole so every retry sends the
        # same one; a differing mapping today only takes effect through a map replay.
        out["sends"] = stored.get(sent)
    return out


def discard(engine: Engine, dead_letter_id: int, *, actor: str, reason: str) -> Outcome:
    """Mark a parked dead letter discarded, with the reason in the audit trail."""
    if not reason or not reason.strip():
        raise GatewayError("a discard needs a reason (it goes into the audit trail)")
    with db.transaction(engine) as s:
        dl = dead_letters.get(s, dead_letter_id)
        if dl is None:
            return Outcome(dead_letter_id, "not-found", f"no dead letter {dead_letter_id}")
        if not dead_letters.discard(s, dead_letter_id):
            return Outcome(dead_letter_id, "skipped",
                           f"dead letter {dead_letter_id} is {dl.status}, not parked",
                           stage=dl.stage)
        audit_log.record(s, actor=actor, action=DISCARD, target=f"dead_letter:{dead_letter_id}",
                         reason=reason, details={"stage": dl.stage, "message_id": dl.message_id,
                                                 "delivery_id": dl.delivery_id})
        return Outcome(dead_letter_id, "discarded", reason, stage=dl.stage)
