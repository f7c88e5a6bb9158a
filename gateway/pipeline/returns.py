"""997/999s coming back: the partner's verdict on the documents we sent, kept on each.

A functional acknowledgment names what it answers by our GS06 (AK1) and ST02 (AK2); the
set's verdict is AK5/IK5 (A or E accepted; R, M, W, X rejected), the group's AK9 for sets
it does not list. Rejections keep their reasons (AK3/AK4, IK3/IK4 and the set's codes)
as text. Only 997/999 sets our validator accepted are read: a malformed acknowledgment
says nothing we can trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from canonical.errors import X12ReadError
from gateway.chains import correlate
from gateway.partners import Partner
from gateway.settings import Route
from gateway.store import db, outbound_documents, receive
from gateway.store.models import Message
from mappings.x12.reader import Segment, X12Reader
from mappings.x12.results import InterchangeResult

ACCEPTED = ("A", "E")
# What the codes mean (X12 elements 717/718 for the set, 720/620 for a segment, 723/621
# for an element), so that a rejection reads as a sentence, not a number.
SET_CODES = {"1": "set not supported", "2": "trailer missing", "3": "control numbers of "
             "ST and SE differ", "4": "wrong segment count", "5": "segment errors",
             "6": "missing or invalid set id", "7": "missing or invalid control number",
             "23": "duplicate control number", "I5": "implementation one or more segments "
             "in error", "I6": "implementation convention not supported"}
SEGMENT_CODES = {"1": "unrecognized segment", "2": "unexpected segment",
                 "3": "mandatory segment missing", "4": "loop occurs too often",
                 "5": "segment occurs too often", "6": "segment not in this set",
                 "7": "segment out of sequence", "8": "segment has element errors"}
ELEMENT_CODES = {"1": "mandatory element missing", "2": "conditional element missing",
                 "3": "too many elements", "4": "too short", "5": "too long",
                 "6": "invalid character", "7": "invalid code value", "8": "invalid date",
                 "9": "invalid time", "10": "exclusion condition violated"}


@dataclass(frozen=True)
class ReturnedAck:
    """One of our documents as the partner's 997/999 judged it."""

    partner: str
    po_number: str
    status: str  # accepted or rejected
    reason: str | None
    document_id: int
    acknowledged_at: datetime
    kind: str = "997"  # or 999
    message_id: int | None = None  # the inbound message that carried the acknowledgment


@dataclass
class _SetAnswer:
    set_id: str
    control: str
    code: str = ""
    reasons: list[str] = field(default_factory=list)


@dataclass
class _GroupAnswer:
    kind: str
    functional_id: str
    control: str
    code: str = ""
    codes: list[str] = field(default_factory=list)
    sets: list[_SetAnswer] = field(default_factory=list)


def _words(code: str, table: dict[str, str]) -> str:
    return f"{code} ({table[code]})" if code in table else code


def _read(data: bytes, isa13: str, wanted: set[tuple[str, str]]) -> list[_GroupAnswer]:
    """The AK1..AK9 answers of interchange isa13's 997/999 sets whose (GS06, ST02) is in
    wanted."""
    out: list[_GroupAnswer] = []
    inside = False
    gs06 = ""
    kind: str | None = None
    group: _GroupAnswer | None = None
    answer: _SetAnswer | None = None
    with X12Reader(data) as reader:
        for seg in reader:
            sid = seg.id
            if sid == "ISA":
                inside = seg.get(13).strip() == isa13.strip()
                continue
            if not inside:
                continue
            if sid == "GS":
                gs06 = seg.get(6)
            elif sid == "ST":
                kind = (seg.get(1) if seg.get(1) in ("997", "999")
                        and (gs06, seg.get(2)) in wanted else None)
            elif kind is None:
                continue
            elif sid == "AK1":
                group = _GroupAnswer(kind, seg.get(1), seg.get(2))
                out.append(group)
            elif sid == "AK2" and group is not None:
                answer = _SetAnswer(seg.get(1), seg.get(2))
                group.sets.append(answer)
            elif sid in ("AK3", "IK3") and answer is not None:
                answer.reasons.append(_segment_reason(seg))
            elif sid in ("AK4", "IK4") and answer is not None:
                answer.reasons.append(_element_reason(seg))
            elif sid in ("AK5", "IK5") and answer is not None:
                answer.code = seg.get(1)
                codes = [c for c in seg.fields[2:7] if c]
                if codes:
                    answer.reasons.append(f"{sid}: " + ", ".join(_words(c, SET_CODES)
                                                                 for c in codes))
                answer = None
            elif sid == "AK9" and group is not None:
                group.code = seg.get(1)
                group.codes = [c for c in seg.fields[5:10] if c]
                group = None
            elif sid == "SE":
                kind, group, answer = None, None, None
    return out


