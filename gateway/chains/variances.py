"""The checks of a chain: its documents against the PO and each other, within the
partner's tolerances. Pure: the same documents give the same findings, whatever order
they arrived in (a check that needs a document the partner is expected to send waits
for it), and each finding carries a key that names it for good.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from gateway.chains import readings as r
from gateway.chains.agreement import ChainPolicy, Tolerance

# Kinds that put money or goods at stake; the rest are warnings.
ERRORS = frozenset({"ack_rejected", "invoiced_over_shipped", "invoiced_price",
                    "three_way_quantity"})
WAITING, OPEN, MATCHED = "waiting", "open", "matched"


@dataclass(frozen=True)
class Finding:
    """One exception found on a chain; key names it, so it is emitted once."""

    key: str
    kind: str
    message: str
    line_number: str | None = None
    item_ids: list[dict[str, str]] = field(default_factory=list)
    documents: list[r.Reading] = field(default_factory=list)
    expected: str | None = None
    actual: str | None = None
    unit: str | None = None
    tolerance: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return "error" if self.kind in ERRORS else "warning"


@dataclass
class LineView:
    """One PO line across the chain: each stage's quantity (None: no such document yet)."""

    line_number: str
    item_ids: list[dict[str, str]]
    unit: str | None
    ordered: Decimal | None
    price: Decimal | None
    acknowledged: Decimal | None = None
    shipped: Decimal | None = None
    invoiced: Decimal | None = None
    received: Decimal | None = None
    requested: dict[str, str] = field(default_factory=dict)


def ordered_docs(docs: Iterable[r.Reading]) -> list[r.Reading]:
    """The documents in the chain's order: by their own time, then key (not arrival)."""
    return sorted(docs, key=lambda d: (d.at, r.TYPES.index(d.type), d.doc_key))


def _dec(value: str | None) -> Decimal | None:
    return r.decimal(value)


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f") if value == value.to_integral() \
        else format(value, "f")


class Matcher:
    """Finds the PO line a document's line is about: by line number, else by an item id."""

    def __init__(self, po: r.Reading) -> None:
        self.numbers = {ln.line_number: ln.line_number for ln in po.lines if ln.line_number}
        self.by_id: dict[str, str] = {}
        for ln in po.lines:
            for i in ln.item_ids:
                if ln.line_number:
                    self.by_id.setdefault(i["id"], ln.line_number)

    def line_of(self, line: r.LineReading) -> str | None:
        if line.line_number in self.numbers:
            return line.line_number
        for i in line.item_ids:
            if i["id"] in self.by_id:
                return self.by_id[i["id"]]
        return None


def _sum_by_line(docs: Sequence[r.Reading], match: Matcher) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for d in docs:
        for ln in d.lines:
            target = match.line_of(ln)
            if target is not None and ln.quantity is not None:
                out[target] += Decimal(ln.quantity)
    return out


def lines(docs: Sequence[r.Reading]) -> list[LineView]:
    """Each PO line with its ordered, acknowledged (latest 855), shipped, invoiced and
    received quantities; [] while the PO is not in."""
    docs = ordered_docs(docs)
    pos = [d for d in docs if d.type == r.PURCHASE_ORDER]
    if not pos:
        return []
    po = pos[-1]
    match = Matcher(po)
    views = {ln.line_number: LineView(ln.line_number, ln.item_ids, ln.unit, _dec(ln.quantity),
                                      _dec(ln.unit_price), requested=dict(ln.dates))
             for ln in po.lines if ln.line_number}
    of = {t: [d for d in docs if d.type == t] for t in r.TYPES}
    acks = of[r.PO_ACK][-1:]  # the latest 855 states the seller's whole answer
    for attr, group in (("acknowledged", acks), ("shipped", of[r.SHIP_NOTICE]),
                        ("invoiced", of[r.INVOICE]), ("received", of[r.GOODS_RECEIPT])):
        if not group:
            continue
        sums = _sum_by_line(group, match)
        for number, view in views.items():
            setattr(view, attr, sums.get(number, Decimal(0)))
    return list(views.values())


def state(docs: Sequence[r.Reading]) -> str:
    """waiting (no PO yet), open, or matched (invoiced and received)."""
    types = {d.type for d in docs}
    if r.PURCHASE_ORDER not in types:
        return WAITING
    return MATCHED if {r.INVOICE, r.GOODS_RECEIPT} <= types else OPEN


def _tol(t: Tolerance, expected: Decimal) -> dict[str, Any]:
    return {"percent": _fmt(t.percent), "absolute": _fmt(t.absolute),
            "allowed": _fmt(t.allowed(expected))}


