"""Outbound mappings (`direction: outbound`): canonical data -> the segments of an X12 set.

The same file format and the same compiler as inbound mappings, run the other way. The
selectors are JSON paths into the canonical `data` (`po_number`, `lines`, `quantity/value`);
each element of a segment is a field as in an inbound mapping (path, const, first,
concat, when, table, default, required), and three transforms write instead of read:
`date: CCYYMMDD` turns an ISO date into X12, `time: HHMM` an ISO time, `decimal: 2` a
decimal into X12 implied decimals (N2: 25.00 -> 2500). `count: true` gives the length
of a list, `sum: true` the sum of the decimals a wildcard path reaches.

`reverse_of:` names the inbound mapping this one writes back: its tables are available
here reversed (canonical value -> its first code), so `table: purpose` turns `original`
into `00`; a table of the same name in this file adds or overrides codes.
See docs/mapping-language.md, "Outbound mappings".
"""

from __future__ import annotations

import decimal
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonical.errors import MappingFileError
from mappings.language import extends, schema, transforms
from mappings.language.compiler import Compiler
from mappings.language.sources import JsonSource
from mappings.language.transforms import TransformError
from mappings.language.yaml_source import Marks, Path_, mark_of
from mappings.sources.json_doc import Scope, elements, parse_path

ELEMENT = re.compile(r"^([A-Z][A-Z0-9]{1,2})([0-9]{2})$")
LABEL = re.compile(r"^([A-Z][A-Z0-9]{1,2})(?:_[A-Za-z0-9_]+)?$")
_SEGMENT_KEYS = frozenset({"description", "each", "when", "skip_unless", "before", "segments",
                           "pairs"})
# Keys an outbound element handles itself: they write, where the inbound ones read.
_WRITE_KEYS = ("date", "time", "decimal", "count", "sum")

# (segment id, element values by position from 1); None is an empty element.
Written = tuple[str, list[str | None]]
Element = Callable[[Scope], str | None]


@dataclass
class _Segment:
    label: str
    seg_id: str
    each: Callable[[Scope], list[Scope]] | None
    guard: Callable[[Scope], bool] | None
    elements: list[tuple[int, Element]]
    pairs: tuple[int, int, Callable[[Scope], list[Scope]], Element, Element] | None
    needed: tuple[int, ...]
    children: list[_Segment] = field(default_factory=list)


@dataclass
class OutboundMapping:
    """Call `segments(data)` to get the body of one transaction set (no ST/SE)."""

    name: str
    file: str
    files: list[str]
    format: str
    document: str
    version: str
    event: str | None
    definition: dict[str, Any]
    _body: list[_Segment] = field(repr=False, default_factory=list)

    def segments(self, data: dict[str, Any]) -> list[Written]:
        out: list[Written] = []
        _emit(self._body, Scope(data, ""), out)
        return out


def _emit(segs: list[_Segment], scope: Scope, out: list[Written]) -> None:
    for seg in segs:
        for item in (seg.each(scope) if seg.each else [scope]):
            if seg.guard is not None and not seg.guard(item):
                continue
            values: dict[int, str | None] = {pos: fn(item) for pos, fn in seg.elements}
            if seg.pairs is not None:
                first, last, each, qual, val = seg.pairs
                pos = first
                for pair in each(item):
                    q, v = qual(pair), val(pair)
                    if q is None or v is None:
                        continue
                    if pos + 1 > last:
                        break  # more identifiers than the segment has room for
                    values[pos], values[pos + 1] = q, v
                    pos += 2
            if seg.needed and any(values.get(p) is None for p in seg.needed):
                continue
            if not any(v is not None for v in values.values()):
                continue
            width = max(p for p, v in values.items() if v is not None)
            out.append((seg.seg_id, [values.get(p) for p in range(1, width + 1)]))
            _emit(seg.children, item, out)


def _x12_date(fmt: str) -> transforms.Transform:
    def convert(value: Any) -> str:
        raw = transforms._text(value).strip()
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            raise TransformError(f"{raw!r} is not an ISO date (YYYY-MM-DD)")
        digits = raw.replace("-", "")
        transforms.date("CCYYMMDD")(digits)  # raises when it is not a calendar date
        return digits[2:] if fmt == "YYMMDD" else digits
    return convert


