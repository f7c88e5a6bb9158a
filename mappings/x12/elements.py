"""Per-segment element checkers, built once from a SegmentRule and called per segment.

Each element gets a fast test (one regex fullmatch, a frozenset lookup or a small date or
time function) that accepts good values; only a value that fails it goes through the slow
diagnosis that names the exact AK403 code. A checker returns None for a clean segment,
else a list of raw errors (code, element, component, repetition, rule, value, message,
severity) that the validator turns into Findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from mappings.x12.charset import is_digits
from mappings.x12.specs import ElementRule, SegmentRule

# X12 basic + extended character set, as pyx12 checks it ("E"); 5010 adds ^ and `.
_CHARS_4010 = r"""A-Z0-9!"&'()*+,\-./:;?= a-z%~@\[\]_{}\\|<>#$"""
_CHARS_5010 = _CHARS_4010 + r"^`"

_LITERAL_4010 = ("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"
                 "!\"&'()*+,-./:;?= %~@[]_{}\\|<>#$")
_LITERAL_5010 = _LITERAL_4010 + "^`"

RawError = tuple[str, int, int | None, int | None, ElementRule, str | None, str, str]
# Added to a finding that rests only on a fact spec/ marks unverified (it is then a warning).
UNVERIFIED_NOTE = " (the spec marks this fact unverified: a warning, not an error)"


def _severity(soft: bool, message: str, severity: str) -> tuple[str, str]:
    """A finding's message and severity, softened when its fact is unverified."""
    if soft and severity == "error":
        return message + UNVERIFIED_NOTE, "warning"
    return message, severity
Checker = Callable[[list[str], str, "str | None"], "list[RawError] | None"]


def label(rule: ElementRule) -> str:
    """How a message names an element: BEG03 (Purchase Order Number, element 324)."""
    return f"{rule.ref} ({rule.name}, element {rule.data_element})"


def valid_date(value: str) -> bool:
    """CCYYMMDD or YYMMDD, a real calendar date."""
    n = len(value)
    if n not in (6, 8) or not is_digits(value):
        return False
    if n == 6:
        year = int(value[:2])
        year += 2000 if year < 50 else 1900
        month, day = int(value[2:4]), int(value[4:6])
    else:
        year, month, day = int(value[:4]), int(value[4:6]), int(value[6:8])
    if month < 1 or month > 12 or day < 1:
        return False
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return day <= (29 if leap else 28)
    return day <= (30 if month in (4, 6, 9, 11) else 31)


def valid_time(value: str) -> bool:
    """HHMM, HHMMSS or HHMMSSd..d (decimal seconds up to two digits)."""
    n = len(value)
    if n not in (4, 6, 7, 8) or not is_digits(value):
        return False
    if value[:2] > "23" or value[2:4] > "59":
        return False
    return n == 4 or value[4:6] <= "59"


def _fast(rule: ElementRule, chars: str) -> Callable[[str], object]:
    """A test that is truthy for values needing no further look."""
    lo, hi = rule.min_len, rule.max_len
    bounds = f"{{{lo},{hi if hi < 10**9 else ''}}}"
    if rule.codes is not None:
        codes = rule.codes
        if rule.regex:
            rx = re.compile(rule.regex, re.S)
            return lambda v: v in codes and rx.search(v)
        return codes.__contains__
    t = rule.type
    if rule.regex:
        return lambda v: False  # rare: always take the slow path, which applies the regex
    if t.startswith("N"):
        return re.compile(rf"-?[0-9]{bounds}").fullmatch
    if t == "R":
        return re.compile(rf"-?(?=\.?(?:[0-9]\.?){bounds}\Z)[0-9]*(?:\.[0-9]+)?").fullmatch
    if t == "DT":
        return lambda v: lo <= len(v) <= hi and valid_date(v)
    if t == "TM":
        return lambda v: lo <= len(v) <= hi and valid_time(v)
    if t == "B":
        return lambda v: True
    # AN and ID: allowed characters, length, no trailing space (checked in the slow path).
    return re.compile(rf"[{chars}]{bounds}(?<! )", re.S).fullmatch


