"""Acknowledgments for an inbound interchange: TA1, and a 997 or 999 per functional group.

Each acknowledgment is its own interchange (ISA..IEA), addressed back to the sender,
so that the pipeline can store, send and retry each one on its own ("one 997 per
group"). A 997 answers groups of versions before 005010, a 999 (005010X231A1) those of
005010 and later. Every 997 is written at 004010 (ISA12 00401, ISA11 U, GS08 004010),
whatever older version it answers (003040, 004030, 004060 ...): the 997 is the same
across them, and 004010 is the version our maps (and most partners) know. A TA1 goes
in an 00401 interchange, or 00501 when it answers one of 00501 and later.

Inbound acknowledgments (GS01 FA, or an interchange that carries only TA1) are never
acknowledged, so two gateways cannot acknowledge each other forever. Functional acks are written only for an interchange
whose envelope was accepted (TA104 A or E): the groups of a rejected one were not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from canonical.errors import OutboundDataError
from mappings.x12 import results, writer
from mappings.x12.charset import is_alnum, is_digits
from mappings.x12.control_numbers import ControlNumbers

AckKind = Literal["997", "999", "TA1"]

ACK_999_VERSION = "005010X231A1"
MAX_CODES = 5  # AK502..AK506 and AK905..AK909
MAX_ELEMENT_NOTES = 99  # AK4 may repeat 99 times under one AK3
MAX_BAD_DATA = 99  # AK404/IK404, data element 724
MAX_LOOP_ID = 4  # AK303/IK303, data element 447

# The codes each ack may carry for a bad segment (AK304/IK304) and element (AK403/IK403).
_SEGMENT_CODES = {"997": {str(n) for n in range(1, 9)},
                  "999": {str(n) for n in range(1, 9)} | {"I4", "I6", "I7", "I8", "I9"}}
_ELEMENT_CODES = {"997": {str(n) for n in range(1, 11)},
                  "999": {str(n) for n in range(1, 11)} | {"12", "13", "I6", "I9", "I10",
                                                             "I11", "I12", "I13"}}
# A 997 has no implementation (I) codes: the nearest generic code still says what kind of
# error it was, where writing the 999 code would make the 997 itself invalid.
_997_SEGMENT_FALLBACK = {"I4": "2", "I6": "3", "I7": "3", "I8": "3", "I9": "2"}
_997_ELEMENT_FALLBACK = {"12": "3", "13": "3", "I6": "7", "I9": "2", "I10": "10",
                         "I11": "1", "I12": "6", "I13": "10"}


@dataclass(frozen=True, slots=True)
class Acknowledgment:
    """One outbound acknowledgment interchange and what it answers."""

    kind: AckKind
    answers_interchange: str  # the original ISA13
    answers_group: str | None  # the original GS06; None for a TA1
    interchange_control_number: int  # our ISA13
    partner_qualifier: str  # the original sender, now the receiver
    partner_id: str
    text: str  # the complete ISA..IEA


@dataclass(slots=True)
class AckBatch:
    """The acknowledgments for one interchange, and why anything got none."""

    acks: list[Acknowledgment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not acknowledged by design (FA group ...)
    problems: list[str] = field(default_factory=list)  # should have been, but could not be

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.acks)

    def __len__(self) -> int:
        return len(self.acks)


def _version_number(version: str) -> int | None:
    """The numeric part of GS08 (004010VICS -> 4010) or ISA12 (00501 -> 5010)."""
    if len(version) >= 6 and is_digits(version[:6]):
        return int(version[:6])
    if len(version) == 5 and is_digits(version):
        return int(version) * 10
    return None


def ack_kind(group_version: str, interchange_version: str = "") -> AckKind:
    """997 for versions before 005010, 999 from 005010 on; 997 when neither can be read."""
    n = _version_number(group_version) or _version_number(interchange_version) or 4010
    return "999" if n >= 5010 else "997"


def _codes(findings: list[results.Finding], level: str) -> list[str]:
    """Distinct error codes of one level, in order, as many as the ack can carry."""
    seen: list[str] = []
    for f in findings:
        if f.level == level and f.severity == "error" and f.code and f.code not in seen:
            seen.append(f.code)
    return seen[:MAX_CODES]


def _safe_copy(value: str | None, w: writer.SegmentWriter) -> str | None:
    """The bad data to quote in AK404, or None when quoting it would break the ack."""
    if not value:
        return None
    try:
        w.check(value, "AK404")
    except OutboundDataError:
        return None  # the copy is optional; a delimiter in it must not break the ack
    # Element 724 is AN: only the X12 character set (printable ASCII) is valid in it, and
    # trailing blanks are not written in AN elements.
    copy = value[:MAX_BAD_DATA].rstrip(" ")
    return copy if copy and copy.isascii() and copy.isprintable() else None


def _loop_id(loop: str | None) -> str | None:
    """The innermost loop id (PO1/SCH -> SCH) when it fits data element 447."""
    if not loop:
        return None
    last = loop.rsplit("/", 1)[-1]
    return last if 1 <= len(last) <= MAX_LOOP_ID and is_alnum(last) else None


def _ack_code(code: str, kind: AckKind, level: str) -> str | None:
    """The code as this ack may carry it, or None when it has no equivalent."""
    valid = (_SEGMENT_CODES if level == "segment" else _ELEMENT_CODES)[kind]
    if code in valid:
        return code
    if kind == "997":
        fallback = _997_SEGMENT_FALLBACK if level == "segment" else _997_ELEMENT_FALLBACK
        return fallback.get(code)
    return None


def _digits(value: object, max_len: int) -> str | None:
    text = "" if value is None else str(value)
    return text if is_digits(text) and len(text) <= max_len else None


def _set_response(g: writer.GroupWriter, ts: writer.TransactionSetWriter,
                  s: results.SetResult, is_999: bool) -> None:
    """AK2, AK3/AK4 (IK3/IK4) for each bad segment and element, AK5 (IK5) for one set."""
    w = g.writer
    g.add(ts, "AK2", s.set_id, s.control_number, s.implementation if is_999 else None)
    placed = [f for f in s.errors if f.level in ("segment", "element")
              and f.segment_id and f.segment_position]
    # One segment note per bad segment, in the order of the set.
    by_segment: dict[tuple[int, str], list[results.Finding]] = {}
    for f in sorted(placed, key=lambda f: f.segment_position or 0):
        by_segment.setdefault((f.segment_position or 0, f.segment_id or ""), []).append(f)
    seg_tag, elem_tag = ("IK3", "IK4") if is_999 else ("AK3", "AK4")
    kind: AckKind = "999" if is_999 else "997"
    for (position, seg_id), found in by_segment.items():
        seg_codes = [c for f in found if f.level == "segment"
                     if (c := _ack_code(f.code, kind, "segment"))]
        loop = next((_loop_id(f.loop) for f in found if _loop_id(f.loop)), None)
        g.add(ts, seg_tag, seg_id, position, loop, seg_codes[0] if seg_codes else None)
        for code in seg_codes[1:]:
            g.add(ts, seg_tag, seg_id, position, loop, code)
        elements = [f for f in found if f.level == "element"
                    and _digits(f.element_position, 2)][:MAX_ELEMENT_NOTES]
        for f in elements:
            code = _ack_code(f.code, kind, "element")
            if code is None:
                continue  # AK403 is required: no note rather than an invalid ack
            where: list[int | None] = [f.element_position, f.component_position]
            if is_999:
                where.append(f.repetition_position)
            g.add(ts, elem_tag, where, _digits(f.data_element, 4), code,
                  _safe_copy(f.value, w))
    codes = _codes(s.findings, "set")
    if not codes and s.ack_code != "A" and placed:
        codes = ["5"]  # one or more segments in error
    g.add(ts, "IK5" if is_999 else "AK5", s.ack_code, *codes)


def _functional_ack(ic: results.InterchangeResult, grp: results.GroupResult,
                    numbers: ControlNumbers, now: datetime,
                    w: writer.SegmentWriter) -> Acknowledgment:
    kind = ack_kind(grp.version, ic.version)
    is_999 = kind == "999"
    isa12, gs08 = ("00501", ACK_999_VERSION) if is_999 else ("00401", "004010")
    isa13 = numbers.next_interchange()
    out = writer.InterchangeWriter(_isa_header(ic, isa13, isa12, now), w)
    # GS02/GS03 are AN: blanks some partners pad them with are not copied.
    g = out.group("FA", grp.receiver.rstrip() or ic.receiver_id,
                  grp.sender.rstrip() or ic.sender_id,
                  now.strftime("%Y%m%d"), now.strftime("%H%M"), numbers.next_group(), gs08)
    ts = g.transaction_set(kind, numbers.next_set(), ACK_999_VERSION if is_999 else None)
    g.add(ts, "AK1", grp.functional_id, grp.control_number, grp.version if is_999 else None)
    for s in grp.sets:
        _set_response(g, ts, s, is_999)
    received = len(grp.sets)
    declared = grp.declared_set_count if grp.declared_set_count is not None else received
    g.add(ts, "AK9", grp.ack_code, declared, received, grp.accepted_count,
          *_codes(grp.findings, "group"))
    return Acknowledgment(kind, ic.control_number, grp.control_number, isa13,
                          ic.sender_qualifier, ic.sender_id, out.render())


def _isa_header(ic: results.InterchangeResult, control: int, version: str,
                now: datetime) -> writer.IsaHeader:
    """Our ISA for an ack: the original's parties swapped, its ISA15 kept."""
    return writer.IsaHeader(
        sender_qualifier=ic.receiver_qualifier, sender_id=ic.receiver_id,
        receiver_qualifier=ic.sender_qualifier, receiver_id=ic.sender_id,
        date=now.strftime("%y%m%d"), time=now.strftime("%H%M"), control_number=control,
        version=version, ack_requested=False,
        # An unreadable ISA15 is answered as production: a T could make the partner's
        # production system discard the TA1 that tells it what is wrong.
        usage=ic.usage if ic.usage in ("P", "T", "I") else "P")