def evaluate(partner: str, po_number: str, docs: Sequence[r.Reading],
             policy: ChainPolicy) -> list[Finding]:
    """Every finding the chain's documents give under the policy (none before the PO)."""
    docs = ordered_docs(docs)
    views = {v.line_number: v for v in lines(docs)}
    if not views and not any(d.type == r.PURCHASE_ORDER for d in docs):
        return []
    po = [d for d in docs if d.type == r.PURCHASE_ORDER][-1]
    match = Matcher(po)
    of = {t: [d for d in docs if d.type == t] for t in r.TYPES}
    out: list[Finding] = []
    out += rejections(po_number, po, of[r.FUNCTIONAL_ACK])
    out += _unknown_items(po_number, po, match, docs)
    for ack in of[r.PO_ACK]:
        out += _acknowledged(po_number, po, ack, match, views, policy)
    expects = set(policy.expects)
    waits_855 = "855" in expects and not of[r.PO_ACK]
    waits_856 = "856" in expects and not of[r.SHIP_NOTICE]
    if of[r.SHIP_NOTICE]:
        out += _dates(po_number, po, of[r.SHIP_NOTICE], "actual", views, policy, match)
        if not waits_855:
            out += _shipped(po_number, po, of, views, policy)
    if of[r.INVOICE]:
        out += _invoice_prices(po_number, po, of[r.INVOICE], match, views, policy)
        if not waits_855 and not waits_856:
            out += _invoiced(po_number, po, of, views, policy)
        if of[r.GOODS_RECEIPT]:
            out += _three_way(po_number, po, of, views, policy)
    return out


def rejections(po_number: str, po: r.Reading | None,
               acks: Sequence[r.Reading]) -> list[Finding]:
    """Our PO rejected by a 997/999 (the one check that needs no tolerance)."""
    return [Finding(f"ack_rejected:{a.doc_key}", "ack_rejected",
                    f"PO {po_number} was rejected by the partner's functional acknowledgment"
                    + (f": {a.facts['reason']}" if a.facts.get("reason") else ""),
                    documents=[*([po] if po else []), a], expected="accepted",
                    actual="rejected")
            for a in acks if a.facts.get("accepted") is False]


def _unknown_items(po_number: str, po: r.Reading, match: Matcher,
                   docs: Sequence[r.Reading]) -> list[Finding]:
    out = []
    for d in docs:
        if d.type in (r.PURCHASE_ORDER, r.FUNCTIONAL_ACK):
            continue
        for n, ln in enumerate(d.lines):
            if match.line_of(ln) is not None:
                continue
            what = ln.line_number or ", ".join(i["id"] for i in ln.item_ids) or f"#{n + 1}"
            ids = ", ".join(f"{i['kind']} {i['id']}" for i in ln.item_ids)
            out.append(Finding(
                f"item_not_on_po:{d.doc_key}:{ln.line_number or ''}:{n}", "item_not_on_po",
                f"{d.type} {d.number or d.doc_key} line {what} ({ids or 'no item id'}) is not on "
                f"PO {po_number}", line_number=ln.line_number, item_ids=ln.item_ids,
                documents=[po, d], actual=ln.quantity, unit=ln.unit))
    return out


def _quantity(kind: str, key: str, what: str, po_number: str, view: LineView,
              expected: Decimal, actual: Decimal, tol: Tolerance,
              documents: list[r.Reading]) -> Finding | None:
    if tol.within(expected, actual):
        return None
    stage, _, against = what.partition(" against ")
    unit = f" {view.unit}" if view.unit else ""
    return Finding(key, kind, f"PO {po_number} line {view.line_number}: {stage} {_fmt(actual)}"
                   f"{unit} against {_fmt(expected)} {against or 'ordered'} "
                   f"(allowed ±{_fmt(tol.allowed(expected))})",
                   line_number=view.line_number, item_ids=view.item_ids, documents=documents,
                   expected=_fmt(expected), actual=_fmt(actual), unit=view.unit,
                   tolerance=_tol(tol, expected))


def _acknowledged(po_number: str, po: r.Reading, ack: r.Reading, match: Matcher,
                  views: dict[str, LineView], policy: ChainPolicy) -> list[Finding]:
    out: list[Finding] = []
    sums = _sum_by_line([ack], match)
    for number, view in views.items():
        if view.ordered is None:
            continue
        found = _quantity("acknowledged_quantity", f"acknowledged_quantity:{number}:{ack.doc_key}",
                          "acknowledged against ordered", po_number, view, view.ordered,
                          sums.get(number, Decimal(0)), policy.quantity, [po, ack])
        if found:
            out.append(found)
    out += _prices("acknowledged_price", po_number, po, ack, match, views, policy)
    out += _dates(po_number, po, [ack], "promised", views, policy, match)
    return out


