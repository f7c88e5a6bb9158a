"""Chains as the CLI and the API show them, and goods receipts as both take them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from canonical import schemas
from canonical.errors import InputError, PermanentError
from gateway.chains import correlate, readings, variances
from gateway.partners import Partners
from gateway.settings import Route
from gateway.store import po_chains


class NoSuchChain(PermanentError):
    """No chain has this PO number."""


class WhichPartner(InputError):
    """The PO number is in chains of several partners: name the partner."""


def _num(value: Any) -> str | None:
    return None if value is None else variances._fmt(value)


def chain(session: Session, po_number: str, partner: str | None = None) -> dict[str, Any]:
    """A chain whole: its documents in order, each line's quantities, its exceptions and
    deadlines (NoSuchChain, WhichPartner)."""
    found = po_chains.of_po(session, po_number, partner)
    if not found:
        raise NoSuchChain(f"no chain for PO {po_number!r}"
                          + (f" of partner {partner!r}" if partner else ""))
    if len(found) > 1:
        raise WhichPartner(f"PO {po_number!r} is in the chains of "
                           f"{', '.join(c.partner for c in found)}: name the partner")
    c = found[0]
    stored = po_chains.documents(session, c.id)
    docs = variances.ordered_docs(correlate.readings_of(stored))
    where = {d.doc_key: d for d in stored}
    return {
        "partner": c.partner, "po_number": c.po_number, "state": c.state,
        "direction": c.direction, "opened_at": c.opened_at.isoformat(),
        "documents": [{"type": d.type, "id": d.doc_key, "number": d.number,
                       "x12control": d.x12control, "at": d.at.isoformat(),
                       "message_id": where[d.doc_key].message_id, "lines": len(d.lines),
                       **({"accepted": d.facts["accepted"]} if "accepted" in d.facts else {})}
                      for d in docs],
        "lines": [{"line_number": v.line_number, "item_ids": v.item_ids, "unit": v.unit,
                   "unit_price": _num(v.price), "ordered": _num(v.ordered),
                   "acknowledged": _num(v.acknowledged), "shipped": _num(v.shipped),
                   "invoiced": _num(v.invoiced), "received": _num(v.received)}
                  for v in variances.lines(docs)],
        "exceptions": [{"event_id": event_id, "kind": kind,
                        "severity": env["data"].get("severity"),
                        "line_number": env["data"].get("line_number"),
                        "expected": env["data"].get("expected"),
                        "actual": env["data"].get("actual"), "message": env["data"]["message"]}
                       for _, kind, event_id, env in po_chains.findings(session, c.id)],
        "deadlines": [{"kind": k, "state": st, "due_at": due.isoformat(),
                       "closed_at": closed.isoformat() if closed else None}
                      for k, st, due, closed in po_chains.deadlines(session, c.id)],
    }


def listing(session: Session, *, open_only: bool, partner: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Chains, newest first, a summary each."""
    return [{"partner": c.partner, "po_number": c.po_number, "state": c.state,
             "direction": c.direction, "updated_at": c.updated_at.isoformat()}
            for c in po_chains.listing(session, open_only=open_only, partner=partner,
                                       limit=limit)]


def post_receipt(session: Session, partners: Partners, routes: Sequence[Route],
                 data: Mapping[str, Any], partner: str | None = None) -> dict[str, Any]:
    """A goods receipt joined to its PO's chain (the partner found by the PO number when
    not given); its key and the exceptions it raised, routed in this transaction."""
    if not isinstance(data, Mapping) or not isinstance(data.get("po_number"), str):
        raise InputError("a goods receipt is a JSON object with a po_number "
                         "(canonical goods_receipt.v1)")
    schemas.check(readings.GOODS_RECEIPT, data)
    if "\\u0000" in json.dumps(data):  # no database text holds NUL
        raise InputError("a goods receipt cannot contain NUL characters")
    if partner is None:
        found = po_chains.of_po(session, data["po_number"])
        if not found:
            raise NoSuchChain(f"no chain for PO {data['po_number']!r}: name the partner "
                              "(the receipt then waits for its PO)")
        if len(found) > 1:
            raise WhichPartner(f"PO {data['po_number']!r} is in the chains of "
                               f"{', '.join(c.partner for c in found)}: name the partner")
        partner = found[0].partner
    else:
        partners.get(partner)  # ConfigError naming the known ones
    key, made = correlate.receipt(session, partners, partner, data, routes=routes)
    return {"partner": partner, "po_number": data["po_number"], "receipt": key,
            "exceptions": [{"event_id": e.id, "kind": e.data["kind"],
                            "message": e.data["message"]} for e in made]}
