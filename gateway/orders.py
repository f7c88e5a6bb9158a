"""Purchase orders to partners: the ERP's canonical order checked, written as X12 with
control numbers from the partner's sequences, validated by our own validator, and kept
with its send item, all in one transaction (docs/orders.md).

Sending the same order (partner, PO number, same content) again gives the same document
and no new control numbers. Other content under a PO number already sent is a revision:
it goes out when it says so (purpose change, replace or cancel: BEG01 04, 05, 01) and is
refused as an original, since a partner receiving two originals for one PO number would
book the order twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from canonical import schemas
from canonical.errors import InputError, MappingError, OutboundDataError, PermanentError
from gateway.partners import Partner, Partners
from gateway.store import audit_log, db, outbound_documents
from gateway.store.models import OutboundDocument
from gateway.store.sequences import SessionControlNumbers
from mappings import loading
from mappings.language import emitter
from mappings.x12 import compose, validator
from mappings.x12.results import Finding

DOCUMENT = "850"
# Shown before "and N more": enough to fix a document in one go.
MAX_PROBLEMS = 10


class OrderRefused(InputError):
    """The purchase order cannot be sent; nothing was queued."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class OrderConflict(OrderRefused):
    """The PO number was sent already with other content, and this is not a revision."""


@dataclass(frozen=True)
class Submitted:
    """The document an order became, and whether this call made it."""

    document: OutboundDocument
    created: bool

    def to_dict(self) -> dict[str, Any]:
        d = self.document
        return {"document_id": d.id, "partner": d.partner, "document_type": d.document_type,
                "po_number": d.po_number, "status": d.status, "created": self.created,
                "control_numbers": {"isa13": f"{d.isa13:09d}", "gs06": str(d.gs06),
                                    "st02": f"{d.st02:04d}"},
                "filename": d.filename}


_COMPILED: dict[Path, tuple[tuple[tuple[str, int, int], ...], emitter.OutboundMapping]] = {}


def mapping_of(partner: Partner, document: str = DOCUMENT) -> emitter.OutboundMapping:
    """The partner's outbound mapping for a set, compiled once while its files are unchanged."""
    if partner.outbound is None or document not in partner.outbound.mappings:
        raise OrderRefused(f"partner {partner.id!r} has no outbound mapping for {document} "
                           f"(outbound.mappings in {partner.file})")
    path = partner.outbound.mappings[document]
    hit = _COMPILED.get(path)
    if hit is not None and hit[0] and hit[0] == loading.stamp(hit[1].files):
        return hit[1]
    mapping = emitter.load(path)
    _COMPILED[path] = (loading.stamp(mapping.files), mapping)
    return mapping


def content_digest(data: dict[str, Any]) -> str:
    """The same for the same order however its JSON was spaced or its keys ordered."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check(data: Any) -> dict[str, Any]:
    """The data when it is a purchase_order.v1; OrderRefused listing each violation."""
    if not isinstance(data, dict):
        raise OrderRefused("a purchase order is a JSON object (purchase_order.v1 data)")
    found = schemas.validate("purchase_order", data)
    if found:
        shown = [str(v) for v in found[:MAX_PROBLEMS]]
        more = f" (and {len(found) - MAX_PROBLEMS} more)" if len(found) > MAX_PROBLEMS else ""
        raise OrderRefused("not a purchase_order.v1: " + "; ".join(shown) + more,
                           [str(v) for v in found])
    return data


def _where(f: Finding) -> str:
    if f.segment_id and f.element_position:
        return f"segment {f.segment_id}, element {f.segment_id}{f.element_position:02d}"
    if f.segment_id:
        return f"segment {f.segment_id}"
    return f.level


def problems_of(text: str) -> list[str]:
    """What our validator finds wrong with an interchange we wrote (empty when accepted)."""
    result = validator.validate(text.encode("ascii", "replace"), path="<outbound>")
    if result.accepted:
        return []
    found = [*result.findings, *(f for ic in result.interchanges for f in ic.errors),
             *(f for ic in result.interchanges for g in ic.groups for f in g.errors),
             *(f for s in result.sets() for f in s.errors)]
    return [f"{_where(f)}: {f.message}" for f in found if f.severity == "error"] or [
        "rejected by validation"]


def filename(partner: str, po_number: str, isa13: int, document: str = DOCUMENT) -> str:
    """Fixed by the control number: a send done twice writes the same file."""
    po = re.sub(r"[^A-Za-z0-9.-]", "_", po_number)[:40] or "_"
    return f"{document}_{partner}_{po}_{isa13:09d}.x12"


def submit(engine: Engine, partners: Partners, partner_id: str, data: Any, *,
           actor: str = "cli", now: datetime | None = None) -> Submitted:
    """Check, write, validate and queue an order for a partner; OrderRefused (nothing queued)
    when it cannot go. A new document is audited with the actor who sent it."""
    partner = partners.get(partner_id)
    order = check(data)
    mapping = mapping_of(partner)
    digest = content_digest(order)
    for _ in range(3):  # a second caller with the same order may commit first: then it is found
        with db.transaction(engine) as s:
            made = _submit(s, partner, mapping, order, digest, now or db.utcnow())
            if made is not None and made.created:
                audit_log.record(s, actor=actor, action="orders.send",
                                 target=f"outbound_document:{made.document.id}",
                                 details={"partner": partner.id, "po_number": order["po_number"],
                                          **made.to_dict()["control_numbers"]})
        if made is not None:
            return made
    raise PermanentError(f"order {order['po_number']} for {partner_id}: kept colliding with "
                         "another submission of it")


def _submit(s: Any, partner: Partner, mapping: emitter.OutboundMapping,
            order: dict[str, Any], digest: str, now: datetime) -> Submitted | None:
    po = order["po_number"]
    found = outbound_documents.same(s, partner.id, DOCUMENT, po, digest)
    if found is not None:
        return Submitted(found, created=False)
    earlier = outbound_documents.of_order(s, partner.id, po)
    purpose = order.get("purpose") or "original"
    if earlier and purpose in ("original", "other"):
        raise OrderConflict(
            f"PO {po} was sent to {partner.id} already with other content (document "
            f"{earlier[-1].id}, ISA13 {earlier[-1].isa13:09d}); send the new content as a "
            "revision (purpose: change, replace or cancel)")
    assert partner.outbound is not None
    out = partner.outbound
    numbers = SessionControlNumbers(s, scope=f"partner:{partner.id}")
    taken = compose.ControlNumbers(numbers.next_interchange(), numbers.next_group(),
                                   numbers.next_set())
    parties = compose.Parties(out.sender[0], out.sender[1], out.receiver[0], out.receiver[1],
                              out.gs_sender, out.gs_receiver, out.usage)
    try:
        text = compose.compose(mapping, order, parties, taken, now)
    except (OutboundDataError, MappingError) as exc:
        raise OrderRefused(f"PO {po} cannot be written as an X12 {DOCUMENT}: {exc}") from exc
    problems = problems_of(text)
    if problems:
        raise OrderRefused(f"PO {po}: our validator rejects the {DOCUMENT}: "
                           + "; ".join(problems[:MAX_PROBLEMS]), problems)
    doc = outbound_documents.add(
        s, partner=partner.id, document_type=DOCUMENT, po_number=po, purpose=purpose,
        content_sha256=digest, data=order,
        numbers=outbound_documents.Numbers(taken.interchange, taken.group, taken.set),
        text=text.encode("ascii"), filename=filename(partner.id, po, taken.interchange))
    if doc is None:
        s.rollback()  # gives the numbers back: nothing carrying them has left
        return None
    return Submitted(doc, created=True)
