"""Dead letters in the store: list, show, replay and discard, each replay and discard audited.

The shared rules (filters, replay plans, diffs, timelines) live in deadletter/; this module
runs them against the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, case, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from canonical.errors import GatewayError
from deadletter import filters
from deadletter import replay as replay_rules
from deadletter import timeline as timeline_rules
from deadletter.filters import Filter, FilterError
from gateway import audit
from gateway.dry_run import Remapper
from gateway.store import claims, db, payloads
from gateway.store.models import (
    Audit,
    DeadLetter,
    DeadLetterStatus,
    Delivery,
    DeliveryStatus,
    Event,
    Message,
    MessageStatus,
    Payload,
    WorkItem,
)

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


def _selected(flt: Filter) -> Select[Any]:
    query = (select(DeadLetter, Message.partner, Message.source_name)
             .outerjoin(Message, Message.id == DeadLetter.message_id)
             .where(DeadLetter.status.in_(flt.statuses)))
    if flt.stages:
        query = query.where(DeadLetter.stage.in_(flt.stages))
    if flt.partners:
        query = query.where(Message.partner.in_(flt.partners))
    if flt.endpoints:
        query = query.where(DeadLetter.endpoint.in_(flt.endpoints))
    if flt.since:
        query = query.where(DeadLetter.last_failed_at >= flt.since)
    if flt.until:
        query = query.where(DeadLetter.last_failed_at < flt.until)
    if flt.reason_contains:
        query = query.where(DeadLetter.reason.icontains(flt.reason_contains, autoescape=True))
    if flt.message_id is not None:
        query = query.where(DeadLetter.message_id == flt.message_id)
    return query


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
    query = _selected(flt)
    if before is not None:
        query = query.where(DeadLetter.id < before)
    # By id, not by time: ids only grow, so the cursor is stable while letters arrive.
    rows = session.execute(query.order_by(DeadLetter.id.desc()).limit(limit + 1)).all()
    items = [_summary(*row) for row in rows[:limit]]
    return Page(items, items[-1]["id"] if len(rows) > limit else None)


def show(session: Session, dead_letter_id: int) -> dict[str, Any]:
    """A dead letter with its message, raw input, error chain, events and timeline."""
    dl = session.get(DeadLetter, dead_letter_id)
    if dl is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    message = session.get(Message, dl.message_id) if dl.message_id is not None else None
    out = _summary(dl, message.partner if message else None,
                   message.source_name if message else None)
    out["error_chain"] = dl.error_chain
    out["delivery"] = _delivery(session.get(Delivery, dl.delivery_id)) if dl.delivery_id else None
    if message is None:
        out.update(message=None, raw=None, events=[], timeline=[])
        return out
    view = message_view(session, message.id)
    out.update(message=view["message"], events=view["events"], timeline=view["timeline"])
    data = session.scalar(select(Payload.data).where(Payload.sha256 == message.payload_sha256))
    out["raw"] = raw_view(data) if data is not None else None
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
    message = session.get(Message, message_id)
    if message is None or (partner is not None and message.partner != partner):
        # The same answer for "missing" and "someone else's", so ids do not leak.
        raise NotFound(f"no message {message_id}")
    events = session.scalars(select(Event).where(Event.message_id == message_id)
                             .order_by(Event.id)).all()
    event_ids = [e.event_id for e in events]
    deliveries = session.scalars(select(Delivery).where(Delivery.event_id.in_(event_ids))
                                 .order_by(Delivery.id)).all() if event_ids else []
    delivery_ids = [d.id for d in deliveries]
    work = session.scalars(
        select(WorkItem).where((WorkItem.message_id == message_id)
                               | WorkItem.delivery_id.in_(delivery_ids or [-1]))
        .order_by(WorkItem.id)).all()
    dead = session.scalars(select(DeadLetter).where(DeadLetter.message_id == message_id)
                           .order_by(DeadLetter.id)).all()
    targets = [f"message:{message_id}", *(f"dead_letter:{d.id}" for d in dead)]
    audits = session.scalars(select(Audit).where(Audit.target.in_(targets))
                             .order_by(Audit.id)).all()
    entries = timeline_rules.build(
        _row(message), work_items=[_row(w) for w in work], events=[_row(e) for e in events],
        deliveries=[_row(d) for d in deliveries], dead_letters=[_row(d) for d in dead],
        audits=[_row(a) for a in audits], show_actors=show_actors)
    return {
        "message": {"id": message.id, "partner": message.partner, "channel": message.channel,
                    "source_name": message.source_name, "status": message.status,
                    "stage": message.stage, "received_at": message.received_at.isoformat(),
                    "payload_sha256": message.payload_sha256, "replays": message.replays},
        "events": [{"event_id": e.event_id, "type": e.type, "subject": e.subject,
                    "created_at": e.created_at.isoformat()} for e in events],
        "dead_letters": [d.id for d in dead],
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
    parked = replace(flt, statuses=(DeadLetterStatus.PARKED.value,))
    query = _selected(parked).with_only_columns(DeadLetter.id).order_by(DeadLetter.id)
    return list(session.scalars(query.limit(limit)))


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
    dl = s.get(DeadLetter, dl_id)
    if dl is None:
        return Outcome(dl_id, "not-found", f"no dead letter {dl_id}")
    try:
        plan = _plan(dl)
    except replay_rules.NotReplayable as exc:
        return Outcome(dl_id, "skipped", str(exc), stage=dl.stage)
    # R7: the status check and the change are one statement, so of two replays at once
    # (two operators, a double click) exactly one sees a row change and acts.
    changed = s.execute(update(DeadLetter)
                        .where(DeadLetter.id == dl_id,
                               DeadLetter.status == DeadLetterStatus.PARKED)
                        .values(status=DeadLetterStatus.REPLAYED)
                        .returning(DeadLetter.id),
                        execution_options={"synchronize_session": False}).first()
    if changed is None:
        return Outcome(dl_id, "skipped", f"dead letter {dl_id} was replayed or discarded "
                       "meanwhile", stage=dl.stage)
    now = db.utcnow()
    if plan.reset_delivery:
        # Attempts are kept: the retry policy's budget counts every try of this event.
        # A delivered one is never set back: the ERP has acknowledged that event id.
        s.execute(update(Delivery)
                  .where(Delivery.id == plan.delivery_id,
                         Delivery.status != DeliveryStatus.DELIVERED)
                  .values(status=DeliveryStatus.PENDING, next_attempt_at=now, updated_at=now),
                  execution_options={"synchronize_session": False})
    item = claims.enqueue(s, plan.stage, message_id=plan.message_id,
                          delivery_id=plan.delivery_id, run_after=now)
    if plan.message_id is not None:
        s.execute(update(Message).where(Message.id == plan.message_id)
                  .values(replays=Message.replays + 1, updated_at=now,
                          status=_revived(Message.status)),
                  execution_options={"synchronize_session": False})
    audit.record(s, actor=actor, action=REPLAY, target=f"dead_letter:{dl_id}", reason=reason,
                 details={"stage": plan.stage, "message_id": plan.message_id,
                          "delivery_id": plan.delivery_id, "work_item_id": item.id})
    return Outcome(dl_id, "replayed", plan.why, stage=plan.stage, work_item_id=item.id)


def _revived(status: Any) -> Any:
    """A dead message is in the works again once replayed; others keep their status."""
    return case((status == MessageStatus.DEAD, MessageStatus.PROCESSING.value), else_=status)


def _dry_run(s: Session, dl_id: int, remapper: Remapper) -> Outcome:
    dl = s.get(DeadLetter, dl_id)
    if dl is None:
        return Outcome(dl_id, "not-found", f"no dead letter {dl_id}")
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
    if plan.stage in ("validate", "map", "deliver") and dl.message_id is not None:
        report.update(_remap_report(s, dl, remapper))
    return Outcome(dl_id, "would-replay", plan.why, stage=plan.stage, dry_run=report)


def _remap_report(s: Session, dl: DeadLetter, remapper: Remapper) -> dict[str, Any]:
    """Today's events for the message, each beside the stored event with the same id."""
    message = s.get_one(Message, dl.message_id)
    data = payloads.read_all(s, message.payload_sha256)  # all its parts, when large
    stored = {e.event_id: e.envelope for e in s.scalars(
        select(Event).where(Event.message_id == message.id))}
    sent = None
    if dl.delivery_id is not None:
        delivery = s.get(Delivery, dl.delivery_id)
        sent = delivery.event_id if delivery else None
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
        dl = s.get(DeadLetter, dead_letter_id)
        if dl is None:
            return Outcome(dead_letter_id, "not-found", f"no dead letter {dead_letter_id}")
        changed = s.execute(update(DeadLetter)
                            .where(DeadLetter.id == dead_letter_id,
                                   DeadLetter.status == DeadLetterStatus.PARKED)
                            .values(status=DeadLetterStatus.DISCARDED)
                            .returning(DeadLetter.id),
                            execution_options={"synchronize_session": False}).first()
        if changed is None:
            return Outcome(dead_letter_id, "skipped",
                           f"dead letter {dead_letter_id} is {dl.status}, not parked",
                           stage=dl.stage)
        audit.record(s, actor=actor, action=DISCARD, target=f"dead_letter:{dead_letter_id}",
                     reason=reason, details={"stage": dl.stage, "message_id": dl.message_id,
                                             "delivery_id": dl.delivery_id})
        return Outcome(dead_letter_id, "discarded", reason, stage=dl.stage)
