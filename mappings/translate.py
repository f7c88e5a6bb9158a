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

import hashlib
import json
import os
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

from canonical import envelope, schemas
from canonical.errors import (
    ConfigError,
    GatewayError,
    InputError,
    MappingFileError,
    PermanentError,
    SchemaError,
    X12ReadError,
)
from mappings import verdicts as verdicts_mod
from mappings.language import CompiledMapping, load_mapping
from mappings.sources import csv_rows, json_doc
from mappings.sources.x12_tree import build_tree
from mappings.verdicts import Verdict
from mappings.x12 import specs, validator
from mappings.x12.reader import Segment, X12Reader
from mappings.x12.results import FileResult

MAPPING_DIR = Path(__file__).resolve().parent
FORMATS = ("x12", "csv", "json")
Status = Literal["translated", "rejected", "failed", "skipped"]
Source = str | os.PathLike[str] | bytes | BinaryIO
# Groups that acknowledge, not business documents: recognised, never translated.
_ACK_GROUPS = frozenset({"FA"})
_HEAD = 512


class SetRejected(PermanentError):
    """The validator rejected the transaction set or document; it is not translated."""


class UnreadableDocument(InputError):
    """The input cannot be read as CSV or JSON text."""


@dataclass
class Translated:
    """What became of one X12 transaction set or one CSV/JSON document."""

    format: str  # x12, csv or json
    document: str  # X12: ST01; CSV/JSON: the mapping's document (ship_notice, invoice)
    where: str  # the position in words, for messages
    status: Status
    position: int = 0  # X12: the ST's ordinal among the file's segments; else document number
    line: int = 0  # X12: the ST's line; CSV: the document's first row; JSON: 0
    x12control: str = ""  # ISA13.GS06.ST02
    version: str = ""  # GS08 (ISA12 when there is no GS)
    key: str = ""  # CSV/JSON: the document's business key
    event: envelope.Event | None = None
    error: GatewayError | None = None  # SetRejected, MappingError, SchemaError, MappingFileError
    mapping: str | None = None  # the mapping file used
    reason: str = ""  # why it was rejected, failed or skipped, in words

    @property
    def ok(self) -> bool:
        return self.status == "translated"

    @property
    def set_id(self) -> str:
        return self.document

    def verdict(self) -> Verdict:
        """This result as a validation verdict (CSV and JSON: mapped and schema-checked)."""
        return Verdict(self.position, self.ok, "", "" if self.ok else self.reason)


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