def _ta1(ic: results.InterchangeResult, numbers: ControlNumbers, now: datetime,
         w: writer.SegmentWriter) -> Acknowledgment:
    control = _digits(ic.control_number.strip(), 9)
    date, time = _digits(ic.date, 6), _digits(ic.time, 4)
    if not control or not date or len(date) != 6 or not time or len(time) != 4:
        raise OutboundDataError(
            f"the interchange's ISA13/ISA09/ISA10 ({ic.control_number!r}, {ic.date!r}, "
            f"{ic.time!r}) cannot be quoted in a TA1")
    version = "00501" if (_version_number(ic.version) or 0) >= 5010 else "00401"
    isa13 = numbers.next_interchange()
    out = writer.InterchangeWriter(_isa_header(ic, isa13, version, now), w)
    out.add("TA1", control.zfill(9), date, time, ic.ta1_ack_code, ic.ta1_note_code)
    return Acknowledgment("TA1", ic.control_number, None, isa13, ic.sender_qualifier,
                          ic.sender_id, out.render())


def _address_problem(ic: results.InterchangeResult, w: writer.SegmentWriter) -> str | None:
    """Why the sender cannot be addressed in an ack ISA, or None when it can."""
    try:
        writer.isa_segment(_isa_header(ic, 1, "00401", datetime(2000, 1, 1)), w)
    except OutboundDataError as exc:
        return str(exc)
    for name, value in (("ISA05", ic.sender_qualifier), ("ISA06", ic.sender_id),
                        ("ISA07", ic.receiver_qualifier), ("ISA08", ic.receiver_id)):
        if not value.strip():
            return f"{name} is empty"
        if not value.isascii():
            return f"{name} {value!r} has characters outside the X12 character set"
    return None