def _segment_reason(seg: Segment) -> str:
    loop = f" in loop {seg.get(3)}" if seg.get(3) else ""
    return (f"{seg.id}: segment {seg.get(1)} at position {seg.get(2)}{loop}: "
            f"{_words(seg.get(4), SEGMENT_CODES)}")


def _element_reason(seg: Segment) -> str:
    where = seg.get(1)
    ref = f" ({seg.get(2)})" if seg.get(2) else ""
    value = f", value {seg.get(4)!r}" if seg.get(4) else ""
    return f"{seg.id}: element {where}{ref}: {_words(seg.get(3), ELEMENT_CODES)}{value}"


def _digits(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def settle_returned_acks(session: Session, msg: Message, partner: Partner,
                         interchange: InterchangeResult, *,
                         routes: Sequence[Route] | None = None) -> list[ReturnedAck]:
    """Mark the documents a partner's 997/999s in this interchange acknowledge, and tell
    each PO's chain (its ack deadline met; a rejection is an exception event, routed by
    routes); what each became. Nothing when the interchange carries no acknowledgment of
    ours."""
    wanted = {(g.control_number, s.control_number) for g in interchange.groups
              if g.is_acknowledgment for s in g.sets if s.accepted}
    if not wanted:
        return []
    try:
        answers = _read(receive.payload(session, msg.payload_sha256),
                        interchange.control_number, wanted)
    except X12ReadError:
        return []  # the validator read it; this cannot fail where it did not
    # When the partner's answer came in, not when a worker got to it: the chain orders its
    # documents by it and the deadline is met by it, and a replay keeps the same time.
    at = msg.received_at or db.utcnow()
    out: list[ReturnedAck] = []
    for group in answers:
        gs06 = _digits(group.control)
        if gs06 is None:
            continue
        by_set = {n: a for a in group.sets if (n := _digits(a.control)) is not None}
        for doc in outbound_documents.by_group(session, partner.id, gs06):
            answer = by_set.get(doc.st02)
            if answer is not None and answer.set_id not in ("", doc.document_type):
                continue  # another set of that group number: not ours
            if answer is not None and answer.code:
                accepted = answer.code in ACCEPTED
                why = answer.reasons
                verdict = f"{'IK5' if group.kind == '999' else 'AK5'} {answer.code}"
            else:
                accepted = group.code in ACCEPTED or group.code == "P"
                why = ([f"AK9: {', '.join(group.codes)}"] if group.codes else [])
                verdict = f"AK9 {group.code or '?'}"
            reason = None if accepted else f"{group.kind} {verdict}: " + (
                "; ".join(why) if why else "rejected")
            outbound_documents.acknowledge(session, doc.id, accepted=accepted, reason=reason,
                                           message_id=msg.id, at=at)
            correlate.po_acknowledged(session, partner.id, doc.po_number, accepted, reason,
                                      at, routes=routes)
            out.append(ReturnedAck(partner.id, doc.po_number,
                                   "accepted" if accepted else "rejected", reason, doc.id, at,
                                   group.kind, msg.id))
    return out