def _prices(kind: str, po_number: str, po: r.Reading, doc: r.Reading, match: Matcher,
            views: dict[str, LineView], policy: ChainPolicy) -> list[Finding]:
    out = []
    for ln in doc.lines:
        number = match.line_of(ln)
        view = views.get(number) if number else None
        if view is None or view.price is None or ln.unit_price is None:
            continue
        price = Decimal(ln.unit_price)
        if policy.price.within(view.price, price):
            continue
        out.append(Finding(
            f"{kind}:{number}:{doc.doc_key}", kind,
            f"PO {po_number} line {number}: unit price {_fmt(price)} on {doc.type} "
            f"{doc.number or doc.doc_key} against {_fmt(view.price)} on the PO "
            f"(allowed ±{_fmt(policy.price.allowed(view.price))})",
            line_number=number, item_ids=view.item_ids, documents=[po, doc],
            expected=_fmt(view.price), actual=_fmt(price), tolerance=_tol(policy.price, view.price)))
    return out


def _invoice_prices(po_number: str, po: r.Reading, invoices: Sequence[r.Reading],
                    match: Matcher, views: dict[str, LineView],
                    policy: ChainPolicy) -> list[Finding]:
    out: list[Finding] = []
    for inv in invoices:
        out += _prices("invoiced_price", po_number, po, inv, match, views, policy)
    return out


def _dates(po_number: str, po: r.Reading, docs: Sequence[r.Reading], prefix: str,
           views: dict[str, LineView], policy: ChainPolicy, match: Matcher) -> list[Finding]:
    """Promised (855) or actual (856) ship and delivery dates against the requested ones."""
    out = []
    for d in docs:
        seen: set[tuple[str, str]] = set()
        for ln in d.lines:
            number = match.line_of(ln)
            view = views.get(number) if number else None
            if view is None:
                continue
            for what, requested_kind in r.REQUESTED.items():
                got = ln.dates.get(f"promised_{what}" if prefix == "promised" else what)
                wanted = view.requested.get(requested_kind)
                if not got or not wanted or (number, what) in seen:
                    continue
                seen.add((number, what))
                late = (date.fromisoformat(got) - date.fromisoformat(wanted)).days
                if late <= policy.late_days:
                    continue
                kind = f"late_{what}_date"
                out.append(Finding(
                    f"{kind}:{number}:{d.doc_key}", kind,
                    f"PO {po_number} line {number}: {prefix} {what} date {got} on {d.type} "
                    f"{d.number or d.doc_key} is {late} days after the requested {wanted} "
                    f"(allowed {policy.late_days})", line_number=number,
                    item_ids=view.item_ids, documents=[po, d], expected=wanted, actual=got,
                    tolerance={"days": policy.late_days}))
    return out


def _shipped(po_number: str, po: r.Reading, of: dict[str, list[r.Reading]],
             views: dict[str, LineView], policy: ChainPolicy) -> list[Finding]:
    latest = of[r.SHIP_NOTICE][-1]
    ack = of[r.PO_ACK][-1:]
    out = []
    for number, view in views.items():
        expected = view.acknowledged if ack else view.ordered
        if expected is None or view.shipped is None:
            continue
        against = "acknowledged" if ack else "ordered"
        found = _quantity("shipped_quantity", f"shipped_quantity:{number}:{latest.doc_key}",
                          f"shipped against {against}", po_number, view, expected,
                          view.shipped, policy.quantity, [po, *ack, *of[r.SHIP_NOTICE]])
        if found:
            out.append(found)
    return out


def _invoiced(po_number: str, po: r.Reading, of: dict[str, list[r.Reading]],
              views: dict[str, LineView], policy: ChainPolicy) -> list[Finding]:
    latest = of[r.INVOICE][-1]
    asns, ack = of[r.SHIP_NOTICE], of[r.PO_ACK][-1:]
    out = []
    for number, view in views.items():
        if view.invoiced is None:
            continue
        if asns:
            expected, against, kind = view.shipped, "shipped", "invoiced_quantity"
            if view.shipped is not None and view.invoiced > view.shipped:
                kind = "invoiced_over_shipped"
        elif ack:
            expected, against, kind = view.acknowledged, "acknowledged", "invoiced_quantity"
        else:
            expected, against, kind = view.ordered, "ordered", "invoiced_quantity"
        if expected is None:
            continue
        found = _quantity(kind, f"{kind}:{number}:{latest.doc_key}",
                          f"invoiced against {against}", po_number, view, expected,
                          view.invoiced, policy.quantity, [po, *asns, *of[r.INVOICE]])
        if found:
            out.append(found)
    return out


def _three_way(po_number: str, po: r.Reading, of: dict[str, list[r.Reading]],
               views: dict[str, LineView], policy: ChainPolicy) -> list[Finding]:
    inv, rec = of[r.INVOICE][-1], of[r.GOODS_RECEIPT][-1]
    out = []
    for number, view in views.items():
        if view.invoiced is None or view.received is None:
            continue
        found = _quantity("three_way_quantity",
                          f"three_way_quantity:{number}:{inv.doc_key}:{rec.doc_key}",
                          "invoiced against received", po_number, view, view.received,
                          view.invoiced, policy.receipt_quantity,
                          [po, *of[r.INVOICE], *of[r.GOODS_RECEIPT]])
        if found:
            out.append(found)
    return out