def diagnose(rule: ElementRule, value: str, chars_rx: re.Pattern[str]) -> list[tuple[str, str, str]]:
    """Why a value failed its fast test: [(code, message, severity)]."""
    out: list[tuple[str, str, str]] = []
    name = label(rule)
    t = rule.type
    bad = chars_rx.search(value)
    if bad:
        out.append(("6", f"{name} contains the character {bad.group(0)!r}, which is not in "
                    f"the X12 character set", "error"))
        return out
    numeric = t.startswith("N") or t == "R"
    measured = len(value.replace("-", "").replace(".", "")) if numeric else len(value)
    if measured < rule.min_len:
        out.append(("4", f"{name} is too short: {value!r} has {measured} characters, at least "
                    f"{rule.min_len} required", "error"))
    if measured > rule.max_len:
        out.append(("5", f"{name} is too long: {value!r} has {measured} characters, at most "
                    f"{rule.max_len} allowed", "error"))
    if rule.codes is not None and value not in rule.codes:
        shown = ", ".join(sorted(rule.codes)[:12]) + (", ..." if len(rule.codes) > 12 else "")
        out.append(("7", f"{name} has {value!r}, which is not one of its codes ({shown})",
                    "error"))
    if t.startswith("N"):
        if not re.fullmatch(r"-?[0-9]+", value):
            out.append(("6", f"{name} must be a whole number (type {t}), not {value!r}", "error"))
    elif t == "R":
        if not re.fullmatch(r"-?[0-9]*(?:\.[0-9]+)?", value) or value in ("", "-"):
            out.append(("6", f"{name} must be a decimal number, not {value!r}", "error"))
    elif t == "DT":
        if not valid_date(value):
            out.append(("8", f"{name} is not a valid date (CCYYMMDD): {value!r}", "error"))
    elif t == "TM":
        if not valid_time(value):
            out.append(("9", f"{name} is not a valid time (HHMM[SS[dd]]): {value!r}", "error"))
    elif t in ("AN", "ID") and value.endswith(" ") and len(value.rstrip()) >= rule.min_len:
        # pyx12 rejects this; X12 only says trailing spaces should be suppressed.
        out.append(("6", f"{name} has trailing spaces: {value!r}", "warning"))
    if rule.regex and not re.search(rule.regex, value, re.S):
        out.append(("7", f"{name} {value!r} does not match the pattern {rule.regex!r}", "error"))
    return out


def _fast_pattern(rule: ElementRule, chars: str) -> str | None:
    """A regex accepting exactly the clean values of a simple element, or None."""
    lo, hi = rule.min_len, rule.max_len
    bounds = f"{{{lo},{hi if hi < 10**9 else ''}}}"
    t = rule.type
    if rule.regex:
        return None
    if t.startswith("N"):
        return rf"-?[0-9]{bounds}"
    if t == "R":
        return rf"-?(?=\.?(?:[0-9]\.?){bounds}\Z)[0-9]*(?:\.[0-9]+)?"
    if t == "DT":
        # Every real date but 29 February, which the slow path checks for a leap year.
        md = (r"(?:(?:0[13578]|1[02])(?:0[1-9]|[12][0-9]|3[01])"
              r"|(?:0[469]|11)(?:0[1-9]|[12][0-9]|30)|02(?:0[1-9]|1[0-9]|2[0-8]))")
        years = [y for n, y in ((6, "[0-9]{2}"), (8, "[0-9]{4}")) if lo <= n <= hi]
        return f"(?:{'|'.join(years)}){md}" if years else None
    if t == "TM":
        return rf"(?=[0-9]{bounds}\Z)(?:[01][0-9]|2[0-3])[0-5][0-9](?:[0-5][0-9][0-9]{{0,2}})?"
    if t == "B":
        return r"(?s:.*)"
    return rf"[{chars}]{bounds}(?<! )"