def _x12_time(fmt: str) -> transforms.Transform:
    def convert(value: Any) -> str:
        raw = transforms._text(value).strip()
        m = re.fullmatch(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?(?:\.[0-9]+)?", raw)
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise TransformError(f"{raw!r} is not an ISO time (HH:MM[:SS])")
        out = m.group(1) + m.group(2)
        if fmt == "HHMMSS" or (fmt == "auto" and m.group(3)):
            out += m.group(3) or "00"
        return out
    return convert


def _implied(places: int) -> transforms.Transform:
    def convert(value: Any) -> str:
        try:
            d = decimal.Decimal(transforms.number(value))
        except (TransformError, decimal.InvalidOperation):
            raise TransformError(f"{value!r} is not a number") from None
        scaled = d.scaleb(places)
        if scaled != scaled.to_integral_value():
            raise TransformError(f"{value!r} has more than {places} decimal places")
        return str(int(scaled))
    return convert


def _plain(value: Any) -> str:
    """A decimal or number as X12 R: no exponent, no trailing '.0'."""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float):
        return transforms.number(value)
    return str(value)


class _Builder:
    """Segments and elements compiled with the inbound compiler's fields and messages."""

    def __init__(self, compiler: Compiler) -> None:
        self.c = compiler

    def element(self, spec: Any, path: Path_) -> Element:
        """One element: a field compiled by the inbound compiler, then the write transforms."""
        if isinstance(spec, str):
            spec = {"path": spec}
        if not isinstance(spec, dict):
            raise self.c.fail(path, "expected a JSON path or a field object")
        writes: list[transforms.Transform] = []
        if spec.get("date"):
            writes.append(_x12_date(spec["date"]))
        if spec.get("time"):
            writes.append(_x12_time(spec["time"]))
        if "decimal" in spec and spec["decimal"] is not False:
            writes.append(_implied(int(spec["decimal"])))
        count, total = bool(spec.get("count")), bool(spec.get("sum"))
        rest = {k: v for k, v in spec.items() if k not in _WRITE_KEYS}
        if "first" in rest:
            extra = sorted(set(rest) - {"first", "default", "required", "when", "description"})
            if extra:
                raise self.c.fail(path, f"{', '.join(extra)}: beside first:, put transforms "
                                        "on the alternatives")
            alts = [self.element(a, (*path, "first", i)) for i, a in enumerate(rest["first"])]
            default, required = rest.get("default"), bool(rest.get("required"))
            runtime_ = self.c.runtime

            def first(scope: Scope) -> Any:
                for a in alts:
                    v = a(scope)
                    if v is not None:
                        return v
                if default is None and required:
                    raise runtime_(path, "no value", f"JSON path {scope.path or '/'}")
                return default

            get: Callable[[Scope], Any] = first
            if "when" in rest:
                get = self.c.guarded(get, rest["when"], (*path, "when"))
        else:
            get = self.c.field(rest, path)
        conv = transforms.chain(writes)
        runtime = self.c.runtime

        def element(scope: Scope) -> str | None:
            v = get(scope)
            if count:
                v = len(v) if isinstance(v, list) else (None if v is None else 1)
            elif total and v is not None:
                items = v if isinstance(v, list) else [v]
                try:
                    v = transforms.number(str(sum(decimal.Decimal(transforms.number(x))
                                                  for x in items)))
                except (TransformError, decimal.InvalidOperation):
                    raise runtime(path, f"{v!r}: not numbers to add up",
                                  f"JSON path {scope.path or '/'}") from None
            if v is None or v == "":
                return None
            if conv is not None:
                try:
                    v = conv(v)
                except TransformError as exc:
                    raise runtime(path, str(exc), f"JSON path {scope.path or '/'}") from None
            return _plain(v)

        return element

    def each(self, text: str, path: Path_) -> Callable[[Scope], list[Scope]]:
        steps = parse_path(text)
        if not steps:
            raise self.c.fail(path, "each: needs a JSON path to a list")
        return lambda scope: elements(scope, steps)

    def segments(self, specs: dict[str, Any] | None, path: Path_) -> list[_Segment]:
        built: list[_Segment] = []
        order: list[str] = []
        for label, spec in (specs or {}).items():
            if spec is None:
                continue  # removed by a partner file
            where = (*path, label)
            m = LABEL.match(label)
            if not m:
                raise self.c.fail(where, "a segment's key is its id, optionally with a "
                                         "_suffix (REF, REF_vendor)")
            seg_id = m.group(1)
            elems: list[tuple[int, Element]] = []
            for key, value in spec.items():
                em = ELEMENT.match(key)
                if em:
                    if em.group(1) != seg_id:
                        raise self.c.fail((*where, key), f"{key} is not an element of {seg_id}")
                    if value is not None:
                        elems.append((int(em.group(2)), self.element(value, (*where, key))))
                elif key not in _SEGMENT_KEYS:
                    raise self.c.fail((*where, key), f"unknown key {key!r}")
            pairs = None
            if spec.get("pairs"):
                p = spec["pairs"]
                pm = re.fullmatch(r"([A-Z][A-Z0-9]{1,2})([0-9]{2})\.\.([A-Z][A-Z0-9]{1,2})([0-9]{2})",
                                  str(p.get("at", "")))
                if not pm or pm.group(1) != seg_id or pm.group(3) != seg_id:
                    raise self.c.fail((*where, "pairs", "at"), f"at: {seg_id}nn..{seg_id}mm, "
                                                               "e.g. PO106..PO125")
                pairs = (int(pm.group(2)), int(pm.group(4)),
                         self.each(p["each"], (*where, "pairs", "each")),
                         self.element(p["qualifier"], (*where, "pairs", "qualifier")),
                         self.element(p["value"], (*where, "pairs", "value")))
            needed = []
            for name in spec.get("skip_unless") or ():
                em = ELEMENT.match(str(name))
                if not em or em.group(1) != seg_id:
                    raise self.c.fail((*where, "skip_unless"), f"{name!r} is not an element "
                                                               f"of {seg_id}")
                needed.append(int(em.group(2)))
            guard = None
            if "when" in spec:
                guarded = self.c.guarded(lambda scope: True, spec["when"], (*where, "when"))
                guard = lambda scope, g=guarded: g(scope) is not None  # noqa: E731
            seg = _Segment(label, seg_id,
                           self.each(spec["each"], (*where, "each")) if spec.get("each") else None,
                           guard, sorted(elems, key=lambda e: e[0]), pairs, tuple(needed),
                           self.segments(spec.get("segments"), (*where, "segments")))
            before = spec.get("before")
            if before is not None:
                if before not in order:
                    raise self.c.fail((*where, "before"), f"no segment {before!r} before it "
                                                          f"here (known: {', '.join(order)})")
                i = order.index(before)
                order.insert(i, label)
                built.insert(i, seg)
            else:
                order.append(label)
                built.append(seg)
        return built