def formats(mappings: Mapping[str, str | os.PathLike[str]],
            mapping_dir: str | os.PathLike[str] = MAPPING_DIR) -> set[str]:
    """The formats a partner's mappings read (a mapping that cannot be loaded is left out)."""
    found = set()
    for ref in mappings.values():
        try:
            found.add(_load(_resolve(Path(mapping_dir), ref)).format)
        except MappingFileError:
            continue
    return found


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
        yield from _documents(_read(source), fmt, name=name, partner=partner, root=root,
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
        return _rejected(result, verdict.errors)
    path = _mapping_path(root, refs, set_id, st.version, st.isa.get(12))
    result.mapping = str(path)
    try:
        mapping = cache.get(path) or cache.setdefault(path, _load(path, "x12"))
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


def _rejected(result: Translated, words: str) -> Translated:
    result.status = "rejected"
    result.reason = words or "rejected"
    what = (f"set {result.document} {result.x12control}" if result.format == "x12"
            else result.where)
    result.error = SetRejected(f"{what}: rejected: {result.reason}")
    return result


def _resolve(root: Path, ref: str | os.PathLike[str]) -> Path:
    path = Path(ref)
    return path if path.is_absolute() else root / path


def _mapping_path(root: Path, refs: Mapping[str, str | os.PathLike[str]], set_id: str,
                  gs08: str, isa12: str) -> Path:
    """The partner's mapping for the set (this version first), else the nearest base one."""
    version = specs.base_version(gs08, isa12) or "004010"
    short = version[2:6]
    for key in (f"{set_id}.{short}", set_id):
        if key in refs:
            return _resolve(root, refs[key])
    return root / "base" / f"{set_id}.{short}.yaml"


# Compiled once per process and reused while the files of the extends chain are unchanged:
# compiling costs far more than mapping a document.
_COMPILED: dict[Path, tuple[tuple[tuple[str, int, int], ...], CompiledMapping]] = {}


def _stamp(files: list[str]) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple((f, (st := os.stat(f)).st_mtime_ns, st.st_size) for f in files)
    except OSError:
        return ()


def _load(path: Path, fmt: str | None = None) -> CompiledMapping:
    """The compiled mapping (with an event: type; of format fmt when given)."""
    hit = _COMPILED.get(path)
    if hit is not None and hit[0] and hit[0] == _stamp(hit[1].files):
        mapping = hit[1]
    else:
        if not path.is_file():
            what = "this transaction set" if fmt == "x12" else "this document"
            raise MappingFileError(f"{path}: no mapping for {what}", file=str(path))
        mapping = load_mapping(path)
        _COMPILED[path] = (_stamp(mapping.files), mapping)
    if (fmt is not None and mapping.format != fmt) or not mapping.event:
        raise MappingFileError(f"{path}: not an {(fmt or mapping.format).upper()} mapping "
                               "with an event: type", file=str(path))
    return mapping


def _check_x12(event_type: str, data: dict, mapping: CompiledMapping, st: X12Set) -> None:
    """The data against its schema; the error names the mapping keys and the set."""
    found = schemas.validate(event_type, data)
    if not found:
        return
    keys = sorted({_mapping_key(v.path) for v in found})
    raise SchemaError(
        f"{mapping.file}: set {st.set_id} {st.control} (ST at line "
        f"{st.segments[0].line}): {event_type} data does not match its schema at "
        f"{', '.join(keys)}", violations=found)


def _mapping_key(data_path: str) -> str:
    """`lines[3].quantity.value` -> `fields.lines.fields.quantity.fields.value`."""
    names = [p.split("[")[0] for p in data_path.split(".") if p.split("[")[0]]
    return ".".join(f"fields.{n}" for n in names) or "fields"


# ---- CSV and JSON ----------------------------------------------------------------------

def _pick(root: Path, refs: Mapping[str, str | os.PathLike[str]], fmt: str,
          document: str | None, name: str) -> CompiledMapping:
    """The partner's mapping for a CSV or JSON file: the one of that format, or the one
    named by `document`, or the one whose key the file's name contains."""
    if document is not None:
        if document not in refs:
            raise ConfigError(f"the partner has no mapping for {document!r} "
                              f"(has: {', '.join(sorted(refs)) or 'none'})")
        return _load(_resolve(root, refs[document]), fmt)
    fitting = {k: m for k, ref in refs.items()
               if (m := _load(_resolve(root, ref))).format == fmt}
    if len(fitting) > 1:
        named = {k: m for k, m in fitting.items() if k.lower() in Path(name).name.lower()}
        fitting = named if len(named) == 1 else fitting
    if not fitting:
        raise ConfigError(f"the partner has no {fmt} mapping (its mappings: "
                          f"{', '.join(sorted(refs)) or 'none'}); add one under mappings: "
                          "in its partner file")
    if len(fitting) > 1:
        raise ConfigError(f"the partner has more than one {fmt} mapping "
                          f"({', '.join(sorted(fitting))}); name one (the key in the file's "
                          "name, or edigw translate --document)")
    return next(iter(fitting.values()))


def _documents(data: bytes, fmt: str, *, name: str, partner: str | None, root: Path,
               mappings: Mapping[str, str | os.PathLike[str]], document: str | None,
               time: datetime | None, verdicts: Iterable[Verdict] | None
               ) -> Iterator[Translated]:
    if not partner:
        raise ConfigError(f"{name}: a {fmt.upper()} file says nothing of who sent it; "
                          "name the partner")
    m = _pick(root, mappings, fmt, document, name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(f"{name}: cannot be read as {fmt.upper()}: not UTF-8 text "
                                 f"(byte {exc.start})") from exc
    if fmt == "csv":
        docs: list[Any] = m.csv_documents(text, file=Path(name).name)
    else:
        try:
            docs = [json_doc.Scope(json.loads(text), "")]
        except ValueError as exc:
            raise UnreadableDocument(f"{name}: cannot be read as JSON: {exc}") from exc
    lookup = verdicts_mod.Lookup(verdicts) if verdicts is not None else None
    # The file's digest in every id: the same file sent again keeps its ids, a corrected
    # file (other bytes) gets new ones.
    digest = hashlib.sha256(data).hexdigest()[:32]
    event_type = str(m.event)
    subject_key = envelope.SUBJECT_KEYS.get(event_type, "")
    for n, doc in enumerate(docs, 1):
        yield _translate_document(m, fmt, doc, n, name, partner, digest, subject_key, time,
                                  lookup.get(n) if lookup is not None else None,
                                  judged=lookup is not None)


def _translate_document(m: CompiledMapping, fmt: str, doc: Any, n: int, name: str,
                        partner: str, digest: str, subject_key: str, time: datetime | None,
                        verdict: Verdict | None, *, judged: bool) -> Translated:
    event_type = str(m.event)
    place = f" {_rows(doc)}" if fmt == "csv" else ""
    key = _key_of(m, fmt, doc, subject_key) or str(n)
    result = Translated(fmt, m.document or event_type, "", "failed", position=n,
                        line=doc.header.number if fmt == "csv" else 0, key=key,
                        mapping=m.file)
    result.where = f"{name}: document {n} ({subject_key or 'key'} {key}){place}"
    if judged and (verdict is None or not verdict.accepted):
        return _rejected(result, verdict.errors if verdict else "not seen by validation")
    try:
        data = m(doc)
        # The business key as today: what the mapping made of it, else the number.
        result.key = key = str(data.get(subject_key) or n)
        result.where = f"{name}: document {n} ({subject_key or 'key'} {key}){place}"
        found = schemas.validate(event_type, data)
        if found:
            raise _schema_error(m, fmt, doc, event_type, found)
        result.event = envelope.make_event(event_type, data, partner=partner,
                                           keys={"document": key, "sha256": digest},
                                           time=time, check=False)
    except GatewayError as exc:
        result.error, result.reason = exc, str(exc)
        return result
    result.status = "translated"
    return result


def _key_of(m: CompiledMapping, fmt: str, doc: Any, subject_key: str) -> str:
    """The document's business key read straight from the source (for messages about a
    document that fails before its data is made), when the mapping reads it plainly."""
    spec = (m.definition.get("fields") or {}).get(subject_key)
    selector = spec.get("column" if fmt == "csv" else "path") if isinstance(spec, dict) else spec
    if not isinstance(selector, str):
        return ""
    if fmt == "csv":
        return doc.header.get(selector).strip()
    value = json_doc.get(doc.value, json_doc.parse_path(selector))
    return value if isinstance(value, str) else ""


def _rows(doc: csv_rows.Document) -> str:
    numbers = [r.number for r in doc.rows] or [doc.header.number]
    first, last = min(numbers), max(numbers)
    return f"row {first}" if first == last else f"rows {first}-{last}"


def _schema_error(m: CompiledMapping, fmt: str, doc: Any, event_type: str,
                  found: list[schemas.SchemaViolation]) -> SchemaError:
    """The schema's complaints, each with the source value it came from where the mapping
    reads it by a plain column or path (CSV row and column, JSON path)."""
    keys = sorted({_mapping_key(v.path) for v in found})
    sources: dict[str, str] = {}
    for v in found:
        if v.path not in sources and len(sources) < SchemaError.shown:
            origin = _origin(m.definition.get("fields"), list(v.location), doc, fmt)
            if origin:
                sources[v.path] = f"{v.path} from {origin}"
    told = f" ({'; '.join(sources.values())})" if sources else ""
    return SchemaError(f"{m.file}: {event_type} data does not match its schema at "
                       f"{', '.join(keys)}{told}", violations=found)


def _origin(fields: Any, location: list[Any], scope: Any, fmt: str) -> str | None:
    """Where in the source the value at a data location was read (None: not traceable).

    Walks the mapping's fields along the location; a repeated field (`each:`) is followed
    into its n-th source item when nothing filters the items.
    """
    key = "column" if fmt == "csv" else "path"
    while location:
        step = location.pop(0)
        spec = fields.get(step) if isinstance(fields, dict) and isinstance(step, str) else None
        if spec is None:
            return None
        if isinstance(spec, str):
            spec = {key: spec}
        if not isinstance(spec, dict) or "when" in spec:
            return None
        if "each" in spec:
            if not location or not isinstance(location[0], int) or "skip_unless" in spec:
                return _place(scope, fmt)
            items = _items(scope, spec, fmt)
            i = location.pop(0)
            if items is None or i >= len(items):
                return None
            scope, fields = items[i], spec.get("fields")
            if fields is None:
                return _place(scope, fmt)
        elif "fields" in spec:
            fields = spec["fields"]
        elif isinstance(spec.get(key), str):
            return _place(scope, fmt, spec[key])
        else:
            return None
    return _place(scope, fmt)


def _items(scope: Any, spec: dict[str, Any], fmt: str) -> list[Any] | None:
    if fmt == "json":
        return json_doc.elements(scope, json_doc.parse_path(str(spec["each"])))
    if spec["each"] != "rows":
        return None
    rows = scope.rows if isinstance(scope, csv_rows.Document) else [scope]
    return csv_rows.group(rows, spec["group_by"]) if "group_by" in spec else rows


def _place(scope: Any, fmt: str, selector: str | None = None) -> str:
    if fmt == "json":
        if selector is None:
            return f"JSON path {scope.path or '/'}"
        if json_doc.WILDCARD in selector:
            return f"JSON path {scope.path}/{selector.lstrip('/')}"
        steps = json_doc.parse_path(selector)
        return "JSON path " + scope.path + "".join(
            "/" + s.replace("~", "~0").replace("/", "~1") for s in steps)
    row = scope.header if isinstance(scope, csv_rows.Document) else scope
    return row.where(selector)