def make_fast_checker(rule: SegmentRule, extended_5010: bool, legacy: bool,
                      comp: str) -> Checker:
    """A checker generated as straight-line Python for one segment node and one component
    separator: it only decides "clean"; anything else goes to the detailed checker."""
    detailed: list[Checker] = []

    def slow(fields: list[str], comp: str, rep: str | None) -> list[RawError] | None:
        # Built on the first segment that is not clean: most nodes never need it, and
        # building it compiles a pattern per element.
        if not detailed:
            detailed.append(make_checker(original, extended_5010, legacy))
        return detailed[0](fields, comp, rep)

    original = rule
    if legacy:
        rule = replace(rule, elements=tuple(_legacy(r) for r in rule.elements))
    # The component separator is never data in a simple element: leave it out of the set.
    allowed = _LITERAL_5010 if extended_5010 else _LITERAL_4010
    chars = "".join("\\" + c if c in "\\]^-[" else c for c in allowed if c != comp)
    last = max((r.seq for r in rule.elements), default=0)
    env: dict[str, object] = {"slow": slow}
    lines = ["def check(fields, comp, rep):", "    n = len(fields)",
             f"    if n > {last + 1}: return slow(fields, comp, rep)",
             f"    f = fields if n == {last + 1} else fields + PAD[:{last + 1} - n]"]
    env["PAD"] = [""] * (last + 1)
    for r in rule.elements:
        i = r.seq
        v = f"f[{i}]"
        if r.usage == "N":
            lines.append(f"    if {v}: return slow(fields, comp, rep)")
            continue
        if r.components is not None or r.repeat > 1:
            # composites and repeating elements: rare, checked in detail when present
            test = f"    if {v}: return slow(fields, comp, rep)"
            lines.append(test if r.usage != "R" else
                         "    return slow(fields, comp, rep)")
            continue
        if r.codes is not None and not r.regex:
            env[f"c{i}"] = r.codes
            ok = f"{v} in c{i}"
        else:
            pattern = _fast_pattern(r, chars)
            if pattern is None:
                lines.append(f"    if {v} or {r.usage == 'R'}: return slow(fields, comp, rep)")
                continue
            env[f"m{i}"] = re.compile(pattern).fullmatch
            ok = f"m{i}({v})"
        if r.usage == "R":
            lines.append(f"    if not {v} or not {ok}: return slow(fields, comp, rep)")
        else:
            lines.append(f"    if {v} and not {ok}: return slow(fields, comp, rep)")
    for kind, idx in rule.syntax:
        present = [f"(f[{i}] != '')" for i in idx]
        if kind == "P":
            lines.append(f"    x = {' + '.join(present)}")
            lines.append(f"    if x and x != {len(idx)}: return slow(fields, comp, rep)")
        elif kind == "R":
            lines.append(f"    if not ({' or '.join(f'f[{i}]' for i in idx)}): "
                         "return slow(fields, comp, rep)")
        elif kind == "E":
            lines.append(f"    if {' + '.join(present)} > 1: return slow(fields, comp, rep)")
        elif kind == "C":
            lines.append(f"    if f[{idx[0]}] and not ({' and '.join(f'f[{i}]' for i in idx[1:])}):"
                         " return slow(fields, comp, rep)")
        elif kind == "L":
            lines.append(f"    if f[{idx[0]}] and not ({' or '.join(f'f[{i}]' for i in idx[1:])}):"
                         " return slow(fields, comp, rep)")
    lines.append("    return None")
    exec(compile("\n".join(lines), f"<x12 checker {rule.id}>", "exec"), env)
    return env["check"]  # type: ignore[return-value]