def _reversed_tables(data: dict[str, Any], marks: Marks) -> dict[str, dict[str, Any]]:
    """The tables of the inbound mapping named by reverse_of:, value -> first code."""
    ref = data.get("reverse_of")
    if not ref:
        return {}
    file, line = mark_of(marks, ("reverse_of",))
    target = Path(os.path.normpath(Path(file).parent / ref))
    if not target.is_file():
        raise MappingFileError(f"{file}:{line}: reverse_of: {ref} not found (looked for "
                               f"{target})", file=file, line=line, key="reverse_of")
    inbound, _, _ = extends.resolve(target)
    out: dict[str, dict[str, Any]] = {}
    for name, codes in (inbound.get("tables") or {}).items():
        rev: dict[str, Any] = {}
        for code, value in (codes or {}).items():
            if value is not None:
                rev.setdefault(transforms._text(value), code)
        out[name] = rev
    return out


def load(path: str | Path, *, text: str | None = None) -> OutboundMapping:
    """Read, merge (`extends:`), check and compile an outbound mapping file."""
    data, marks, files = extends.resolve(path, text=text)
    schema.check(data, marks)
    file = str(path)
    if data.get("direction") != "outbound":
        raise MappingFileError(f"{file}:1: direction: outbound mappings say "
                               "`direction: outbound`", file=file, line=1, key="direction")
    for key in ("document", "version"):
        if not data.get(key):
            raise MappingFileError(f"{file}:1: {key}: missing (the X12 set and version "
                                   "written)", file=file, line=1, key=key)
    if data.get("format", "x12") != "x12":
        raise MappingFileError(f"{file}:1: format: outbound mappings write x12", file=file,
                               line=1, key="format")
    tables = _reversed_tables(data, marks)
    for name, codes in (data.get("tables") or {}).items():
        merged = {**tables.get(name, {}), **(codes or {})}
        tables[name] = {k: v for k, v in merged.items() if v is not None}
    compiler = Compiler(JsonSource(None), tables, marks, data.get("name") or Path(file).stem)
    body = _Builder(compiler).segments(data.get("segments"), ("segments",))
    if not body:
        raise MappingFileError(f"{file}:1: segments: an outbound mapping writes at least one "
                               "segment", file=file, line=1, key="segments")
    return OutboundMapping(name=compiler.name, file=file, files=files, format="x12",
                           document=str(data["document"]), version=str(data["version"]),
                           event=data.get("event"), definition=data, _body=body)

