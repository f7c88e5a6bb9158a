"""The chains' entry points: documents join their PO's chain, the chain is checked, and
each new finding becomes one exception.v1 event, stored in the caller's transaction.

Where an exception event goes:
- observed from a message's events (the map stage): kept with that message, so the
  message's route stage routes it with the message's own events;
- from anything else (our PO sent, its 997/999, a goods receipt, a missed deadline): kept
  with no message, and routed at once when the caller passes the routes; otherwise the
  workers' next deadline tick (deadlines.fire_due) routes it. Its finding row records
  whether it was routed, so it is routed once.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from canonical import envelope, schemas
from canonical.envelope import Event as CloudEvent
from gateway.chains import readings as r
from gateway.chains import variances
from gateway.chains.agreement import DEFAULT, ChainPolicy
from gateway.partners import Partners
from gateway.pipeline import routing
from gateway.settings import Route
from gateway.store import db, po_chains
from gateway.store import events as store_events

ACK, PO_ACK = "ack", "po_ack"  # deadline kinds: the 997/999, the 855
MISSING = {ACK: "ack_missing", PO_ACK: "po_ack_missing"}


def policy_of(partners: Partners | None, partner: str) -> ChainPolicy:
    """The partner's chain policy (the defaults when it states none)."""
    p = partners.by_id.get(partner) if partners is not None else None
    found = getattr(p, "chains", None)
    return found if isinstance(found, ChainPolicy) else DEFAULT


