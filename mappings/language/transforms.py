"""Value transforms: dates, times, implied decimals, numbers, trimming, code tables.

Each builder returns a plain function of one value, chosen once at compile time; a
function raises TransformError with a sentence the analyst can act on, and the compiled
field adds the mapping key and the source position.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

Transform = Callable[[Any], Any]

# YYMMDD: years 00-49 are 20xx, 50-99 are 19xx (the usual X12 window).
CENTURY_PIVOT = 50
# [0-9], not \d: \d also matches Arabic-Indic and other Unicode digits, which no
# partner format means and no ERP expects.
_DECIMAL = re.compile(r"^([+-]?)([0-9]*)(?:\.([0-9]*))?$")
_DIGITS = re.compile(r"^[0-9]+$")
_US_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


class TransformError(ValueError):
    """A source value that a transform cannot convert."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _iso(year: int, month: int, day: int, raw: str) -> str:
    try:
        return datetime.date(year, month, day).isoformat()
    except ValueError:
        raise TransformError(f"{raw!r} is not a calendar date") from None


def date(fmt: str) -> Transform:
    """CCYYMMDD, YYMMDD or auto (by length) to ISO YYYY-MM-DD."""
    def convert(value: Any) -> str:
        raw = _text(value).strip()
        if fmt == "MM/DD/CCYY":  # US spreadsheets and portals
            m = _US_DATE.match(raw)
            if not m:
                raise TransformError(f"{raw!r} is not a date (MM/DD/CCYY)")
            return _iso(int(m.group(3)), int(m.group(1)), int(m.group(2)), raw)
        if not _DIGITS.match(raw):
            raise TransformError(f"{raw!r} is not a date ({fmt}): digits expected")
        n = len(raw)
        if n == 8 and fmt in ("CCYYMMDD", "auto"):
            return _iso(int(raw[:4]), int(raw[4:6]), int(raw[6:]), raw)
        if n == 6 and fmt in ("YYMMDD", "auto"):
            yy = int(raw[:2])
            return _iso((2000 if yy < CENTURY_PIVOT else 1900) + yy, int(raw[2:4]), int(raw[4:]),
                        raw)
        raise TransformError(f"{raw!r} is not a date in {fmt} ({n} digits)")
    return convert


def time(fmt: str) -> Transform:
    """HHMM, HHMMSS or auto (HHMM[SS[d..]]) to HH:MM[:SS[.d..]]."""
    def convert(value: Any) -> str:
        raw = _text(value).strip()
        n = len(raw)
        ok = _DIGITS.match(raw) and (n == 4 if fmt == "HHMM" else n == 6 if fmt == "HHMMSS"
                                     else n in (4, 6) or 7 <= n <= 8)
        if not ok:
            raise TransformError(f"{raw!r} is not a time ({fmt})")
        hh, mm = int(raw[:2]), int(raw[2:4])
        if hh > 23 or mm > 59 or (n >= 6 and int(raw[4:6]) > 59):
            raise TransformError(f"{raw!r} is not a time of day")
        out = f"{raw[:2]}:{raw[2:4]}"
        if n >= 6:
            out += f":{raw[4:6]}"
        if n > 6:
            out += f".{raw[6:]}"
        return out
    return convert


def _normal(sign: str, whole: str, frac: str | None, raw: str) -> str:
    """A canonical decimal string: no plus sign, no leading zeros, no '-0'."""
    if not whole and not frac:
        raise TransformError(f"{raw!r} is not a number")
    whole = whole.lstrip("0") or "0"
    out = whole + (f".{frac}" if frac else "")
    if sign == "-" and out.strip("0.") != "":
        out = "-" + out
    return out


def number(value: Any) -> str:
    """A decimal string as the canonical schemas want it ("048.50" -> "48.50")."""
    if value.__class__ is str and value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"  # the common case, kept off the regex
    if isinstance(value, bool):
        raise TransformError(f"{value!r} is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _normal(*_parts(repr(value)), repr(value))
    raw = _text(value).strip().replace(",", "") if isinstance(value, str) else str(value)
    return _normal(*_parts(raw), raw)


def _parts(raw: str) -> tuple[str, str, str | None]:
    m = _DECIMAL.match(raw)
    if not m:
        raise TransformError(f"{raw!r} is not a number")
    return m.group(1), m.group(2), m.group(3)


def implied_decimal(places: int) -> Transform:
    """X12 Nn: "12345" with N2 is 123.45; a value that has its own point is kept as sent."""
    def convert(value: Any) -> str:
        raw = _text(value).strip()
        sign, digits, frac = _parts(raw)
        if frac is not None or places == 0:
            return _normal(sign, digits, frac, raw)
        if not digits:
            raise TransformError(f"{raw!r} is not a number")
        digits = digits.rjust(places + 1, "0")
        return _normal(sign, digits[:-places], digits[-places:], raw)
    return convert


def integer(value: Any) -> int:
    raw = _text(value).strip()
    if not _INTEGER.match(raw):  # int() would take "\u0663" or "1_000"
        raise TransformError(f"{raw!r} is not a whole number")
    return int(raw)


def table(codes: Mapping[str, Any], name: str, *, strict: bool, unknown: Any = None) -> Transform:
    """Look a code up; unknown codes raise (strict), become `unknown`, or pass through."""
    miss = object()

    def convert(value: Any) -> Any:
        found = codes.get(value, miss) if value.__class__ is str else miss
        if found is not miss:
            return found
        key = _text(value)
        if key in codes:
            return codes[key]
        if strict:
            shown = ", ".join(sorted(codes)[:12]) + (", ..." if len(codes) > 12 else "")
            raise TransformError(f"code {key!r} is not in table {name} ({shown})")
        return value if unknown is None else unknown
    return convert


def extract(pattern: str) -> Transform:
    """The part of the value a regular expression's first group matches (the whole match
    when it has no group); no value when it does not match the whole value."""
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise TransformError(f"not a regular expression: {exc}") from None

    def convert(value: Any) -> Any:
        m = rx.fullmatch(_text(value))
        if m is None:
            return None
        return m.group(1) if rx.groups else m.group(0)
    return convert


def _gs1_ok(digits: str) -> bool:
    body = [int(c) for c in digits[:-1]]
    # GS1: weights 3,1,3,... from the digit next to the check digit leftwards.
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == int(digits[-1])


def check_digit(kind: str) -> Transform:
    """The value only when its last digit checks (gs1: GTIN, SSCC, GLN mod 10); else none."""
    if kind != "gs1":
        raise ValueError(f"unknown check digit scheme {kind!r}")

    def convert(value: Any) -> Any:
        raw = _text(value)
        return raw if len(raw) > 1 and _DIGITS.match(raw) and _gs1_ok(raw) else None
    return convert


def chain(steps: list[Transform]) -> Transform | None:
    """One function applying `steps` in order (None when there are none); a step that gives
    no value (extract, check_digit) ends the chain with none."""
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]
    if len(steps) == 2:
        a, b = steps
        return lambda v: None if (x := a(v)) is None else b(x)
    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
            if value is None:
                return None
        return value
    return run
