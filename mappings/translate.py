"""Translate an input file into canonical events: detect its format, validate, map, wrap, check.

One translate() for X12, CSV and JSON: the pipeline's validate and map stages, `edigw
translate` and the dead-letter dry run all call it. It yields one Translated per X12
transaction set or CSV/JSON document, in file order; each succeeds or fails on its own and
says where it is (X12: control numbers and the ST's line; CSV: file, rows, and the row and
column of a bad value; JSON: the JSON path).

Event ids: an X12 set's come from its control numbers (canonical.envelope.x12_keys), the
same rule for every X12 mapping; a CSV or JSON document's from its business key and the
file's digest, so the same file sent again keeps its ids and a corrected one gets new ones.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from canonical import envelope, schemas
from canonical.errors import ConfigError, GatewayError, InputError, SchemaError, X12ReadError
from mappings import documents, loading
from mappings import verdicts as verdicts_mod
from mappings.language import CompiledMapping
from mappings.loading import formats
from mappings.outcome import SetRejected, Status, Translated, UnreadableDocument, rejected
from mappings.sources.x12_tree import build_tree
from mappings.verdicts import Verdict
from mappings.x12 import specs, validator
from mappings.x12.reader import Segment, X12Reader
from mappings.x12.results import FileResult

__all__ = ["FORMATS", "MAPPING_DIR", "SetRejected", "Status", "Translated",
           "UnreadableDocument", "X12Set", "detect", "formats", "iter_sets", "read_sets",
           "translate", "verdicts_of"]

MAPPING_DIR = loading.MAPPING_DIR
FORMATS = ("x12", "csv", "json")
Source = str | os.PathLike[str] | bytes | BinaryIO
# Groups that acknowledge, not business documents: recognised, never translated.
_ACK_GROUPS = frozenset({"FA"})
_HEAD = 512

def detect(head: bytes, sends: Collection[str] = ()) -> str:
    """x12, csv or json: by the content's first bytes, then by what the partner sends.

    sends: the formats of the partner's mappings. An ISA opens X12, and `{` or `[` JSON
    (unless the partner sends CSV and no JSON); anything else is CSV for a partner with a
    CSV mapping, else X12 (whose reader then says what is wrong), else JSON.
    """
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:3] == b"ISA":
        return "x12"
    if text[:1] in (b"{", b"[") and ("json" in sends or "csv" not in sends):
        return "json"
    if "csv" in sends:
        return "csv"
    if "x12" in sends or not sends:
        return "x12"
    return "json"

def translate(source: Source, *, fmt: str | None = None,
              mappings: Mapping[str, str | os.PathLike[str]] | None = None,
              partner: str | None = None, name: str = "",
              time: datetime | None = None,
              verdicts: Iterable[Verdict] | None = None,
              accept_with_errors: Iterable[str] = (),
              mapping_dir: str | os.PathLike[str] = MAPPING_DIR,
              document: str | None = None) -> Iterator[Translated]:
    """Every X12 set or CSV/JSON document of the source, translated or with why not.

    source: a path, the bytes, or a binary stream (read once: an X12 stream needs
    `verdicts`). fmt: x12, csv or json; None detects it (see detect) with the formats of
    the partner's mappings. mappings: the partner's mapping files by key as in
    conf/partners/*.yaml: X12 `850.5010` (one version) or `850`, sets without one use
    mapping_dir/base/<set>.<ver>.yaml; CSV and JSON use the partner's one mapping of that
    format (`document` names it when there are several, else the key found in `name`).
    partner: the partner id for the events (X12 default: the ISA sender id; required for
    CSV and JSON). name: the file's name, for messages. time: the events' time (the
    pipeline gives the arrival, so that mapping again makes the same event).
    verdicts: validation's verdict on each set or document, by position, when the caller
    kept them (the pipeline's validate stage did): the input is then not validated again;
    a set or document not accepted is `rejected`. accept_with_errors: the partner's
    leniency, so that an X12 set accepted with errors noted is translated.

    Raises X12ReadError when X12 cannot be read at all, UnreadableDocument for CSV or JSON
    that is not text or not JSON, ConfigError when the partner has no mapping for it.
    """
    refs = mappings or {}
    root = Path(mapping_dir)
    if fmt is None:
        fmt = detect(_head(source), formats(refs, root))
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    name = name or _name(source)
    if fmt == "x12":
        if verdicts is None:
            if not isinstance(source, str | os.PathLike | bytes):
                raise TypeError("a stream is read once: validate it first and pass verdicts=")
            verdicts = verdicts_of(validator.validate(source, path=name,
                                                      accept_with_errors=accept_with_errors))
        yield from _x12(source, verdicts, partner, root, refs, time)
    else:
        yield from documents.translate_documents(_read(source), fmt, name=name, partner=partner, root=root,
                              mappings=refs, document=document, time=time,
                              verdicts=verdicts)


def verdicts_of(result: FileResult) -> Iterator[Verdict]:
    """The validator's verdict on each X12 set, in file order: accepted (its interchange
    too), its group's functional id, and the errors that say why not."""
    if not result.readable:
        raise X12ReadError(f"{result.path}: cannot be read as X12: {result.read_error}")
    for ic in result.interchanges:
        for g in ic.groups:
            for s in g.sets:
                if s.file_position is None:
                    continue
                accepted = ic.accepted and s.accepted
                yield Verdict(s.file_position, accepted, g.functional_id,
                              "" if accepted else _words([*ic.errors, *g.errors, *s.errors]))


def _name(source: Source) -> str:
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    return "<input>"


def _head(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source[:_HEAD]
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as f:
                return f.read(_HEAD)
        except OSError as exc:
            raise InputError(f"{os.fspath(source)}: cannot read: {exc.strerror or exc}") from exc
    peek = getattr(source, "peek", None)
    if peek is None:
        raise TypeError("a stream without peek(): give fmt=")
    return peek(_HEAD)[:_HEAD]


def _read(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | os.PathLike):
        try:
            return Path(source).read_bytes()
        except OSError as exc:
            raise InputError(f"{os.fspath(source)}: cannot read: {exc.strerror or exc}") from exc
    return source.read()


def _words(findings: list[Any]) -> str:
    return "; ".join(f"{f.segment_id or f.level} (line {f.line}): {f.message}"
                     if f.line else f.message for f in findings[:5]) or "rejected"


# ---- X12 -------------------------------------------------------------------------------

def _x12(source: Source, verdicts: Iterable[Verdict], partner: str | None, root: Path,
         refs: Mapping[str, str | os.PathLike[str]],
         time: datetime | None) -> Iterator[Translated]:
    """One set at a time: only the set being mapped is in memory, whatever the file's size."""
    lookup = verdicts_mod.Lookup(verdicts)
    cache: dict[Path, CompiledMapping] = {}
    for st in iter_sets(source):
        yield _translate_set(st, lookup.get(st.segments[0].position), partner, root, refs,
                             cache, time)


@dataclass
class X12Set:
    """One ST..SE run and the envelope it came in."""

    segments: list[Segment]
    isa: Segment
    gs: Segment | None
    component: str

    @property
    def control(self) -> str:
        gs06 = self.gs.get(6) if self.gs is not None else ""
        return envelope.x12_control(self.isa.get(13), gs06, self.segments[0].get(2))

    @property
    def version(self) -> str:
        """GS08 (e.g. 004010VICS), or '' when the set came without a GS."""
        return self.gs.get(8) if self.gs is not None else ""

    @property
    def set_id(self) -> str:
        return self.segments[0].get(1)


def read_sets(source: str | os.PathLike[str] | bytes) -> list[X12Set]:
    """The ST..SE runs of the file with the ISA and GS around each."""
    return list(iter_sets(source))


def iter_sets(source: str | os.PathLike[str] | bytes | BinaryIO) -> Iterator[X12Set]:
    """read_sets one set at a time."""
    isa: Segment | None = None
    gs: Segment | None = None
    current: list[Segment] | None = None
    with X12Reader(source) as reader:
        for seg in reader:
            sid = seg.fields[0]
            if sid == "ISA":
                isa, gs, current = seg, None, None
            elif sid == "GS":
                gs = seg
            elif sid == "ST":
                current = [seg]
            elif current is not None:
                current.append(seg)
                if sid == "SE" and isa is not None:
                    comp = reader.interchange.delimiters.component if reader.interchange else ":"
                    yield X12Set(current, isa, gs, comp)
                    current = None

def _translate_set(st: X12Set, verdict: Verdict | None, partner: str | None, root: Path,
                   refs: Mapping[str, str | os.PathLike[str]],
                   cache: dict[Path, CompiledMapping], time: datetime | None) -> Translated:
    set_id = st.set_id
    first = st.segments[0]
    result = Translated("x12", set_id, f"set {set_id} {st.control} (ST at line {first.line})",
                        "failed", position=first.position, line=first.line,
                        x12control=st.control, version=st.version)
    if verdict is None or verdict.group in _ACK_GROUPS:
        result.status = "skipped"
        result.reason = ("an acknowledgment, not a business document" if verdict
                         else "the validator did not see this set (broken envelope)")
        return result
    if not verdict.accepted:
        return rejected(result, verdict.errors)
    path = _mapping_path(root, refs, set_id, st.version, st.isa.get(12))
    result.mapping = str(path)
    try:
        mapping = cache.get(path) or cache.setdefault(path, loading.load(path, "x12"))
        spec = mapping.x12_spec(set_id, st.version or None)
        tree = build_tree(st.segments, spec, component=st.component)
        try:
            data = mapping.map_x12(tree)
        finally:
            tree.release()
        event_type = mapping.event or ""
        _check_x12(event_type, data, mapping, st)
        result.event = envelope.make_event(
            event_type, data, partner=partner or st.isa.get(6).strip() or "unknown",
            keys=envelope.x12_keys(st.control), x12control=st.control, time=time, check=False)
    except GatewayError as exc:
        result.error, result.reason = exc, str(exc)
        return result
    result.status = "translated"
    return result

def _mapping_path(root: Path, refs: Mapping[str, str | os.PathLike[str]], set_id: str,
                  gs08: str, isa12: str) -> Path:
    """The partner's mapping for the set (this version first), else the nearest base one."""
    version = specs.base_version(gs08, isa12) or "004010"
    short = version[2:6]
    for key in (f"{set_id}.{short}", set_id):
        if key in refs:
            return loading.resolve(root, refs[key])
    return root / "base" / f"{set_id}.{short}.yaml"

def _check_x12(event_type: str, data: dict, mapping: CompiledMapping, st: X12Set) -> None:
    """The data against its schema; the error names the mapping keys and the set."""
    found = schemas.validate(event_type, data)
    if not found:
        return
    keys = sorted({loading.mapping_key(v.path) for v in found})
    raise SchemaError(
        f"{mapping.file}: set {st.set_id} {st.control} (ST at line "
        f"{st.segments[0].line}): {event_type} data does not match its schema at "
        f"{', '.join(keys)}", violations=found)