def _plain(ack: Acknowledgment) -> Acknowledgment:
    """The ack when it is all ASCII; acks are stored and sent as ASCII X12."""
    bad = next((c for c in ack.text if not c.isascii()), None)
    if bad is not None:
        raise OutboundDataError(f"a value copied from the interchange has {bad!r}, which is "
                                f"outside the X12 character set")
    return ack


def build_acknowledgments(ic: results.InterchangeResult, numbers: ControlNumbers,
                          now: datetime | None = None, *,
                          segment_writer: writer.SegmentWriter | None = None) -> AckBatch:
    """The TA1 and 997/999 interchanges that answer one inbound interchange."""
    w = segment_writer or writer.SegmentWriter()
    now = now or datetime.now(UTC)
    batch = AckBatch()
    where = f"interchange {ic.control_number!r}"
    if ic.only_ta1:
        batch.notes.append(f"{where} carries only TA1 acknowledgments: not acknowledged")
        return batch
    problem = _address_problem(ic, w)
    if problem:
        batch.problems.append(f"{where}: no acknowledgment can be addressed: {problem}")
        return batch
    if ic.ack_requested or ic.ta1_ack_code != "A" or ic.ta1_note_code != "000":
        try:
            batch.acks.append(_plain(_ta1(ic, numbers, now, w)))
        except OutboundDataError as exc:
            batch.problems.append(f"{where}: no TA1: {exc}")
    if not ic.accepted:
        batch.notes.append(f"{where} was rejected (TA104 {ic.ta1_ack_code}): "
                           f"its groups are not acknowledged")
        return batch
    for grp in ic.groups:
        gwhere = f"{where}, group {grp.control_number!r}"
        if grp.is_acknowledgment:
            batch.notes.append(f"{gwhere} is a functional acknowledgment: not acknowledged")
            continue
        try:
            batch.acks.append(_plain(_functional_ack(ic, grp, numbers, now, w)))
        except OutboundDataError as exc:
            batch.problems.append(f"{gwhere}: no {ack_kind(grp.version, ic.version)}: {exc}")
    return batch


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", text.strip())[:40] or "_"


def ack_filename(ack: Acknowledgment) -> str:
    """A file name that says what the ack answers and is unique by our ISA13."""
    answered = _name_part(ack.answers_interchange)
    if ack.answers_group is not None:
        answered += "-" + _name_part(ack.answers_group)
    return (f"{ack.kind}_{_name_part(ack.partner_id)}_{answered}_"
            f"{ack.interchange_control_number:09d}.x12")