def make_checker(rule: SegmentRule, extended_5010: bool, legacy: bool = False) -> Checker:
    """The element checker of one segment node; `legacy` accepts YYMMDD in DT elements."""
    chars = _CHARS_5010 if extended_5010 else _CHARS_4010
    chars_rx = re.compile(rf"[^{chars}]", re.S)
    items = []
    if legacy:
        rule = replace(rule, elements=tuple(_legacy(r) for r in rule.elements))
    for r in rule.elements:
        comps = None
        if r.components is not None:
            comps = tuple((c, _fast(c, chars)) for c in r.components)
        items.append((r.seq, r, None if comps else _fast(r, chars), comps))
    items_t = tuple(items)
    last = max((r.seq for r in rule.elements), default=0)
    syntax = rule.syntax
    by_seq = {r.seq: r for r in rule.elements}
    seg_id = rule.id

    def one(errs: list[RawError], r: ElementRule, fast: Callable[[str], object], v: str,
            pos: int, comp_pos: int | None, rep_pos: int | None, comp: str) -> None:
        if fast(v) and comp not in v:
            return
        if comp in v:
            errs.append(("6", pos, comp_pos, rep_pos, r, v,
                         f"{label(r)} contains the component separator {comp!r} but is not a "
                         f"composite", "error"))
            return
        # A character outside the X12 set is wrong whatever the element's facts are.
        soft = r.unverified and chars_rx.search(v) is None
        for code, msg, sev in diagnose(r, v, chars_rx):
            msg, sev = _severity(soft, msg, sev)
            errs.append((code, pos, comp_pos, rep_pos, r, v, msg, sev))

    def composite(errs: list[RawError], r: ElementRule, comps: tuple, v: str, pos: int,
                  rep_pos: int | None, comp: str) -> None:
        parts = v.split(comp)
        if len(parts) > len(comps) and any(parts[len(comps):]):
            errs.append(("13", pos, len(comps) + 1, rep_pos, r, v, *_severity(
                r.unverified, f"{label(r)} has {len(parts)} components, at most {len(comps)} "
                f"allowed", "error")))
        for k, (c, fast) in enumerate(comps, 1):
            pv = parts[k - 1] if k <= len(parts) else ""
            if not pv:
                if c.usage == "R":
                    errs.append(("1", pos, k, rep_pos, c, None, *_severity(
                        c.unverified, f"{label(c)} is required in {r.ref} but empty", "error")))
                continue
            if c.usage == "N":
                errs.append(("10", pos, k, rep_pos, c, pv,
                             f"{label(c)} is not used in this map but has {pv!r}", "error"))
                continue
            one(errs, c, fast, pv, pos, k, rep_pos, "\x00")

    def check(fields: list[str], comp: str, rep: str | None) -> list[RawError] | None:
        errs: list[RawError] = []
        n = len(fields)
        if n - 1 > last:
            extra = next((i for i in range(last + 1, n) if fields[i]), None)
            if extra is not None:
                errs.append(("3", extra, None, None, _EXTRA, fields[extra], *_severity(
                    rule.unverified, f"{seg_id} has {n - 1} elements, at most {last} allowed "
                    f"({seg_id}{extra:02d} is extra)", "error")))
        for seq, r, fast, comps in items_t:
            v = fields[seq] if seq < n else ""
            if not v:
                if r.usage == "R":
                    errs.append(("1", seq, None, None, r, None, *_severity(
                        r.unverified, f"{label(r)} is required but empty", "error")))
                continue
            if r.usage == "N":
                errs.append(("10", seq, None, None, r, v,
                             f"{label(r)} is not used in this map but has {v!r}", "error"))
                continue
            # A non-repeating element keeps the repetition character as data (4060 files
            # declare '-' and still write ZIP+4 codes with it).
            if rep is not None and r.repeat > 1 and rep in v:
                reps = v.split(rep)
                if len(reps) > r.repeat:
                    errs.append(("12", seq, None, None, r, v, *_severity(
                        r.unverified, f"{label(r)} repeats {len(reps)} times, at most "
                        f"{r.repeat} allowed", "error")))
                    continue
            else:
                reps = None
            if reps is None:
                if comps is None:
                    one(errs, r, fast, v, seq, None, None, comp)  # type: ignore[arg-type]
                else:
                    composite(errs, r, comps, v, seq, None, comp)
            else:
                for k, rv in enumerate(reps, 1):
                    if not rv:
                        continue
                    if comps is None:
                        one(errs, r, fast, rv, seq, None, k, comp)  # type: ignore[arg-type]
                    else:
                        composite(errs, r, comps, rv, seq, k, comp)
        for kind, idx in syntax:
            present = [i < n and fields[i] != "" for i in idx]
            bad = _syntax_error(kind, idx, present)
            if bad is not None:
                pos, msg = bad
                r = by_seq.get(pos, _EXTRA)
                code = "10" if kind == "E" else "2"
                names = ", ".join(f"{seg_id}{i:02d}" for i in idx)
                soft = rule.unverified or (kind, idx) in rule.soft_syntax
                errs.append((code, pos, None, None, r, fields[pos] if pos < n else None,
                             *_severity(soft, f"{seg_id}{pos:02d}: {msg} (syntax note {kind}"
                                        f"{''.join(f'{i:02d}' for i in idx)}: {names})",
                                        "error")))
        return errs or None

    return check


def _syntax_error(kind: str, idx: tuple[int, ...],
                  present: list[bool]) -> tuple[int, str] | None:
    """(element position, reason) when a syntax note is broken, else None."""
    count = sum(present)
    if kind == "P" and 0 < count < len(idx):
        pos = idx[present.index(False)]
        return pos, "is required because the other elements of its pair are present"
    if kind == "R" and count == 0:
        return idx[0], "at least one of these elements is required"
    if kind == "E" and count > 1:
        second = [i for i, p in zip(idx, present, strict=True) if p][1]
        return second, "may not be present together with the others (exclusion)"
    if kind == "C" and present[0] and count < len(idx):
        pos = idx[1 + present[1:].index(False)]
        return pos, f"is required because element {idx[0]:02d} is present"
    if kind == "L" and present[0] and count == 1:
        return idx[1], f"one of these is required because element {idx[0]:02d} is present"
    return None


def _legacy(r: ElementRule) -> ElementRule:
    if r.components is not None:
        return replace(r, components=tuple(_legacy(c) for c in r.components))
    if r.type == "DT" and r.min_len == 8:
        return replace(r, min_len=6)
    return r


_EXTRA = ElementRule("", 0, "", "extra element", "AN", 0, 0, "N")
