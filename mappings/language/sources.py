"""What each source format gives the compiler: value getters, `each:` iterators, positions.

The compiler is the same for X12, CSV and JSON; only these three small adapters differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mappings.language import selectors
from mappings.sources import csv_rows, json_doc
from mappings.sources.csv_rows import Document, Row

Getter = Callable[[Any], Any]
Where = Callable[[Any], str]


class X12Source:
    """Scopes are x12_tree.Node; selectors as in mappings.language.selectors."""

    format = "x12"
    source_key = "select"

    def __init__(self, reads: set[Any] | None = None) -> None:
        self.reads = reads  # tracking mode: (segment position, element) pairs read

    def getter(self, text: str) -> tuple[Getter, Where]:
        get, locate, last = selectors.compile_getter(text, self.reads)
        return get, lambda node: selectors.describe(node, locate(node), last)

    def condition(self, text: str) -> Getter:
        """For `when:`: a selector without an element tests that the segment is there."""
        parts = selectors.parse(text)
        if parts[-1].element:
            return self.getter(text)[0]
        reads = self.reads
        if reads is not None:
            def test(node: Any) -> str | None:
                return "present" if selectors.resolve_tracked(parts, node, reads) else None
        else:
            def test(node: Any) -> str | None:
                return "present" if selectors.resolve(parts, node) is not None else None
        if selectors.from_root(text):
            return lambda node: test(node.root)
        return test

    def each(self, text: str, descendants: bool) -> Callable[[Any], list[Any]]:
        return selectors.compile_each(text, descendants, self.reads)

    def pairs(self, text: str) -> Callable[[Any], list[Any]]:
        return selectors.compile_pairs(text, self.reads)

    def where(self, scope: Any) -> str:
        return selectors.describe(scope, None)


class CsvSource:
    """Scopes are a csv_rows.Document (its header row answers) or one detail Row."""

    format = "csv"
    source_key = "column"
    ROWS = "rows"

    def __init__(self, reads: set[Any] | None = None) -> None:
        self.reads = reads  # tracking mode: (file, row number, column) triples read

    def getter(self, text: str) -> tuple[Getter, Where]:
        col = text
        reads = self.reads

        def get(scope: Document | Row) -> str | None:
            row = scope.header if isinstance(scope, Document) else scope
            if reads is not None:
                reads.add((row.file, row.number, col))
            return row.values.get(col) or None

        def where(scope: Document | Row) -> str:
            row = scope.header if isinstance(scope, Document) else scope
            return row.where(col)

        return get, where

    def condition(self, text: str) -> Getter:
        return self.getter(text)[0]

    def each(self, text: str, descendants: bool) -> Callable[[Any], list[Any]]:
        if text != self.ROWS:
            raise ValueError(f"each: in a CSV mapping repeats over {self.ROWS!r} "
                             "(the detail rows of the document)")
        return lambda scope: scope.rows if isinstance(scope, Document) else [scope]

    def grouped(self, each: Callable[[Any], list[Any]], column: str) -> Callable[[Any], list[Any]]:
        """`each: rows` with `group_by:`: one Document per distinct value, in first-seen order
        (a shipment's rows by order, an order's rows by carton)."""
        reads = self.reads

        def groups(scope: Any) -> list[Any]:
            rows = each(scope)
            if reads is not None:
                reads.update((r.file, r.number, column) for r in rows)
            return csv_rows.group(rows, column)

        return groups

    def where(self, scope: Any) -> str:
        row = scope.header if isinstance(scope, Document) else scope
        return row.where()


class JsonSource:
    """Scopes are json_doc.Scope; paths are relative to the scope."""

    format = "json"
    source_key = "path"

    def __init__(self, reads: set[Any] | None = None) -> None:
        self.reads = reads  # tracking mode: JSON Pointer paths of the values read

    def getter(self, text: str) -> tuple[Getter, Where]:
        steps = json_doc.parse_path(text)
        shown = "/" + "/".join(steps)
        reads = self.reads
        if reads is not None:
            def get(scope: json_doc.Scope) -> Any:
                found = list(json_doc.scopes(scope, steps))
                reads.update(s.path for s in found)
                values = [s.value for s in found if s.value is not None and s.value != ""]
                if json_doc.WILDCARD in steps:
                    return values or None
                return values[0] if values else None
        elif json_doc.WILDCARD in steps:
            def get(scope: json_doc.Scope) -> Any:
                found = [s.value for s in json_doc.scopes(scope, steps)
                         if s.value is not None and s.value != ""]
                return found or None
        else:
            def get(scope: json_doc.Scope) -> Any:
                value = json_doc.get(scope.value, steps)
                return None if value == "" else value

        return get, lambda scope: f"JSON path {scope.path}{shown}"

    def condition(self, text: str) -> Getter:
        return self.getter(text)[0]

    def each(self, text: str, descendants: bool) -> Callable[[Any], list[Any]]:
        steps = json_doc.parse_path(text)
        return lambda scope: json_doc.elements(scope, steps)

    def where(self, scope: Any) -> str:
        return f"JSON path {scope.path or '/'}"


SOURCES = {"x12": X12Source, "csv": CsvSource, "json": JsonSource}
