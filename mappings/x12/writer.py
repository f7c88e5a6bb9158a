"""Outbound X12: segments from element lists, a 106-character ISA, counted envelopes.

X12 has no escape character, so a value that contains a delimiter is refused with
OutboundDataError, never written raw. Control characters (CR, LF and the rest of C0/C1,
DEL) are refused too: partners' readers treat line breaks as noise or as terminators,
so they would silently change the data. The repetition character is refused in data
even at versions before 00402 (where ISA11 is "U"): one rule for every version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from canonical.errors import OutboundDataError
from mappings.x12.charset import is_digits
from mappings.x12.reader import Delimiters

DEFAULT_DELIMITERS = Delimiters(element="*", component=":", repetition="^", segment="~")
MAX_CONTROL_NUMBER = 999_999_999  # ISA13, GS06 and ST02 hold at most nine digits
ISA_LENGTH = 106  # including the segment terminator


class Repeat(tuple):  # type: ignore[type-arg]
    """An element written with repetitions: each item is a value or a list of components."""

    __slots__ = ()


Scalar = str | int | None
ElementValue = Scalar | Sequence[Scalar] | Repeat


def _unsafe(text: str, delimiters: Delimiters) -> str | None:
    """The first character of text that may not appear in X12 data, or None."""
    forbidden = set(delimiters.all())
    for c in text:
        if c in forbidden or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            return c
    return None


def _describe(c: str, delimiters: Delimiters) -> str:
    names = {delimiters.element: "the element separator",
             delimiters.component: "the component separator",
             delimiters.segment: "the segment terminator"}
    if delimiters.repetition:
        names[delimiters.repetition] = "the repetition separator"
    what = names.get(c, "a control character")
    return f"{what} {c!r}"


@dataclass(frozen=True, slots=True)
class SegmentWriter:
    """Render segments with one set of delimiters, refusing data that would break them."""

    delimiters: Delimiters = DEFAULT_DELIMITERS
    newline: str = ""  # written after each terminator: "", "\n" or "\r\n"

    def __post_init__(self) -> None:
        d = self.delimiters
        chars = d.all()
        if any(len(c) != 1 for c in chars):
            raise OutboundDataError(f"delimiters must be single characters: {chars!r}")
        if len(set(chars)) != len(chars):
            raise OutboundDataError(f"the same character is used for two delimiters: {chars!r}")
        for c in chars:
            if c.isalnum() or c == " ":
                raise OutboundDataError(f"{c!r} cannot be a delimiter: data uses it")
        if self.newline not in ("", "\n", "\r\n"):
            raise OutboundDataError(f"newline must be '', '\\n' or '\\r\\n', not {self.newline!r}")
        if self.newline and set(self.newline) & set(chars):
            raise OutboundDataError("a newline after the terminator cannot be a delimiter too")

    def check(self, value: str, where: str) -> str:
        """Return value when it is safe as X12 data, else raise naming where and the character."""
        bad = _unsafe(value, self.delimiters)
        if bad is not None:
            raise OutboundDataError(
                f"{where}: the value contains {_describe(bad, self.delimiters)}; "
                f"X12 has no escape character, so it is refused")
        return value

    def _scalar(self, value: Scalar, where: str) -> str:
        if value is None:
            return ""
        return self.check(str(value), where)

    def _composite(self, value: Scalar | Sequence[Scalar], where: str) -> str:
        if isinstance(value, str | int) or value is None:
            return self._scalar(value, where)
        parts = [self._scalar(v, f"{where} component {k}") for k, v in enumerate(value, 1)]
        while parts and not parts[-1]:
            parts.pop()  # trailing empty components are not written
        return self.delimiters.component.join(parts)

    def _element(self, value: ElementValue, where: str) -> str:
        if isinstance(value, Repeat):
            if not self.delimiters.repetition:
                raise OutboundDataError(f"{where}: repetitions need a repetition separator")
            reps = [self._composite(v, f"{where} repetition {k}") for k, v in enumerate(value, 1)]
            return self.delimiters.repetition.join(reps)
        return self._composite(value, where)

    def segment(self, seg_id: str, *elements: ElementValue) -> str:
        """One segment with its terminator; trailing empty elements are left out."""
        if not (2 <= len(seg_id) <= 3 and seg_id.isascii() and seg_id.isalnum()
                and seg_id == seg_id.upper()):
            raise OutboundDataError(f"{seg_id!r} is not a segment id")
        parts = [seg_id]
        parts += [self._element(v, f"segment {seg_id}, element {seg_id}{k:02d}")
                  for k, v in enumerate(elements, 1)]
        while len(parts) > 1 and not parts[-1]:
            parts.pop()
        return self.delimiters.element.join(parts) + self.delimiters.segment + self.newline


def _fixed(value: str, width: int, name: str, writer: SegmentWriter, *,
           digits: bool = False) -> str:
    """A fixed-width ISA field: text padded with blanks, numbers with zeros."""
    writer.check(value, f"segment ISA, element {name}")
    if len(value) > width:
        raise OutboundDataError(
            f"segment ISA, element {name}: {value!r} is longer than its {width} characters")
    if digits:
        if not is_digits(value):
            raise OutboundDataError(f"segment ISA, element {name}: {value!r} is not a number")
        return value.zfill(width)
    return value.ljust(width)


def check_control_number(n: int, name: str) -> int:
    """n when it fits nine digits and is positive; wrap-around is refused, never done."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CONTROL_NUMBER:
        raise OutboundDataError(f"{name} control number {n!r} is outside 1..{MAX_CONTROL_NUMBER}")
    return n


