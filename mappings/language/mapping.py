"""A mapping file loaded, merged with its base, checked and compiled: the public entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canonical.errors import MappingFileError, SpecificationError
from mappings.language import extends, schema
from mappings.language.compiler import Compiler
from mappings.language.sources import SOURCES
from mappings.sources import csv_rows, json_doc
from mappings.sources.x12_tree import Node, build_tree
from mappings.x12.reader import Segment

if TYPE_CHECKING:
    from collections.abc import Callable

    from mappings.x12.specs import TransactionSpec

_AUTO: Any = object()


@dataclass
class CompiledMapping:
    """Call it on a source tree to get the canonical `data`; or use map_x12/map_csv/map_json."""

    name: str
    file: str
    files: list[str]  # the extends chain, base first
    format: str
    document: str | None
    version: str | None
    event: str | None
    definition: dict[str, Any]  # the merged mapping, as data
    run: Callable[[Any], dict[str, Any] | None] = field(repr=False)
    # Tracking mode only (load(..., track=True)): what the selectors read, added to on every
    # run until cleared. X12: (segment position in the file, element); CSV: (file, row,
    # column); JSON: the JSON Pointer path of each value read.
    reads: set[Any] | None = field(default=None, repr=False)

    def __call__(self, tree: Any) -> dict[str, Any]:
        return self.run(tree) or {}

    def map_x12(self, segments: Sequence[Segment] | Node, spec: TransactionSpec | None = _AUTO,
                *, component: str = ":") -> dict[str, Any]:
        """One transaction set (its segments from ST to SE, or a tree already built)."""
        if isinstance(segments, Node):
            return self(segments)
        if spec is _AUTO:
            spec = self.x12_spec(segments[0].get(1) if segments else "")
        return self(build_tree(segments, spec, component=component))

    def x12_spec(self, set_id: str, gs08: str | None = None) -> TransactionSpec | None:
        """The loop structure for this mapping's transaction set (None when no map exists)."""
        from mappings.x12 import specs  # loaded only by X12 mappings

        try:
            spec, _ = specs.select_map(self.document or set_id, gs08 or self.version or "004010")
        except SpecificationError:
            return None
        return spec

    def map_csv(self, text: str, details: str | None = None, *, file: str = "",
                details_file: str = "") -> list[dict[str, Any]]:
        """A CSV upload (and its detail file, when the mapping joins two): one result per document."""
        return [self(doc) for doc in self.csv_documents(text, details, file=file,
                                                        details_file=details_file)]

    def csv_documents(self, text: str, details: str | None = None, *, file: str = "",
                      details_file: str = "") -> list[csv_rows.Document]:
        """The documents of a CSV upload as this mapping groups (or joins) its rows."""
        opts = self.definition.get("csv") or {}
        rows = csv_rows.read_rows(text, columns=opts.get("columns"), header=opts.get("header", True),
                                  delimiter=opts.get("delimiter", ","), file=file)
        det = opts.get("details")
        if det is not None:
            if details is None:
                raise MappingFileError(f"{self.file}: csv.details: this mapping joins a detail "
                                       "file; none was given", file=self.file, key="csv.details")
            drows = csv_rows.read_rows(details, columns=det.get("columns"),
                                       header=det.get("header", True),
                                       delimiter=det.get("delimiter", ","), file=details_file)
            docs = csv_rows.join(rows, drows, det.get("header_key") or det["key"], det["key"])
        else:
            docs = csv_rows.group(rows, opts.get("group_by"))
        return docs

    def map_json(self, document: Any) -> dict[str, Any]:
        """A parsed JSON document (a webhook body)."""
        return self(json_doc.Scope(document, ""))


def load(path: str | Path, *, text: str | None = None, track: bool = False) -> CompiledMapping:
    """Read, merge (`extends:`), check against the schema and compile a mapping file.

    With track=True the mapping records in `.reads` every source element its selectors
    read (slower: no generated straight-line code), so a caller can list what it drops.
    """
    data, marks, files = extends.resolve(path, text=text)
    schema.check(data, marks)
    file = str(path)
    fmt = data.get("format")
    if fmt is None:
        raise MappingFileError(f"{file}:1: format: missing (x12, csv or json), here or in the "
                               "base mapping", file=file, line=1, key="format")
    if data.get("direction") == "outbound":
        raise MappingFileError(f"{file}:1: direction: an outbound mapping writes X12 from "
                               "canonical data; it cannot read a document",
                               file=file, line=1, key="direction")
    name = data.get("name") or Path(file).stem
    tables = {k: v or {} for k, v in (data.get("tables") or {}).items()}
    reads: set[Any] | None = set() if track else None
    compiler = Compiler(SOURCES[fmt](reads), tables, marks, name)
    run = compiler.group(data.get("fields"), ("fields",))
    return CompiledMapping(name=name, file=file, files=files, format=fmt,
                           document=data.get("document"), version=data.get("version"),
                           event=data.get("event"), definition=data, run=run, reads=reads)


def check(path: str | Path) -> list[str]:
    """Every problem with a mapping file, as `file:line: key: message` lines (empty when fine)."""
    try:
        data, marks, _ = extends.resolve(path)
    except MappingFileError as exc:
        return [str(exc)]
    found = schema.problems(data, marks)
    if found:
        return found
    try:
        if data.get("direction") == "outbound":
            from mappings.language import emitter  # the other direction's compiler

            emitter.load(path)
        else:
            load(path)
    except MappingFileError as exc:
        return str(exc).splitlines()
    return []
