"""What each document says about a purchase order, read from its canonical data.

A reading is the part of a document a chain keeps: its PO number, its own number and
time, order-level facts (dates, status) and, per line, the quantity, unit, unit price and
dates that document states. Pure: no store, no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

# The types of document a chain holds.
PURCHASE_ORDER = "purchase_order"
FUNCTIONAL_ACK = "functional_ack"  # the 997/999 answering our 850
PO_ACK = "po_acknowledgment"
SHIP_NOTICE = "ship_notice"
INVOICE = "invoice"
GOODS_RECEIPT = "goods_receipt"
TYPES = (PURCHASE_ORDER, FUNCTIONAL_ACK, PO_ACK, SHIP_NOTICE, INVOICE, GOODS_RECEIPT)
# The canonical event types that join chains.
OBSERVED = (PURCHASE_ORDER, PO_ACK, SHIP_NOTICE, INVOICE, GOODS_RECEIPT)
# 855 statuses under which a quantity is not going to be shipped.
_NOT_COMING = frozenset({"rejected", "deleted"})
# Date kinds the checks compare, as a line keeps them.
REQUESTED = {"ship": "requested_ship", "delivery": "requested_delivery"}


@dataclass(frozen=True)
class LineReading:
    """What one document says of one line."""

    line_number: str | None
    item_ids: list[dict[str, str]] = field(default_factory=list)
    quantity: str | None = None
    unit: str | None = None
    unit_price: str | None = None
    dates: dict[str, str] = field(default_factory=dict)  # kind -> YYYY-MM-DD


@dataclass(frozen=True)
class Reading:
    """One document as a chain keeps it."""

    type: str
    po_number: str
    doc_key: str
    at: datetime
    number: str | None = None
    x12control: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    lines: list[LineReading] = field(default_factory=list)


def decimal(value: str | None) -> Decimal | None:
    """A decimal string as a Decimal (None stays None)."""
    return None if value is None else Decimal(value)


def _dates(items: Any) -> dict[str, str]:
    return {d["kind"]: d["date"] for d in items or () if isinstance(d, Mapping)
            and d.get("kind") and d.get("date")}


def _qty(q: Any) -> tuple[str | None, str | None]:
    return (q.get("value"), q.get("unit")) if isinstance(q, Mapping) else (None, None)


def _price(p: Any) -> str | None:
    return p.get("value") if isinstance(p, Mapping) else None


def _ids(line: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"kind": i.get("kind", "other"), "id": i["id"]} for i in line.get("item_ids") or ()
            if isinstance(i, Mapping) and i.get("id")]


def purchase_order(data: Mapping[str, Any], *, doc_key: str, at: datetime,
                   x12control: str | None = None) -> Reading:
    """A PO's reading: ordered quantities and prices; requested dates per line (the
    order's own where the line has none)."""
    head = _dates(data.get("dates"))
    lines = []
    for ln in data.get("lines") or ():
        value, unit = _qty(ln.get("quantity"))
        dates = {k: v for k, v in head.items() if k in REQUESTED.values()}
        dates.update({k: v for k, v in _dates(ln.get("dates")).items() if k in REQUESTED.values()})
        lines.append(LineReading(ln.get("line_number"), _ids(ln), value, unit,
                                 _price(ln.get("unit_price")), dates))
    return Reading(PURCHASE_ORDER, data["po_number"], doc_key, at, data["po_number"],
                   x12control, {"purpose": data.get("purpose")}, lines)


