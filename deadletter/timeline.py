"""A message's timeline from plain records: received, validated, mapped, routed, attempts,
parked, replayed, discarded, acked, in time order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

# What a finished work item of each kind means for the message.
_DONE = {"validate": "validated", "map": "mapped", "route": "routed", "deliver": "delivered",
         "ack": "acked"}
_AUDIT = {"dead_letter.replay": "replayed", "dead_letter.discard": "discarded"}
# Ties in time keep the pipeline's order: a message is received before it is validated.
_ORDER = ("received", "validated", "event", "mapped", "outbox", "routed", "attempts",
          "delivered", "acked", "failed", "parked", "replayed", "discarded", "queued",
          "started")
Record = Mapping[str, Any]


@dataclass(frozen=True)
class Entry:
    """One thing that happened to a message."""

    at: datetime
    what: str  # received, validated, mapped, routed, attempts, delivered, parked, ...
    detail: str
    ref: str  # the record it comes from, e.g. work_item:12, dead_letter:3

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def build(message: Record, *, work_items: Iterable[Record] = (),
          events: Iterable[Record] = (), deliveries: Iterable[Record] = (),
          dead_letters: Iterable[Record] = (), audits: Iterable[Record] = (),
          show_actors: bool = True) -> list[Entry]:
    """The timeline of message; show_actors=False leaves out who acted (for partners)."""
    out = [Entry(message["received_at"], "received",
                 f"{message.get('source_name') or '?'} on {message.get('channel') or '?'}",
                 f"message:{message['id']}")]
    deliveries = list(deliveries)
    dead_letters, audits = list(dead_letters), list(audits)
    # A replay queues its work item in the same transaction as its audit row: shown at
    # the replay's time, after it, rather than a few milliseconds before it.
    replayed = {(a.get("details") or {}).get("work_item_id"): a["at"] for a in audits
                if a["action"] == "dead_letter.replay"}
    for item in work_items:
        if _parked_by(item, dead_letters):
            continue  # the "parked" entry says how this stage ended; "validated" would not
        entry = _work_item(item, has_deliveries=bool(deliveries))
        if entry and item["id"] in replayed and item["status"] in ("pending", "claimed"):
            entry = replace(entry, at=max(entry.at, replayed[item["id"]]))
        if entry:
            out.append(entry)
    for ev in events:
        out.append(Entry(ev["created_at"], "event", f"{ev.get('type')} {ev.get('event_id')}",
                         f"event:{ev.get('event_id')}"))
    for d in deliveries:
        out.extend(_delivery(d))
    for dl in dead_letters:
        where = f" at {dl['endpoint']}" if dl.get("endpoint") else ""
        out.append(Entry(dl["last_failed_at"], "parked",
                         f"{dl['stage']}{where} after {dl.get('attempts', 0)} attempt(s): "
                         f"{dl.get('reason', '')}", f"dead_letter:{dl['id']}"))
    for a in audits:
        what = _AUDIT.get(a["action"], a["action"])
        who = f"by {a['actor']}" if show_actors else ""
        why = f"because {a['reason']}" if a.get("reason") and show_actors else ""
        out.append(Entry(a["at"], what, " ".join(p for p in (who, why) if p),
                         str(a.get("target", ""))))
    return sorted(out, key=lambda e: (e.at, _rank(e.what)))


def _rank(what: str) -> int:
    return _ORDER.index(what.split()[-1]) if what.split()[-1] in _ORDER else len(_ORDER)


def _parked_by(item: Record, dead_letters: list[Record]) -> bool:
    """Whether item is the run of a stage that ended by parking its message (a validate
    that rejected the file completes its item: the verdict and the acks are its work)."""
    if item["status"] != "done":
        return False
    return any(dl["stage"] == item["kind"] and item["created_at"] <= dl["last_failed_at"]
               <= item["updated_at"] for dl in dead_letters)


def _work_item(item: Record, *, has_deliveries: bool) -> Entry | None:
    kind, status = item["kind"], item["status"]
    ref = f"work_item:{item['id']}"
    claims = item.get("attempts") or 0
    if status == "done":
        if kind == "deliver" and has_deliveries:
            return None  # the delivery's own record says it, with the destination
        note = f" (after {claims} claims)" if claims > 1 else ""
        return Entry(item["updated_at"], _DONE.get(kind, f"{kind} done"),
                     f"{kind} done{note}", ref)
    if status in ("failed", "dead"):
        why = item.get("last_error") or ("its workers kept dying" if status == "dead" else "")
        return Entry(item["updated_at"], "failed", f"{kind}: {why}".rstrip(": "), ref)
    if item.get("last_error"):
        return Entry(item["updated_at"], "failed",
                     f"{kind} will be tried again: {item['last_error']}", ref)
    if status == "claimed":
        return Entry(item["updated_at"], f"{kind} started", f"a worker is on the {kind} "
                     "stage", ref)
    if status == "pending":
        return Entry(item["created_at"], f"{kind} queued", f"the {kind} stage waits for a "
                     "worker", ref)
    return Entry(item["created_at"], f"{kind} {status}", f"{kind} {status}", ref)


def _delivery(d: Record) -> list[Entry]:
    ref = f"delivery:{d['id']}"
    dest = d.get("destination") or "?"
    out = [Entry(d["created_at"], "outbox", f"event {d.get('event_id')} for {dest}", ref)]
    attempts = d.get("attempts") or 0
    # One attempt that delivered says nothing the "delivered" line does not.
    if (attempts and d.get("status") != "delivered") or attempts > 1:
        last = " ".join(str(p) for p in (d.get("last_status_code"), d.get("last_error")) if p)
        at = d.get("delivered_at") or d["updated_at"]
        out.append(Entry(at, "attempts", f"{attempts} attempt(s) to {dest}"
                         + (f"; last: {last}" if last else ""), ref))
    if d.get("status") == "delivered" and d.get("delivered_at"):
        out.append(Entry(d["delivered_at"], "delivered", f"to {dest}", ref))
    return out
