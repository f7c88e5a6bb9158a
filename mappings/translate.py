"""Translate an X12 file into canonical events: validate, pick a mapping, map, wrap, check.

One TranslationResult per transaction set, in file order; each set succeeds or fails on
its own. The event id comes from the control numbers (canonical.envelope.x12_keys), the
same rule for every X12 mapping, so the mapping files do not restate it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Literal

from canonical import envelope, schemas
from canonical.errors import (
    GatewayError,
    MappingFileError,
    PermanentError,
    SchemaError,
    X12ReadError,
)
from mappings.language import CompiledMapping, load_mapping
from mappings.sources.x12_tree import build_tree
from mappings.x12 import specs, validator
from mappings.x12.reader import Segment, X12Reader
from mappings.x12.results import FileResult, Finding

MAPPING_DIR = Path(__file__).resolve().parent
Status = Literal["translated", "rejected", "failed", "skipped"]
# Groups that acknowledge, not business documents: recognised, never translated.
_ACK_GROUPS = frozenset({"FA"})


class SetRejected(PermanentError):
    """The validator rejected the transaction set; it is not translated."""


@dataclass
class TranslationResult:
    """What became of one transaction set."""

    set_id: str  # ST01
    x12control: str  # ISA13.GS06.ST02
    version: str  # GS08 (ISA12 when there is no GS)
    line: int  # the ST's line in the file
    status: Status
    event: envelope.Event | None = None
    error: GatewayError | None = None  # SetRejected, MappingError, SchemaError, MappingFileError
    mapping: str | None = None  # the mapping file used
    reason: str = ""  # why it was rejected, failed or skipped, in words

    @property
    def ok(self) -> bool:
        return self.status == "translated"


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

    @property
    def sender(self) -> tuple[str, str]:
        """(ISA05, ISA06) without padding."""
        return self.isa.get(5).strip(), self.isa.get(6).strip()


def translate_x12(source: str | os.PathLike[str] | bytes, *, partner: str | None = None,
                  mapping_dir: str | os.PathLike[str] = MAPPING_DIR,
                  partners: Mapping[str, str | os.PathLike[str]] | None = None,
                  time: datetime | None = None,
                  validated: FileResult | None = None,
                  accept_with_errors: Iterable[str] = ()) -> list[TranslationResult]:
    """Every transaction set of an X12 file, translated or with the reason it was not.

    partner: the gateway's partner id for the events (default: the ISA sender id).
    partners: that partner's mapping files by document key, `850.5010` (one version) or
    `850`, as in conf/partners/*.yaml; sets without one use mapping_dir/base/<set>.<ver>.yaml.
    validated: the validator's result for these same bytes, when the caller has it already
    (the pipeline's validate stage): the file is then not validated a second time.
    accept_with_errors: the partner's leniency (validation.accept_with_errors), so that a
    set accepted with errors noted is translated (see mappings.x12.validator).
    Raises X12ReadError when the file cannot be read as X12 at all.
    """
    return list(iter_translate_x12(source, partner=partner, mapping_dir=mapping_dir,
                                   partners=partners, time=time, validated=validated,
                                   accept_with_errors=accept_with_errors))


def iter_translate_x12(source: str | os.PathLike[str] | bytes | BinaryIO, *,
                       partner: str | None = None,
                       mapping_dir: str | os.PathLike[str] = MAPPING_DIR,
                       partners: Mapping[str, str | os.PathLike[str]] | None = None,
                       time: datetime | None = None,
                       validated: FileResult | None = None,
                       accept_with_errors: Iterable[str] = ()) -> Iterator[TranslationResult]:
    """translate_x12 one set at a time: only the set being mapped is in memory, whatever
    the file's size. A binary stream can be read once only, so it needs `validated`."""
    if validated is None:
        if not isinstance(source, str | os.PathLike | bytes):
            raise TypeError("a stream is read once: validate it first and pass validated=")
        validated = validator.validate(source, path=_name(source),
                                       accept_with_errors=accept_with_errors)
    verdicts = _Verdicts(validated)
    cache: dict[Path, CompiledMapping] = {}
    for st in iter_sets(source):
        verdict = verdicts.get(st.segments[0].position)
        yield _translate_set(st, verdict, partner, Path(mapping_dir), partners or {}, cache,
                             time)


def _name(source: str | os.PathLike[str] | bytes) -> str:
    return "<input>" if isinstance(source, bytes) else os.fspath(source)


class _Verdicts:
    """The validator's verdict on each set, looked up in file order as the sets stream by:
    whether the set is accepted (its interchange too), the errors that say why not, and
    its group's functional id. No table of every set is built."""

    def __init__(self, result: FileResult) -> None:
        if not result.readable:
            raise X12ReadError(f"{result.path}: cannot be read as X12: {result.read_error}")
        self._sets = ((s.file_position, ic, g, s) for ic in result.interchanges
                      for g in ic.groups for s in g.sets if s.file_position is not None)
        self._next = next(self._sets, None)

    def get(self, position: int) -> tuple[bool, list[Finding], str] | None:
        """The verdict on the set whose ST is at this position (positions asked in order)."""
        while self._next is not None and self._next[0] < position:
            self._next = next(self._sets, None)
        if self._next is None or self._next[0] != position:
            return None
        _, ic, g, s = self._next
        accepted = ic.accepted and s.accepted
        errors = [*ic.errors, *g.errors, *s.errors] if not accepted else []
        return accepted, errors, g.functional_id


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


def _translate_set(st: X12Set, verdict: tuple[bool, list[Finding], str] | None,
                   partner: str | None, root: Path, partners: Mapping[str, str | os.PathLike[str]],
                   cache: dict[Path, CompiledMapping], time: datetime | None) -> TranslationResult:
    set_id = st.segments[0].get(1)
    result = TranslationResult(set_id, st.control, st.version, st.segments[0].line, "failed")
    if verdict is None or verdict[2] in _ACK_GROUPS:
        result.status = "skipped"
        result.reason = ("an acknowledgment, not a business document" if verdict
                         else "the validator did not see this set (broken envelope)")
        return result
    accepted, errors, _ = verdict
    if not accepted:
        return _rejected(result, errors)
    path = _mapping_path(root, partners, set_id, st.version, st.isa.get(12))
    result.mapping = str(path)
    try:
        mapping = cache.get(path) or cache.setdefault(path, _load(path))
        spec = mapping.x12_spec(set_id, st.version or None)
        tree = build_tree(st.segments, spec, component=st.component)
        try:
            data = mapping.map_x12(tree)
        finally:
            tree.release()
        event_type = mapping.event or ""
        _check(event_type, data, mapping, st)
        result.event = envelope.make_event(
            event_type, data, partner=partner or st.isa.get(6).strip() or "unknown",
            keys=envelope.x12_keys(st.control), x12control=st.control, time=time, check=False)
    except GatewayError as exc:
        result.error, result.reason = exc, str(exc)
        return result
    result.status = "translated"
    return result


def _rejected(result: TranslationResult, findings: list[Finding]) -> TranslationResult:
    words = "; ".join(f"{f.segment_id or f.level} (line {f.line}): {f.message}"
                      if f.line else f.message for f in findings[:5]) or "rejected"
    result.status = "rejected"
    result.reason = words
    result.error = SetRejected(f"set {result.set_id} {result.x12control}: rejected: {words}")
    return result


def _mapping_path(root: Path, partners: Mapping[str, str | os.PathLike[str]], set_id: str,
                  gs08: str, isa12: str) -> Path:
    """The partner's mapping for the set (this version first), else the nearest base one."""
    version = specs.base_version(gs08, isa12) or "004010"
    short = version[2:6]
    for key in (f"{set_id}.{short}", set_id):
        if key in partners:
            path = Path(partners[key])
            return path if path.is_absolute() else root / path
    return root / "base" / f"{set_id}.{short}.yaml"


# Compiled once per process and reused while the files of the extends chain are unchanged:
# compiling costs far more than mapping a document.
_COMPILED: dict[Path, tuple[tuple[tuple[str, int, int], ...], CompiledMapping]] = {}


def _stamp(files: list[str]) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple((f, (st := os.stat(f)).st_mtime_ns, st.st_size) for f in files)
    except OSError:
        return ()


def _load(path: Path) -> CompiledMapping:
    hit = _COMPILED.get(path)
    if hit is not None and hit[0] and hit[0] == _stamp(hit[1].files):
        return hit[1]
    if not path.is_file():
        raise MappingFileError(f"{path}: no mapping for this transaction set", file=str(path))
    mapping = load_mapping(path)
    if mapping.format != "x12" or not mapping.event:
        raise MappingFileError(f"{path}: not an X12 mapping with an event: type",
                               file=str(path))
    _COMPILED[path] = (_stamp(mapping.files), mapping)
    return mapping


def _check(event_type: str, data: dict, mapping: CompiledMapping, st: X12Set) -> None:
    """The data against its schema; the error names the mapping keys and the set."""
    found = schemas.validate(event_type, data)
    if not found:
        return
    keys = sorted({_mapping_key(v.path) for v in found})
    raise SchemaError(
        f"{mapping.file}: set {st.segments[0].get(1)} {st.control} (ST at line "
        f"{st.segments[0].line}): {event_type} data does not match its schema at "
        f"{', '.join(keys)}", violations=found)


def _mapping_key(data_path: str) -> str:
    """`lines[3].quantity.value` -> `fields.lines.fields.quantity.fields.value`."""
    names = [p.split("[")[0] for p in data_path.split(".") if p.split("[")[0]]
    return ".".join(f"fields.{n}" for n in names) or "fields"