def po_acknowledgment(data: Mapping[str, Any], *, doc_key: str, at: datetime,
                      x12control: str | None = None) -> Reading:
    """An 855's reading: per line, the quantity the seller will ship (every ACK but the
    rejected and deleted ones), its price, and its promised dates."""
    head = _dates(data.get("dates"))
    lines = []
    for ln in data.get("lines") or ():
        ordered, unit = _qty(ln.get("quantity"))
        price = _price(ln.get("unit_price"))
        dates = {k: v for k, v in head.items() if k.startswith("promised_")}
        acks = ln.get("acknowledgments") or []
        if acks:
            total, counted = Decimal(0), False
            for a in acks:
                value, a_unit = _qty(a.get("quantity"))
                unit = unit or a_unit
                if a.get("status") in _NOT_COMING:
                    counted = counted or value is not None
                    continue
                if value is not None:
                    total += Decimal(value)
                    counted = True
                    unit = a_unit or unit
                elif ordered is not None:
                    total += Decimal(ordered)
                    counted = True
                price = _price(a.get("unit_price")) or price
                date = a.get("date") or {}
                if date.get("kind", "").startswith("promised_") and date.get("date"):
                    # A backorder's later date is not the line's promise: the first one is.
                    dates.setdefault(date["kind"], date["date"])
            quantity = format(total, "f") if counted else ordered
        else:
            quantity = "0" if ln.get("status") in _NOT_COMING else ordered
        lines.append(LineReading(ln.get("line_number"), _ids(ln), quantity, unit, price, dates))
    return Reading(PO_ACK, data["po_number"], doc_key, at, data.get("ack_number"), x12control,
                   {"status": data.get("status")}, lines)


def _items(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from node.get("items") or ()
    for pack in node.get("packs") or ():
        yield from _items(pack)


def ship_notice(data: Mapping[str, Any], *, doc_key: str, at: datetime,
                x12control: str | None = None) -> list[Reading]:
    """An 856's readings, one per order level (PRF01): shipped quantities, and the ship
    and estimated delivery dates."""
    dates = {}
    if data.get("ship_date"):
        dates["ship"] = data["ship_date"]
    if data.get("estimated_delivery_date"):
        dates["delivery"] = data["estimated_delivery_date"]
    out = []
    for order in data.get("orders") or ():
        if not order.get("po_number"):
            continue
        lines = []
        for item in _items(order):
            value, unit = _qty(item.get("quantity"))
            lines.append(LineReading(item.get("line_number"), _ids(item), value, unit, None,
                                     dict(dates)))
        out.append(Reading(SHIP_NOTICE, order["po_number"], doc_key, at, data["shipment_id"],
                           x12control, {"dates": dates}, lines))
    return out


def invoice(data: Mapping[str, Any], *, doc_key: str, at: datetime,
            x12control: str | None = None) -> Reading | None:
    """An 810's reading (None for an invoice that names no PO): invoiced quantities and prices."""
    if not data.get("po_number"):
        return None
    lines = []
    for ln in data.get("lines") or ():
        value, unit = _qty(ln.get("quantity"))
        lines.append(LineReading(ln.get("line_number"), _ids(ln), value, unit,
                                 _price(ln.get("unit_price"))))
    return Reading(INVOICE, data["po_number"], doc_key, at, data["invoice_number"], x12control,
                   {"invoice_type": data.get("invoice_type")}, lines)


def receipt_key(data: Mapping[str, Any]) -> str:
    """The receipt's key: its number, or a digest of its content (one receipt posted
    twice is one document)."""
    if data.get("receipt_number"):
        return f"receipt:{data['receipt_number']}"
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return "receipt:sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:40]


def goods_receipt(data: Mapping[str, Any], *, at: datetime) -> Reading:
    """A goods receipt's reading: received quantities."""
    lines = []
    for ln in data.get("lines") or ():
        value, unit = _qty(ln.get("quantity"))
        lines.append(LineReading(ln.get("line_number"), _ids(ln), value, unit))
    return Reading(GOODS_RECEIPT, data["po_number"], receipt_key(data), at,
                   data.get("receipt_number"), None,
                   {"receipt_date": data.get("receipt_date"),
                    "shipment_id": data.get("shipment_id")}, lines)


def of_event(event_type: str, data: Mapping[str, Any], *, event_id: str, at: datetime,
             x12control: str | None = None) -> list[Reading]:
    """The readings of one canonical event (none for a type chains do not follow)."""
    kw = {"doc_key": event_id, "at": at, "x12control": x12control}
    if event_type == PURCHASE_ORDER:
        return [purchase_order(data, **kw)]
    if event_type == PO_ACK:
        return [po_acknowledgment(data, **kw)]
    if event_type == SHIP_NOTICE:
        return ship_notice(data, **kw)
    if event_type == INVOICE:
        found = invoice(data, **kw)
        return [found] if found else []
    if event_type == GOODS_RECEIPT:
        return [goods_receipt(data, at=at)]
    return []
