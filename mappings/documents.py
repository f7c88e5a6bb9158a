"""CSV and JSON documents into canonical events (mappings.translate for these formats).

A CSV file's rows are grouped into documents as its mapping says (`csv.group_by`); a JSON
file is one document. Each document is mapped and checked against its schema on its own;
an error says where: the CSV row and column or the JSON path the bad value came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from canonical import envelope, schemas
from canonical.errors import ConfigError, GatewayError, MappingFileError, SchemaError
from mappings import verdicts as verdicts_mod
from mappings.language import CompiledMapping
from mappings.loading import load, mapping_key, resolve
from mappings.outcome import Translated, UnreadableDocument, rejected
from mappings.sources import csv_rows, json_doc
from mappings.verdicts import Verdict


def _pick(root: Path, refs: Mapping[str, str | os.PathLike[str]], fmt: str,
          document: str | None, name: str) -> CompiledMapping:
    """The partner's mapping for a CSV or JSON file: the one of that format, or the one
    named by `document`, or the one whose key the file's name contains."""
    if document is not None:
        if document not in refs:
            raise ConfigError(f"the partner has no mapping for {document!r} "
                              f"(has: {', '.join(sorted(refs)) or 'none'})")
        return load(resolve(root, refs[document]), fmt)
    fitting: dict[str, CompiledMapping] = {}
    broken: list[MappingFileError] = []
    for key, ref in refs.items():
        try:
            m = load(resolve(root, ref))
        except MappingFileError as exc:
            broken.append(exc)  # perhaps the very mapping wanted: said below if none fits
            continue
        if m.format == fmt:
            fitting[key] = m
    if len(fitting) > 1:
        named = {k: m for k, m in fitting.items() if k.lower() in Path(name).name.lower()}
        fitting = named if len(named) == 1 else fitting
    if not fitting:
        if broken:
            raise broken[0]
        raise ConfigError(f"the partner has no {fmt} mapping (its mappings: "
                          f"{', '.join(sorted(refs)) or 'none'}); add one under mappings: "
                          "in its partner file")
    if len(fitting) > 1:
        raise ConfigError(f"the partner has more than one {fmt} mapping "
                          f"({', '.join(sorted(fitting))}); name one (the key in the file's "
                          "name, or edigw translate --document)")
    return next(iter(fitting.values()))


def translate_documents(data: bytes, fmt: str, *, name: str, partner: str | None,
                        root: Path, mappings: Mapping[str, str | os.PathLike[str]],
                        document: str | None, time: datetime | None,
                        verdicts: Iterable[Verdict] | None) -> Iterator[Translated]:
    """Each document of a CSV or JSON file (see mappings.translate.translate)."""
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
        return rejected(result, verdict.errors if verdict else "not seen by validation")
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
    keys = sorted({mapping_key(v.path) for v in found})
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