def _time(value: str | datetime | None, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    if not value:
        return fallback
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_millis(at: datetime) -> datetime:
    """A time as events carry it (milliseconds): documents that came in together keep the
    order of their kinds (a 997 before the 855 beside it), whatever their source."""
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def _event_parts(ev: CloudEvent | Mapping[str, Any]) -> tuple[str, str, str, dict, str | None, Any]:
    """(partner, event type, id, data, x12control, time) of an event or envelope dict."""
    if isinstance(ev, CloudEvent):
        return (ev.partner or "", ev.event_type, ev.id, ev.data,
                ev.extensions.get("x12control"), ev.time)  # type: ignore[return-value]
    name = str(ev.get("type", "")).removeprefix(envelope.TYPE_PREFIX).rsplit(".v", 1)[0]
    return (str(ev.get("partner", "")), name, str(ev["id"]), ev.get("data") or {},
            ev.get("x12control"), ev.get("time"))


def observe(session: Session, partners: Partners | None,
            events: Iterable[CloudEvent | Mapping[str, Any]], *, message_id: int | None = None,
            message_ids: Mapping[str, int] | None = None,
            routes: Sequence[Route] | None = None,
            now: datetime | None = None) -> list[CloudEvent]:
    """A message's events join their chains (850, 855 by BAK03, 856 per order level, 810 by
    BIG04); the new exception events, kept with the message (see the module docstring).
    Set-based: a page of events costs a few statements, not a few per event.

    message_ids: for the events of several messages at once (a fused batch), each event's
    message by event id; the documents keep theirs, and the exceptions are kept with no
    message (give routes: they are routed at once).
    """
    now = now or db.utcnow()
    grouped: dict[tuple[str, str], list[r.Reading]] = defaultdict(list)
    owners: dict[int, int | None] = {}
    for ev in events:
        partner, name, event_id, data, control, when = _event_parts(ev)
        if name not in r.OBSERVED or name == r.GOODS_RECEIPT or not partner:
            continue
        for rd in r.of_event(name, data, event_id=event_id, at=_time(when, now),
                             x12control=control):
            grouped[(partner, rd.po_number)].append(rd)
            if message_ids is not None:
                owners[id(rd)] = message_ids.get(event_id)
    if not grouped:
        return []
    policies = {p: policy_of(partners, p) for p, _ in grouped}
    return join_many(session, grouped, policies, message_id=message_id,
                     message_of=owners if message_ids is not None else None, routes=routes,
                     now=now)


def join(session: Session, partner: str, po_number: str, found: Sequence[r.Reading],
         policy: ChainPolicy, *, message_id: int | None = None,
         routes: Sequence[Route] | None = None, now: datetime,
         direction: str = "inbound") -> list[CloudEvent]:
    """Documents of one chain kept (once each), the chain checked; the new exception events."""
    return join_many(session, {(partner, po_number): list(found)}, {partner: policy},
                     message_id=message_id, routes=routes, now=now, direction=direction)


def join_many(session: Session, grouped: Mapping[tuple[str, str], Sequence[r.Reading]],
              policies: Mapping[str, ChainPolicy], *, message_id: int | None,
              routes: Sequence[Route] | None, now: datetime,
              direction: str = "inbound",
              message_of: Mapping[int, int | None] | None = None) -> list[CloudEvent]:
    """Documents kept in their chains (once each); the chains that gained one checked; the
    new exception events."""
    ids, made = po_chains.chains(session, list(grouped), state=variances.WAITING, now=now)
    rows, lines, owners = [], [], []
    for key, found in grouped.items():
        chain_id = ids[key][0]
        for rd in found:
            rows.append({"chain_id": chain_id, "type": rd.type, "doc_key": rd.doc_key,
                         "number": rd.number, "x12control": rd.x12control,
                         "message_id": (message_of.get(id(rd)) if message_of is not None
                                        else message_id),
                         "at": to_millis(rd.at), "observed_at": now,
                         "facts": rd.facts | ({"direction": direction}
                                              if rd.type == r.PURCHASE_ORDER else {})})
            lines.append([vars(ln) for ln in rd.lines])
            owners.append((key, rd))
    added = po_chains.add_documents(session, rows, lines)
    new = [owners[n] for n in added]
    if not new:
        return []  # all seen before (a replay): nothing has changed
    po_chains.meet_many(session, [(ids[key][0], PO_ACK, rd.at) for key, rd in new
                                  if rd.type == r.PO_ACK])
    changed = list(dict.fromkeys(key for key, _ in new))
    # A chain made just now holds only what was just added: no need to read it back.
    stored = po_chains.documents_of(session, [ids[k][0] for k in changed if k not in made])
    stored.update(po_chains.as_stored(rows, lines, {
        n: doc_id for n, doc_id in added.items() if owners[n][0] in made}))
    states, found_by_chain = [], []
    for key in changed:
        chain_id, old_state, old_direction = ids[key]
        docs = readings_of(stored.get(chain_id, []))
        pos = [d for d in variances.ordered_docs(docs) if d.type == r.PURCHASE_ORDER]
        state = variances.state(docs)
        now_direction = pos[-1].facts.get("direction") if pos else None
        if state != old_state or (now_direction and now_direction != old_direction):
            states.append((chain_id, state, now_direction))
        found = variances.evaluate(key[0], key[1], docs, policies[key[0]])
        if found:
            found_by_chain.append((chain_id, key[0], key[1], found))
    po_chains.set_states(session, states, now)
    return emit_many(session, found_by_chain, message_id=message_id, routes=routes, now=now)


def readings_of(stored: Sequence[po_chains.StoredDocument]) -> list[r.Reading]:
    """A chain's stored documents as the checks read them."""
    return [r.Reading(d.type, "", d.doc_key, d.at, d.number, d.x12control, d.facts,
                      [r.LineReading(ln.line_number, ln.item_ids, ln.quantity, ln.unit,
                                     ln.unit_price, ln.dates) for ln in d.lines])
            for d in stored]


def emit(session: Session, chain_id: int, partner: str, po_number: str,
         found: Sequence[variances.Finding], *, message_id: int | None,
         routes: Sequence[Route] | None, now: datetime,
         at: datetime | None = None) -> list[CloudEvent]:
    """Findings of one chain not emitted before, as exception events kept (and routed when
    routes are given) in this transaction."""
    return emit_many(session, [(chain_id, partner, po_number, found)], message_id=message_id,
                     routes=routes, now=now, at=at)


def emit_many(session: Session,
              found: Sequence[tuple[int, str, str, Sequence[variances.Finding]]], *,
              message_id: int | None, routes: Sequence[Route] | None, now: datetime,
              at: datetime | None = None) -> list[CloudEvent]:
    """(chain id, partner, PO number, findings): those not emitted before kept as
    exception events, routed when routes are given, each finding recorded once (the
    chains are locked to this transaction, see po_chains.chain)."""
    found = [f for f in found if f[3]]
    if not found:
        return []
    done = po_chains.finding_keys_of(session, [f[0] for f in found])
    made: list[CloudEvent] = []
    rows = []
    for chain_id, partner, po_number, findings in found:
        seen = done.get(chain_id, set())
        for f in {f.key: f for f in findings if f.key not in seen}.values():
            event = exception_event(partner, po_number, f, at=at)
            made.append(event)
            rows.append((chain_id, f.key, f.kind, event.id))
    if not made:
        return []
    store_events.add_events(session, message_id, made[0].partner or "", made)  # type: ignore[arg-type]
    if routes is not None:
        store_events.add_deliveries(session, message_id, [  # type: ignore[arg-type]
            (e.id, d) for e in made for d in routing.destinations(routes, e.to_dict())])
    po_chains.add_findings(session, None, rows, now=now,
                           routed=routes is not None or message_id is not None)
    return made


def exception_event(partner: str, po_number: str, f: variances.Finding, *,
                    at: datetime | None = None) -> CloudEvent:
    """The exception.v1 event of a finding: its id from partner, PO number and the
    finding's key; its time that of the latest document involved (or at)."""
    data: dict[str, Any] = {"kind": f.kind, "severity": f.severity, "partner": partner,
                            "po_number": po_number}
    if f.line_number:
        data["line_number"] = f.line_number
    if f.item_ids:
        data["item_ids"] = f.item_ids
    if f.documents:
        data["documents"] = [{k: v for k, v in (("type", d.type), ("id", d.doc_key),
                                                ("number", d.number),
                                                ("x12control", d.x12control)) if v}
                             for d in f.documents]
    for key in ("expected", "actual", "unit"):
        if getattr(f, key) is not None:
            data[key] = getattr(f, key)
    if f.tolerance:
        data["tolerance"] = {k: v for k, v in f.tolerance.items() if v is not None}
    data["message"] = f.message
    when = at or max((d.at for d in f.documents), default=None) or datetime(1970, 1, 1, tzinfo=UTC)
    return envelope.make_event("exception", data, partner=partner,
                               keys={"po_number": po_number, "finding": f.key},
                               subject=po_number, time=when)


def _digest(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def po_sent(session: Session, partner: str, po_data: Mapping[str, Any], sent_at: datetime,
            policy: ChainPolicy | None = None, *,
            routes: Sequence[Route] | None = None) -> list[CloudEvent]:
    """Our outbound PO opens (or joins) its chain and sets its deadlines: the 997/999 and
    the 855 within the policy's hours of sent_at. Sent again with other content (corrected
    after a rejection, say), the deadlines start again from this sending."""
    policy = policy or DEFAULT
    rd = r.purchase_order(po_data, doc_key=f"sent:{_digest(po_data)}", at=sent_at)
    now = db.utcnow()
    chain_id = po_chains.chain(session, partner, rd.po_number, state=variances.WAITING, now=now)
    again = any(d.type == r.PURCHASE_ORDER and d.facts.get("direction") == "outbound"
                and d.doc_key != rd.doc_key for d in po_chains.documents(session, chain_id))
    out = join(session, partner, rd.po_number, [rd], policy, routes=routes, now=now,
               direction="outbound")
    due = [(kind, sent_at + timedelta(hours=hours), hours) for kind, hours in
           ((ACK, policy.ack_within_hours), (PO_ACK, policy.po_ack_within_hours)) if hours]
    po_chains.add_deadlines(session, chain_id, due)
    if again:
        po_chains.renew(session, chain_id, due)
    # An answer already in (a partner quicker than our record of the sending) meets its
    # deadline; when we sent before, only one that came after this sending is its answer.
    since = to_millis(sent_at) if again else None
    have = {d.type: d.at for d in po_chains.documents(session, chain_id)
            if since is None or d.at >= since}
    if r.FUNCTIONAL_ACK in have:
        po_chains.meet(session, chain_id, ACK, have[r.FUNCTIONAL_ACK])
    if r.PO_ACK in have:
        po_chains.meet(session, chain_id, PO_ACK, have[r.PO_ACK])
    return out


def po_acknowledged(session: Session, partner: str, po_number: str, accepted: bool,
                    reason: str | None, at: datetime, *,
                    routes: Sequence[Route] | None = None) -> list[CloudEvent]:
    """A 997/999 answered our PO: the ack deadline is met; a rejection is an exception
    (and the 855 deadline is cancelled)."""
    now, at = db.utcnow(), to_millis(at)
    chain_id = po_chains.chain(session, partner, po_number, state=variances.WAITING, now=now)
    po_chains.meet(session, chain_id, ACK, at)
    key = f"{'accepted' if accepted else 'rejected'}:{envelope.format_time(at)}"
    new = po_chains.add_document(
        session, chain_id, type=r.FUNCTIONAL_ACK, doc_key=key, number=None, x12control=None,
        message_id=None, at=at, facts={"accepted": accepted, "reason": reason}, lines=[],
        now=now)
    if not new or accepted:
        return []
    # The partner's translator refused the 850 itself: no 855 will answer it, and the
    # rejection is the exception to act on, not a missing 855 two days later.
    po_chains.cancel(session, chain_id, PO_ACK, at)
    docs = variances.ordered_docs(readings_of(po_chains.documents(session, chain_id)))
    pos = [d for d in docs if d.type == r.PURCHASE_ORDER][-1:]
    ack = next(d for d in docs if d.doc_key == key)
    found = variances.rejections(po_number, pos[0] if pos else None, [ack])
    return emit(session, chain_id, partner, po_number, found, message_id=None, routes=routes,
                now=now)


def receipt(session: Session, partners: Partners | None, partner: str,
            data: Mapping[str, Any], *, routes: Sequence[Route] | None,
            now: datetime | None = None) -> tuple[str, list[CloudEvent]]:
    """A goods receipt joins its PO's chain (SchemaError if it is not goods_receipt.v1
    data); its key and the new exception events (kept with no message)."""
    schemas.check(r.GOODS_RECEIPT, data)
    now = now or db.utcnow()
    # Posted now: its place among the chain's documents (receipt_date is kept as a fact).
    rd = r.goods_receipt(data, at=now)
    return rd.doc_key, join(session, partner, rd.po_number, [rd], policy_of(partners, partner),
                            routes=routes, now=now)