@dataclass(frozen=True, slots=True)
class IsaHeader:
    """The fields of an ISA; `isa_segment` pads them to their fixed widths."""

    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str  # YYMMDD
    time: str  # HHMM
    control_number: int
    version: str = "00401"
    ack_requested: bool = False
    usage: str = "P"
    auth_qualifier: str = "00"
    auth_info: str = ""
    security_qualifier: str = "00"
    security_info: str = ""


def isa_segment(h: IsaHeader, writer: SegmentWriter) -> str:
    """The ISA, exactly 106 characters with its terminator (plus the writer's newline)."""
    d = writer.delimiters
    if not (len(h.version) == 5 and is_digits(h.version)):
        raise OutboundDataError(f"segment ISA, element ISA12: {h.version!r} is not a version")
    # From 00402 on ISA11 carries the repetition separator; before, it is the standards id U.
    if h.version >= "00402":
        if not d.repetition:
            raise OutboundDataError(f"version {h.version} needs a repetition separator (ISA11)")
        isa11 = d.repetition
    else:
        isa11 = "U"
    if h.usage not in ("P", "T", "I"):
        raise OutboundDataError(f"segment ISA, element ISA15: {h.usage!r} is not P, T or I")
    control = str(check_control_number(h.control_number, "interchange"))
    fields = [
        _fixed(h.auth_qualifier, 2, "ISA01", writer), _fixed(h.auth_info, 10, "ISA02", writer),
        _fixed(h.security_qualifier, 2, "ISA03", writer),
        _fixed(h.security_info, 10, "ISA04", writer),
        _fixed(h.sender_qualifier, 2, "ISA05", writer), _fixed(h.sender_id, 15, "ISA06", writer),
        _fixed(h.receiver_qualifier, 2, "ISA07", writer),
        _fixed(h.receiver_id, 15, "ISA08", writer),
        _fixed(h.date, 6, "ISA09", writer, digits=True),
        _fixed(h.time, 4, "ISA10", writer, digits=True),
        isa11, h.version, control.zfill(9), "1" if h.ack_requested else "0", h.usage,
        d.component,
    ]
    for name, value, width in (("ISA09", h.date, 6), ("ISA10", h.time, 4)):
        if len(value) != width:
            raise OutboundDataError(f"segment ISA, element {name}: {value!r} is not {width} digits")
    text = d.element.join(["ISA", *fields]) + d.segment
    assert len(text) == ISA_LENGTH, text  # every field above has a fixed width
    return text + writer.newline


@dataclass(slots=True)
class TransactionSetWriter:
    """The segments of one ST..SE; SE01 is counted when the envelope is rendered."""

    set_id: str
    control_number: str
    implementation: str | None
    body: list[str] = field(default_factory=list)

    def render(self, w: SegmentWriter) -> list[str]:
        st = w.segment("ST", self.set_id, self.control_number, self.implementation)
        se = w.segment("SE", len(self.body) + 2, self.control_number)
        return [st, *self.body, se]


@dataclass(slots=True)
class GroupWriter:
    """One GS..GE; GE01 is the number of transaction sets added."""

    writer: SegmentWriter
    header: list[ElementValue]  # GS01..GS08
    control_number: int
    sets: list[TransactionSetWriter] = field(default_factory=list)

    def transaction_set(self, set_id: str, control_number: int,
                        implementation: str | None = None) -> TransactionSetWriter:
        """Start a transaction set; ST02 is at least four digits, as element 329 requires."""
        n = check_control_number(control_number, "transaction set")
        ts = TransactionSetWriter(self.writer.check(set_id, "segment ST, element ST01"),
                                  str(n).zfill(4), implementation)
        self.sets.append(ts)
        return ts

    def add(self, ts: TransactionSetWriter, seg_id: str, *elements: ElementValue) -> None:
        """Append a segment to a transaction set of this group."""
        ts.body.append(self.writer.segment(seg_id, *elements))

    def render(self) -> list[str]:
        w = self.writer
        out = [w.segment("GS", *self.header)]
        for ts in self.sets:
            out += ts.render(w)
        out.append(w.segment("GE", len(self.sets), self.control_number))
        return out


@dataclass(slots=True)
class InterchangeWriter:
    """One ISA..IEA: interchange-level segments (TA1) first, then groups; IEA01 counted."""

    header: IsaHeader
    writer: SegmentWriter = field(default_factory=SegmentWriter)
    leading: list[str] = field(default_factory=list)
    groups: list[GroupWriter] = field(default_factory=list)

    def __post_init__(self) -> None:
        isa_segment(self.header, self.writer)  # refuse a bad header now, not at render time

    def add(self, seg_id: str, *elements: ElementValue) -> None:
        """An interchange-level segment such as TA1, written before any group."""
        self.leading.append(self.writer.segment(seg_id, *elements))

    def group(self, functional_id: str, sender: str, receiver: str, date: str, time: str,
              control_number: int, version: str, agency: str = "X") -> GroupWriter:
        """Start a functional group (GS01..GS08 in that order)."""
        n = check_control_number(control_number, "group")
        g = GroupWriter(self.writer,
                        [functional_id, sender, receiver, date, time, n, agency, version], n)
        g.render()  # check the GS values now, where the caller can still tell which
        self.groups.append(g)
        return g

    def render(self) -> str:
        """The whole interchange as text."""
        out = [isa_segment(self.header, self.writer), *self.leading]
        for g in self.groups:
            out += g.render()
        out.append(self.writer.segment("IEA", len(self.groups),
                                       str(self.header.control_number).zfill(9)))
        return "".join(out)
