"""Validate X12 files: envelope (TA1), groups (AK9), sets (AK5), segments (AK3), elements (AK4).

One pass over the reader's segments. Inside a transaction set, each segment costs one dict
lookup in the compiled state machine of its map (mappings/x12/specs.py) and one call of
the segment node's precompiled element checker (mappings/x12/elements.py); no XML and no
per-segment object tree at run time. Only the findings are kept, capped per set, so
memory stays bounded whatever the file size.

`validate` never raises for bad input: input that cannot be read as X12 at all gives
FileResult(readable=False, read_error=...). The one exception is
canonical.errors.InputTooLarge, which escapes so the caller can refuse the input.

`accept_with_errors` is a partner's leniency: acknowledgment codes as `AK403-6`,
`AK304-8`, `AK502-4` (IK spellings too). A set whose every error is one of them is
accepted with errors noted (AK5/IK5 E): its findings stay errors, so the acks still
carry its AK3/AK4. AK304-8 and AK502-5 only sum up the errors beneath them: they follow
those and need not be listed. Group and envelope errors are never downgraded, nor a set
without a map.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import BinaryIO

from canonical.errors import InputTooLarge, SpecificationError, X12ReadError
from mappings.x12 import elements, specs
from mappings.x12.charset import is_alnum, is_alpha, is_digits
from mappings.x12.reader import ISA_LENGTH, Segment, X12Reader
from mappings.x12.results import (
    FileResult,
    Finding,
    GroupResult,
    InterchangeResult,
    SetResult,
)
from mappings.x12.specs import ElementRule, SegmentRule

MAX_FINDINGS_PER_SET = 100
_ENVELOPE_IDS = frozenset(("ISA", "IEA", "GS", "GE", "ST", "SE", "TA1", "ISB", "ISE"))
# Width of ISA01..ISA16 and the TA105 code reported when one is wrong.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_ISA_NOTE = ("010", "011", "012", "013", "005", "006", "007", "008", "014", "015", "016",
             "017", "018", "019", "020", "027")
_ISA01 = frozenset(("00", "01", "02", "03", "04", "05", "06"))
_ISA03 = frozenset(("00", "01"))
_ISA05 = frozenset(["01", "02", "03", "04", "07", "08", "09", "10", "11", "12", "13", "14", "15",
                    "16", "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28",
                    "29", "30", "31", "32", "33", "34", "35", "36", "37", "38", "AM", "NR",
                    "SA", "SN", "ZZ"])
# TA105 codes that leave the interchange readable: noted (TA104 E), not rejected.
_TA1_NOTED = frozenset(("017", "024"))
_SEGMENT_ID_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
# Codes that only sum up others: "segment has data element errors", "one or more segments
# are in error". They never decide a downgrade on their own.
_SUMMARY_CODES = frozenset(("AK304-8", "AK502-5"))
_DOWNGRADABLE = ("AK304-", "AK403-", "AK502-")


def leniency_codes(codes: Iterable[str]) -> frozenset[str]:
    """A partner's accept_with_errors list in the validator's spelling (IK403-6 -> AK403-6).

    ValueError names a code that is not a set, segment or element error code."""
    out = set()
    for code in codes:
        norm = code.strip().upper()
        norm = "AK" + norm[2:] if norm.startswith("IK") else norm
        if not norm.startswith(_DOWNGRADABLE) or not norm.split("-", 1)[1]:
            raise ValueError(f"{code!r} is not an AK304, AK403 or AK502 code such as AK403-6")
        out.add(norm)
    return frozenset(out)


def validate(source: str | os.PathLike[str] | bytes | BinaryIO, *, path: str = "<input>",
             max_bytes: int | None = None,
             maps: str | os.PathLike[str] | None = None,
             accept_with_errors: Iterable[str] = (),
             tap: Callable[[Segment], object] | None = None) -> FileResult:
    """Validate one X12 file (path, bytes or binary stream) into a FileResult; see the
    module docstring for `accept_with_errors`. tap, if given, is called with each segment
    as it is read (so that a caller needing the segments too does not read them again)."""
    lenient = leniency_codes(accept_with_errors)
    if isinstance(source, str | os.PathLike) and path == "<input>":
        path = os.fspath(source)
    result = FileResult(path=path)
    try:
        folder = specs.load_folder(maps)
    except SpecificationError as exc:
        result.readable = False
        result.read_error = f"the X12 maps cannot be loaded: {exc}"
        return result
    try:
        reader = X12Reader(source, max_bytes=max_bytes)
    except InputTooLarge:
        raise
    except OSError as exc:
        result.readable, result.read_error = False, f"cannot open {path}: {exc.strerror or exc}"
        return result
    run = _Run(result, folder, lenient)
    try:
        with reader:
            run.read(reader, tap)
    except InputTooLarge:
        raise
    except X12ReadError as exc:
        if not result.interchanges:
            result.readable, result.read_error = False, str(exc)
        else:
            run.cut_short(str(exc), exc.line)
    except OSError as exc:
        result.readable, result.read_error = False, f"cannot read {path}: {exc}"
    result.encoding = reader.info.encoding
    for w in reader.info.warnings:
        result.findings.append(Finding("file", "", w, severity="warning"))
    return result


def _tapped(segments: Iterable[Segment], tap: Callable[[Segment], object]) -> Iterator[Segment]:
    for seg in segments:
        tap(seg)
        yield seg


class _Set:
    """What is tracked while inside one ST..SE."""

    __slots__ = ("checkers", "counts", "errors", "hl_ids", "hl_last", "hl_unsure", "max_counts",
                 "nearest", "result", "simple", "spec", "state", "suppressed", "zeros")

    def __init__(self, result: SetResult, spec: specs.TransactionSpec | None,
                 legacy: bool = False, comp: str = ":", nearest: str | None = None) -> None:
        self.result = result
        self.spec = spec
        # The set's version when its map is another version's (the nearest one): what that
        # map does not know is noted as a warning naming the version, not rejected.
        self.nearest = nearest
        self.state = spec.start if spec else -1
        self.counts = [0] * len(spec.ids) if spec else []
        self.zeros = [0] * len(spec.ids) if spec else []
        self.checkers = _checkers(spec, legacy, comp) if spec else []
        self.simple = _simple_steps(spec) if spec else None
        self.max_counts = spec.max_counts if spec else []
        self.errors = 0
        self.suppressed = 0
        self.hl_ids: set[str] = set()
        self.hl_last = 0
        # An HL whose own id is missing or malformed: a later HL02 may well point at it,
        # so unknown parents are no longer reported (one error, not a cascade).
        self.hl_unsure = False

    def add(self, f: Finding) -> None:
        if f.severity == "error":
            self.errors += 1
        if len(self.result.findings) < MAX_FINDINGS_PER_SET:
            self.result.findings.append(f)
        else:
            self.suppressed += 1


def _simple_steps(spec: specs.TransactionSpec) -> list[dict[str, tuple[int, int, int]]]:
    """Per state, the transitions the hot loop can take alone: one unconditional
    candidate that skips nothing mandatory, into a used node. (target, loop, loop end)."""
    if spec._checkers is None:
        spec._checkers = {}
    found = spec._checkers.get("simple")
    if found is None:
        found = []
        for table in spec.transitions:
            steps = {}
            for sid, cands in table.items():
                c = cands[0]
                if (len(cands) == 1 and c.key_codes is None and not c.missing
                        and spec.usages[c.target] != "N"
                        and (c.enter_loop < 0 or spec.usages[c.enter_loop] != "N")):
                    end = spec.ends[c.enter_loop] if c.enter_loop >= 0 else 0
                    steps[sid] = (c.target, c.enter_loop, end)
            found.append(steps)
        spec._checkers["simple"] = found
    return found


class _Checkers(dict):
    """The element checkers of a spec's segment nodes, each generated the first time a
    segment meets its node: a file uses a few dozen of a map's hundreds of nodes, and
    generating them all cost a short file most of its run time."""

    def __init__(self, spec: specs.TransactionSpec, legacy: bool, comp: str) -> None:
        super().__init__()
        self.spec, self.legacy, self.comp = spec, legacy, comp

    def __missing__(self, node: int) -> elements.Checker | None:
        rule = self.spec.rules[node]
        if rule and self.legacy:
            rule = _legacy_dtm(rule)
        made = self[node] = elements.make_fast_checker(
            rule, self.spec.extended_charset_5010, self.legacy, self.comp) if rule else None
        return made


def _checkers(spec: specs.TransactionSpec, legacy: bool, comp: str) -> _Checkers:
    """The element checkers of a spec for one component separator, kept on the spec."""
    if spec._checkers is None:
        spec._checkers = {}
    found = spec._checkers.get((legacy, comp))
    if found is None:
        found = spec._checkers[(legacy, comp)] = _Checkers(spec, legacy, comp)
    return found


_DTM_4010 = ["374", "373", "337", "623", "1250", "1251"]


def _legacy_dtm(rule: SegmentRule) -> SegmentRule:
    """The DTM of versions before 004010, which still had Century (624, N0 2/2) as DTM05:
    004010's DTM05/06 are then DTM06/07, and its notes R020305 P0506 are R020306 P0607
    (X12 003050 DTM).  Any other rule as it is."""
    if rule.id != "DTM" or [e.data_element for e in rule.elements] != _DTM_4010:
        return rule
    head, tail = rule.elements[:4], rule.elements[4:]
    century = ElementRule("DTM05", 5, "624", "Century", "N0", 2, 2, "S")
    moved = tuple(replace(e, ref=f"DTM{e.seq + 1:02d}", seq=e.seq + 1) for e in tail)
    return replace(rule, elements=(*head, century, *moved),
                   syntax=(("R", (2, 3, 6)), ("C", (4, 3)), ("P", (6, 7))))


class _Run:
    """One pass of the validator over one file."""

    def __init__(self, result: FileResult, folder: specs.MapFolder,
                 lenient: frozenset[str] = frozenset()) -> None:
        self.result = result
        self.lenient = lenient
        self.folder = folder
        self.maps = str(folder.path)
        self.ic: InterchangeResult | None = None
        self.group: GroupResult | None = None
        self.set: _Set | None = None
        self.ic_closed = True
        self.group_closed = True
        self.ta1_count = 0
        self.comp = ":"
        self.rep: str | None = None
        self.set_ids_in_group: set[str] = set()
        self.hl03_required: dict[tuple[int, int], bool] = {}
        self.isa_seen: set[tuple[str, str, str]] = set()
        self.fics = {e.fic for e in folder.entries if e.fic}

    # -- driving ---------------------------------------------------------------------

    def read(self, reader: X12Reader, tap: Callable[[Segment], object] | None = None) -> None:
        envelope = _ENVELOPE_IDS
        for seg in (reader if tap is None else _tapped(reader, tap)):
            fields = seg.fields
            sid = fields[0]
            st = self.set
            if st is not None and sid not in envelope:
                # The hot path, inlined: a transition that needs no qualifier and skips
                # nothing mandatory, then the segment's generated checker.
                st.result.segment_count += 1
                step = st.simple[st.state].get(sid) if st.simple else None
                if step is None:
                    if st.spec is not None:
                        self.walk(st, seg)
                    continue
                target, loop, end = step
                counts = st.counts
                if loop >= 0:
                    if counts[loop] >= st.max_counts[loop]:
                        self.walk(st, seg)  # over the loop's maximum: the full path reports it
                        continue
                    counts[loop] += 1
                    counts[loop + 1:end] = st.zeros[loop + 1:end]
                    counts[target] = 1
                else:
                    if counts[target] >= st.max_counts[target]:
                        self.walk(st, seg)
                        continue
                    counts[target] += 1
                st.state = target
                if sid == "HL":
                    self.check_hl(st, seg, st.result.segment_count, target)
                if st.checkers[target](fields, self.comp, self.rep) is not None:
                    self.check_elements(st, target, seg, st.result.segment_count)
                continue
            if sid == "ISA":
                self.isa(seg, reader)
            elif sid == "IEA":
                self.iea(seg)
            elif sid == "GS":
                self.gs(seg)
            elif sid == "GE":
                self.ge(seg)
            elif sid == "ST":
                self.st(seg)
            elif sid == "SE":
                self.se(seg)
            elif sid == "TA1":
                self.ta1(seg)
            elif sid in ("ISB", "ISE") and self.ic is not None and self.group is None:
                pass  # optional interchange service segments, allowed between ISA and GS
            else:
                self.stray(seg, reader)
        self.finish()

    def finish(self) -> None:
        if self.ic is not None and not self.ic_closed:
            self.close_interchange(None)

    def cut_short(self, message: str, line: int | None) -> None:
        """The reader gave up part way (an unreadable second ISA, say)."""
        self.result.findings.append(Finding("file", "read", message, line=line))
        self.finish()

    # -- interchange -----------------------------------------------------------------

    def ic_error(self, code: str, message: str, seg: Segment | None = None,
                 severity: str = "error") -> None:
        assert self.ic is not None
        self.ic.findings.append(Finding(
            "interchange", code, message, severity=severity,  # type: ignore[arg-type]
            segment_id=seg.fields[0] if seg else None, line=seg.line if seg else None,
            file_position=seg.position if seg else None))

    def isa(self, seg: Segment, reader: X12Reader) -> None:
        if self.ic is not None and not self.ic_closed:
            self.close_interchange(None)
        meta = reader.interchange
        assert meta is not None
        f = seg.fields + [""] * (17 - len(seg.fields))
        d = meta.delimiters
        ic = InterchangeResult(
            control_number=f[13], sender_qualifier=f[5], sender_id=f[6].rstrip(),
            receiver_qualifier=f[7], receiver_id=f[8].rstrip(), date=f[9], time=f[10],
            version=f[12], ack_requested=f[14] == "1", usage=f[15],
            element_separator=d.element, component_separator=d.component,
            repetition_separator=d.repetition, segment_terminator=d.segment,
            line=seg.line, file_position=seg.position)
        seen = (ic.sender_qualifier, ic.sender_id, ic.control_number)
        duplicate = seen in self.isa_seen
        self.isa_seen.add(seen)
        self.result.interchanges.append(ic)
        self.ic, self.ic_closed, self.group, self.group_closed = ic, False, None, True
        self.comp, self.rep = d.component, d.repetition
        self.ta1_count = 0
        if duplicate:
            # The standard's code for it; rejecting or dropping a repeat is the pipeline's
            # call (its duplicate window), so here it is only pointed out.
            self.ic_error("025", f"interchange control number {f[13]!r} from "
                          f"{f[5]}:{f[6].rstrip()} appears earlier in this file",
                          seg, severity="warning")
        for note in meta.notes:
            code = "004" if "terminator" in note else "026" if "same character" in note else "022"
            self.ic_error(code, f"ISA: {note}", seg)
        if len(seg.fields) != 17:
            self.ic_error("022", f"the ISA has {len(seg.fields) - 1} elements, 16 required", seg)
            return
        if meta.isa_length != ISA_LENGTH:
            wrong = [(i, len(f[i])) for i in range(1, 17) if len(f[i]) != _ISA_WIDTHS[i - 1]]
            for i, n in wrong:
                self.ic_error(_ISA_NOTE[i - 1], f"ISA{i:02d} is {n} characters wide; the ISA is "
                              f"fixed width and needs {_ISA_WIDTHS[i - 1]}", seg)
            if not wrong:
                self.ic_error("022", f"the ISA is {meta.isa_length} characters, not "
                              f"{ISA_LENGTH}", seg)
        checks = (
            (f[1] in _ISA01, "010", f"ISA01 authorization qualifier {f[1]!r} is not a valid code"),
            (f[3] in _ISA03, "012", f"ISA03 security qualifier {f[3]!r} is not a valid code"),
            (f[5] in _ISA05, "005", f"ISA05 sender qualifier {f[5]!r} is not a valid code"),
            (bool(f[6].strip()), "006", "ISA06 sender id is empty"),
            (f[7] in _ISA05, "007", f"ISA07 receiver qualifier {f[7]!r} is not a valid code"),
            (bool(f[8].strip()), "008", "ISA08 receiver id is empty"),
            (elements.valid_date(f[9]) and len(f[9]) == 6, "014",
             f"ISA09 {f[9]!r} is not a valid date (YYMMDD)"),
            (len(f[10]) == 4 and elements.valid_time(f[10]), "015",
             f"ISA10 {f[10]!r} is not a valid time (HHMM)"),
            (is_digits(f[13]) and len(f[13]) == 9, "018",
             f"ISA13 control number {f[13]!r} is not 9 digits"),
            (f[14] in ("0", "1"), "019", f"ISA14 acknowledgment requested {f[14]!r} is not 0 or 1"),
            (f[15] in ("P", "T", "I"), "020", f"ISA15 usage indicator {f[15]!r} is not P, T or I"),
        )
        for ok, code, message in checks:
            if not ok:
                self.ic_error(code, message, seg)
        version = f[12]
        if not (len(version) == 5 and is_digits(version) and "00200" <= version <= "00899"):
            self.ic_error("017", f"ISA12 version {version!r} is not an X12 control version", seg)
        if version >= "00402":
            if d.repetition is None and f[11] != "U":
                self.ic_error("016", f"ISA11 {f[11]!r} must be a repetition separator from "
                              f"version 00402 on", seg)
            elif d.repetition is None:
                # Many partners keep U after 00402; it only means "no repetition separator".
                self.ic_error("016", f"ISA11 is U in version {version}: read as no repetition "
                              f"separator", seg, severity="warning")
        elif f[11] != "U":
            self.ic_error("016", f"ISA11 standards identifier {f[11]!r} must be U before "
                          f"version 00402", seg)
        if len(f[16]) != 1 or is_alnum(f[16]) or f[16] in (d.element, d.segment):
            self.ic_error("027", f"ISA16 component separator {f[16]!r} is not valid", seg)

    def iea(self, seg: Segment) -> None:
        if self.ic is None or self.ic_closed:
            self.stray(seg, None)
            return
        self.close_interchange(seg)

    def close_interchange(self, seg: Segment | None) -> None:
        ic = self.ic
        assert ic is not None
        if self.group is not None and not self.group_closed:
            self.close_group(None)
        if seg is None:
            self.ic_error("023", "the file ends before the IEA that closes the interchange")
        else:
            declared = seg.get(1)
            ic.declared_group_count = int(declared) if is_digits(declared) else None
            if declared != str(len(ic.groups)) and declared.lstrip("0") != str(len(ic.groups)):
                self.ic_error("021", f"IEA01 says {declared!r} groups, the interchange has "
                              f"{len(ic.groups)}", seg)
            if self.trailer_value(seg, 2) != ic.control_number:
                self.ic_error("001", f"IEA02 {seg.get(2)!r} does not match ISA13 "
                              f"{ic.control_number!r}", seg)
        ic.only_ta1 = not ic.groups and self.ta1_count > 0
        self.ic_closed = True
        self.verdict_interchange(ic)

    def verdict_interchange(self, ic: InterchangeResult) -> None:
        errors = ic.errors
        if errors:
            ic.ta1_note_code = errors[0].code
            ic.ta1_ack_code = "E" if all(f.code in _TA1_NOTED for f in errors) else "R"
        if ic.ta1_ack_code == "R":
            # The envelope cannot be trusted, so nothing inside it is accepted.
            for g in ic.groups:
                g.ack_code = "R"
                for s in g.sets:
                    s.ack_code = "R"

    def trailer_value(self, seg: Segment, n: int) -> str:
        """A trailer's control number, without a stray trailing component separator (seen
        when ISA16 equals the character that ends every segment)."""
        value = seg.get(n)
        if value.endswith(self.comp) and self.ic is not None:
            self.ic_error("", f"{seg.fields[0]}{n:02d} {value!r} ends with the component "
                          f"separator; compared without it", seg, severity="warning")
            return value.rstrip(self.comp)
        return value

    def ta1(self, seg: Segment) -> None:
        if self.ic is None or self.group is not None:
            self.stray(seg, None)
            return
        self.ta1_count += 1
        f = seg.fields
        ok = (len(f) >= 6 and is_digits(f[1]) and len(f[1]) == 9 and elements.valid_date(f[2])
              and len(f[2]) == 6 and len(f[3]) == 4 and elements.valid_time(f[3])
              and f[4] in ("A", "E", "R") and is_digits(f[5]) and len(f[5]) == 3)
        if not ok:
            self.ic_error("024", f"TA1 segment is malformed: {'*'.join(f)!r}", seg)

    def stray(self, seg: Segment, reader: X12Reader | None) -> None:
        sid = seg.fields[0]
        where = f"segment {sid} (line {seg.line})"
        if self.ic is None or self.ic_closed:
            self.result.findings.append(Finding(
                "file", "022", f"{where} is outside any interchange", segment_id=sid,
                line=seg.line, file_position=seg.position))
            return
        self.ic_error("024", f"{where} is not allowed here: it is outside any "
                      f"{'transaction set' if self.group else 'functional group'}", seg)

    # -- functional group ------------------------------------------------------------

    def group_error(self, code: str, message: str, seg: Segment | None = None,
                    severity: str = "error") -> None:
        assert self.group is not None
        self.group.findings.append(Finding(
            "group", code, message, severity=severity,  # type: ignore[arg-type]
            segment_id=seg.fields[0] if seg else None, line=seg.line if seg else None,
            file_position=seg.position if seg else None))

    def gs(self, seg: Segment) -> None:
        if self.ic is None or self.ic_closed:
            self.stray(seg, None)
            return
        if self.group is not None and not self.group_closed:
            self.close_group(None)
        f = seg.fields + [""] * (9 - len(seg.fields)) if len(seg.fields) < 9 else seg.fields
        g = GroupResult(functional_id=f[1], control_number=f[6], version=f[8], sender=f[2],
                        receiver=f[3], date=f[4], time=f[5], line=seg.line,
                        file_position=seg.position)
        self.ic.groups.append(g)
        self.group, self.group_closed = g, False
        self.set_ids_in_group = set()
        if not (len(f[1]) == 2 and is_alpha(f[1])):
            self.group_error("1", f"GS01 functional identifier {f[1]!r} is not supported", seg)
        if not specs.base_version(f[8]):
            self.group_error("2", f"GS08 version {f[8]!r} is not supported", seg)
        if not (is_digits(f[6]) and 1 <= len(f[6]) <= 9):
            self.group_error("6", f"GS06 control number {f[6]!r} is not 1 to 9 digits", seg)
        elif any(other.control_number == f[6] for other in self.ic.groups[:-1]):
            self.group_error("19", f"GS06 control number {f[6]!r} is used by another group in "
                             f"the same interchange", seg)
        if len(f[4]) == 6 and elements.valid_date(f[4]):
            # YYMMDD was the GS04 format before 004010 and is still sent; noted, not rejected.
            self.group_error("", f"GS04 date {f[4]!r} has a 2-digit year (CCYYMMDD expected)",
                             seg, severity="warning")
        elif not (len(f[4]) == 8 and elements.valid_date(f[4])):
            self.ic_error("024", f"GS04 date {f[4]!r} is not a valid date (CCYYMMDD)", seg)
        if not (4 <= len(f[5]) <= 8 and elements.valid_time(f[5])):
            self.ic_error("024", f"GS05 time {f[5]!r} is not a valid time (HHMM[SS[dd]])", seg)

    def ge(self, seg: Segment) -> None:
        if self.group is None or self.group_closed:
            self.stray(seg, None)
            return
        self.close_group(seg)

    def close_group(self, seg: Segment | None) -> None:
        g = self.group
        assert g is not None
        if self.set is not None:
            self.close_set(None)
        if seg is None:
            self.group_error("3", f"group {g.control_number!r} has no GE trailer")
        else:
            declared = seg.get(1)
            g.declared_set_count = int(declared) if is_digits(declared) else None
            if g.declared_set_count != len(g.sets):
                self.group_error("5", f"GE01 says {declared!r} transaction sets, the group has "
                                 f"{len(g.sets)}", seg)
            if self.trailer_value(seg, 2) != g.control_number:
                self.group_error("4", f"GE02 {seg.get(2)!r} does not match GS06 "
                                 f"{g.control_number!r}", seg)
        self.group_closed = True
        if g.errors:
            g.ack_code = "R"
            for s in g.sets:  # a rejected group rejects every set in it
                s.ack_code = "R"
        elif g.sets and not any(s.accepted for s in g.sets):
            g.ack_code = "R"
        elif any(not s.accepted for s in g.sets):
            g.ack_code = "P"
        elif any(s.ack_code == "E" for s in g.sets):
            g.ack_code = "E"
        else:
            g.ack_code = "A"

    # -- transaction set -------------------------------------------------------------

    def st(self, seg: Segment) -> None:
        if self.group is None or self.group_closed:
            self.stray(seg, None)
            return
        if self.set is not None:
            self.close_set(None)
        g = self.group
        # Interned, like the map name below: a result is kept per set until the file is
        # mapped, and a 100 MB file has 100,000s of sets of the same few ids.
        set_id, control = sys.intern(seg.get(1)), seg.get(2)
        sr = SetResult(set_id=set_id, control_number=control, line=seg.line,
                       file_position=seg.position, implementation=seg.get(3) or None)
        g.sets.append(sr)
        spec, warning = (None, None)
        if set_id:
            try:
                spec, warning = specs.select_map(set_id, g.version, self.ic.version if self.ic
                                                 else "", maps=self.maps)
            except SpecificationError as exc:
                spec, warning = None, f"the map for {set_id} cannot be loaded: {exc}"
        # A version older than the map wrote dates as YYMMDD: accept them when validating
        # against the nearest (newer) map.
        legacy = spec is not None and is_digits(g.version[:6]) and g.version[:6] < "004000"
        # Only a real version of its own can allow what its nearest map does not know.
        nearest = g.version if spec is not None and warning and is_digits(g.version[:6]) else None
        st = _Set(sr, spec, legacy, self.comp, nearest)
        self.set = st
        sr.segment_count = 1
        if spec is not None:
            sr.map_name = sys.intern(spec.map_name)
        if not is_digits(set_id) or len(set_id) != 3:
            st.add(self.set_finding("6", f"ST01 transaction set id {set_id!r} is missing or "
                                    f"invalid", seg))
        elif spec is None:
            st.add(self.set_finding("1", warning or f"transaction set {set_id} is not supported",
                                    seg))
        elif warning:
            st.add(self.set_finding("", warning, seg, severity="warning"))
        if not (is_alnum(control) and 4 <= len(control) <= 9):
            st.add(self.set_finding("7", f"ST02 control number {control!r} must be 4 to 9 "
                                    f"characters", seg))
        elif control in self.set_ids_in_group:
            st.add(self.set_finding("23", f"ST02 control number {control!r} is used by another "
                                    f"set in the same group", seg))
        self.set_ids_in_group.add(control)
        expected = specs.functional_id_for(set_id, self.maps)
        # An implementation guide named in GS08 (004010X357 ...) sets its own GS01, so the
        # pairing is only checked for plain versions.
        if expected and g.functional_id and expected != g.functional_id and len(g.version) <= 6:
            st.add(self.set_finding("18", f"a {set_id} belongs in a group with GS01 {expected}, "
                                    f"not {g.functional_id!r}", seg))
        if spec is not None:
            self.check_elements(st, spec.start, seg, 1)

    def set_finding(self, code: str, message: str, seg: Segment | None,
                    severity: str = "error") -> Finding:
        return Finding("set", code, message, severity=severity,  # type: ignore[arg-type]
                       segment_id=seg.fields[0] if seg else None,
                       line=seg.line if seg else None,
                       file_position=seg.position if seg else None)

    def se(self, seg: Segment) -> None:
        st = self.set
        if st is None:
            self.stray(seg, None)
            return
        st.result.segment_count += 1
        if st.spec is not None:
            self.walk(st, seg)
        self.close_set(seg)

    def close_set(self, seg: Segment | None) -> None:
        st = self.set
        assert st is not None
        sr = st.result
        if seg is None:
            st.add(self.set_finding("2", f"transaction set {sr.control_number!r} has no SE "
                                    f"trailer", None))
        else:
            declared = seg.get(1)
            if declared != str(sr.segment_count) and declared.lstrip("0") != str(sr.segment_count):
                st.add(self.set_finding("4", f"SE01 says {declared!r} segments, the set has "
                                        f"{sr.segment_count} (ST to SE)", seg))
            if self.trailer_value(seg, 2) != sr.control_number:
                st.add(self.set_finding("3", f"SE02 {seg.get(2)!r} does not match ST02 "
                                        f"{sr.control_number!r}", seg))
        if any(f.level in ("segment", "element") and f.severity == "error"
               for f in sr.findings):
            st.add(self.set_finding("5", "one or more segments are in error", None))
        if st.suppressed:
            sr.findings.append(self.set_finding(
                "", f"{st.suppressed} more findings are not listed (the first "
                f"{MAX_FINDINGS_PER_SET} are)", None, severity="warning"))
        sr.ack_code = "R" if st.errors else "A"
        if st.errors and self.lenient and st.spec is not None and not st.suppressed:
            codes = {f.to_dict()["code"] for f in sr.errors} - _SUMMARY_CODES
            if codes and codes <= self.lenient:
                sr.ack_code = "E"  # the partner's agreed leniency: accepted, errors noted
        self.set = None

    # -- inside a set ----------------------------------------------------------------

    def in_set(self, st: _Set, seg: Segment) -> None:
        st.result.segment_count += 1
        if st.spec is None:
            return
        self.walk(st, seg)

    def walk(self, st: _Set, seg: Segment) -> None:
        """Move the state machine by one segment, then check its elements."""
        spec = st.spec
        assert spec is not None
        fields = seg.fields
        sid = fields[0]
        cands = spec.transitions[st.state].get(sid)
        if cands is None:
            self.not_found(st, seg)
            return
        cand = cands[0]
        if cand.key_codes is not None:
            for c in cands:
                if c.key_codes is None:
                    cand = c
                    break
                f = fields[c.key_element] if c.key_element < len(fields) else ""
                if c.key_component:
                    f = f.split(self.comp)[c.key_component - 1]
                if f in c.key_codes:
                    cand = c
                    break
            # No qualifier matched: take the first place anyway, so the element check
            # reports the bad code (AK403 7) instead of a lost segment.
        pos = st.result.segment_count
        t = cand.target
        if cand.missing:
            for m in cand.missing:
                self.missing(st, m, seg, pos)
        counts = st.counts
        loop = cand.enter_loop
        if loop >= 0:
            counts[loop] += 1
            a, b = loop + 1, spec.ends[loop]
            counts[a:b] = st.zeros[a:b]
            counts[t] = 1
            if counts[loop] > spec.max_counts[loop]:
                st.add(self.unknown_to_map(st, self.seg_finding(
                    st, "4", f"loop {spec.ids[loop]} occurs more than "
                    f"{spec.max_counts[loop]} times", seg, pos, t)))
            if spec.usages[loop] == "N":
                st.add(self.seg_finding(st, "2", f"loop {spec.ids[loop]} is not used in this "
                                        f"map", seg, pos, t))
        else:
            counts[t] += 1
            if counts[t] > spec.max_counts[t]:
                st.add(self.unknown_to_map(st, self.seg_finding(
                    st, "5", f"{sid} occurs more than {spec.max_counts[t]} times here", seg,
                    pos, t)))
            if spec.usages[t] == "N":
                st.add(self.seg_finding(st, "2", f"{sid} is not used in this map", seg, pos, t))
        st.state = t
        if sid == "HL":
            self.check_hl(st, seg, pos, t)
        self.check_elements(st, t, seg, pos)

    def check_elements(self, st: _Set, node: int, seg: Segment, pos: int) -> None:
        errs = st.checkers[node](seg.fields, self.comp, self.rep)
        if errs is None:
            return
        spec = st.spec
        assert spec is not None
        failed = False
        for code, epos, cpos, rpos, rule, value, message, severity in errs:
            f = Finding("element", code, message, severity=severity,  # type: ignore[arg-type]
                        segment_position=pos, segment_id=seg.fields[0],
                        element_position=epos, component_position=cpos,
                        repetition_position=rpos, data_element=rule.data_element or None,
                        loop=spec.loop_paths[node], line=seg.line,
                        file_position=seg.position, value=value)
            if code == "3":  # an element past the map's last: the set's version may have it
                f = self.unknown_to_map(st, f)
            st.add(f)
            failed = failed or f.severity == "error"
        if failed:
            # AK304 8 after its AK4 notes: the segment note the acks print for them.
            st.add(self.seg_finding(st, "8", f"{seg.fields[0]} has data element errors", seg,
                                    pos, node))

    def seg_finding(self, st: _Set, code: str, message: str, seg: Segment, pos: int,
                    node: int | None, segment_id: str | None = None) -> Finding:
        spec = st.spec
        loop = spec.loop_paths[node] if spec is not None and node is not None else None
        return Finding("segment", code, message, segment_position=pos,
                       segment_id=segment_id or seg.fields[0], loop=loop, line=seg.line,
                       file_position=seg.position)

    def missing(self, st: _Set, node: int, seg: Segment, pos: int) -> None:
        spec = st.spec
        assert spec is not None
        if spec.kinds[node] == "loop":
            first = spec.first_segment[node]
            sid = spec.ids[first] if first >= 0 else spec.ids[node]
            msg = (f"mandatory loop {spec.ids[node]} ({spec.names[node]}) is missing before "
                   f"{seg.fields[0]}")
        else:
            sid = spec.ids[node]
            msg = f"mandatory segment {sid} ({spec.names[node]}) is missing before {seg.fields[0]}"
        st.add(self.seg_finding(st, "3", msg, seg, pos, node, segment_id=sid))

    def not_found(self, st: _Set, seg: Segment) -> None:
        """A segment with no place from here: report it and stay where we were (as pyx12)."""
        spec = st.spec
        assert spec is not None
        sid = seg.fields[0]
        pos = st.result.segment_count
        malformed = not (2 <= len(sid) <= 3 and set(sid) <= _SEGMENT_ID_OK and sid[0].isalpha())
        if malformed:
            code, msg = "1", f"{sid!r} is not a segment id"
        elif sid not in spec.segment_ids:
            if sid in self.folder.known_segment_ids:
                code, msg = "6", f"{sid} is not part of a {spec.set_id} transaction set"
            else:
                code, msg = "1", f"{sid} is not a segment id known to the maps"
        elif sid in spec.earlier_ids[st.state]:
            code, msg = "7", (f"{sid} is out of sequence: it belongs before "
                              f"{spec.ids[st.state]}")
        else:
            code, msg = "2", f"{sid} is not expected after {spec.ids[st.state]}"
        f = self.seg_finding(st, code, msg, seg, pos, st.state)
        st.add(f if malformed else self.unknown_to_map(st, f))

    @staticmethod
    def unknown_to_map(st: _Set, f: Finding) -> Finding:
        """A finding about what the map does not know (a segment, its place or count, an
        element past the last): a warning naming the version when the map is only the
        nearest one, since the set's own version may allow it; the finding as it is else."""
        if st.nearest is None or st.spec is None:
            return f
        f.severity = "warning"
        f.message += (f" (version {st.nearest} is validated against the nearest map, "
                      f"{st.spec.map_name}; that version may allow it: not rejected)")
        return f

    def check_hl(self, st: _Set, seg: Segment, pos: int, node: int) -> None:
        """856 hierarchy: HL01 unique and increasing, HL02 a parent already seen, HL03 set."""
        hl01, hl02, hl03 = seg.get(1), seg.get(2), seg.get(3)
        spec = st.spec
        assert spec is not None
        problems = []
        if hl01:
            if hl01 in st.hl_ids:
                problems.append((1, hl01, f"HL01 id {hl01!r} is used twice in this set "
                                 "(reported as code 7, invalid value)"))
            elif is_digits(hl01) and int(hl01) <= st.hl_last:
                problems.append((1, hl01, f"HL01 id {hl01!r} does not increase (the previous "
                                 f"was {st.hl_last}; reported as code 7, invalid value)"))
            st.hl_ids.add(hl01)
            if is_digits(hl01):
                st.hl_last = max(st.hl_last, int(hl01))
        if len(hl01) > 12 or not is_alnum(hl01):  # element 628 is AN 1/12
            st.hl_unsure = True
        if hl02 and (hl02 == hl01 or (hl02 not in st.hl_ids and not st.hl_unsure)):
            problems.append((2, hl02, f"HL02 parent id {hl02!r} is not an HL seen before this "
                             "one (reported as code 7, invalid value)"))
        key = (id(spec), node)  # specs outlive a validation, so their id is a stable key
        required = self.hl03_required.get(key)
        if required is None:
            rule = spec.rules[node]
            required = rule is not None and any(r.seq == 3 and r.usage == "R"
                                                for r in rule.elements)
            self.hl03_required[key] = required
        if not hl03 and not required:  # the map's own check reports it otherwise
            problems.append((3, None, "HL03 hierarchical level code is required but empty"))
        if not problems:
            return
        st.add(self.seg_finding(st, "8", "HL has data element errors", seg, pos, node))
        for epos, value, message in problems:
            st.add(Finding("element", "1" if epos == 3 else "7", message, segment_position=pos,
                           segment_id="HL", element_position=epos,
                           data_element={1: "628", 2: "734", 3: "735"}[epos],
                           loop=spec.loop_paths[node], line=seg.line,
                           file_position=seg.position, value=value))
