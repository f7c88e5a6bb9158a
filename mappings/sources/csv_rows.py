"""CSV uploads as rows named by header (or by columns the mapping supplies), grouped into documents."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Row:
    """One data row: values by column name, and where it came from."""

    number: int  # line of the file on which the row starts, from 1
    values: dict[str, str]
    columns: tuple[str, ...]
    file: str = ""

    def get(self, column: str) -> str:
        return self.values.get(column, "")

    def where(self, column: str | None = None) -> str:
        """The row (and column) in words, for error messages."""
        place = f"{self.file + ' ' if self.file else ''}row {self.number}"
        if column is not None:
            col = self.columns.index(column) + 1 if column in self.columns else "?"
            place += f" column {col} ({column})"
        return place


@dataclass(slots=True)
class Document:
    """The rows of one document: a header row and its detail rows (the same row when one file)."""

    key: str
    header: Row
    rows: list[Row] = field(default_factory=list)


def read_rows(text: str, *, columns: Sequence[str] | None = None, header: bool = True,
              delimiter: str = ",", file: str = "") -> list[Row]:
    """Parse CSV text; names come from `columns` when given, else from the first row."""
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte order mark from spreadsheet exports
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names: tuple[str, ...] | None = tuple(columns) if columns else None
    rows: list[Row] = []
    start = 1
    for record in reader:
        number, start = start, reader.line_num + 1
        if not any(v.strip() for v in record):
            continue  # blank lines (often a trailing one) carry nothing
        if names is None or (header and number == 1 and columns is None):
            names = tuple(v.strip() for v in record)
            continue
        if header and columns is not None and number == 1:
            continue  # the file's own header row, replaced by the mapping's names
        # Extra values beyond the named columns get positional names so none is lost.
        keys = names + tuple(f"column_{i + 1}" for i in range(len(names), len(record)))
        rows.append(Row(number, dict(zip(keys, record, strict=False)), keys, file))
    return rows


def group(rows: Iterable[Row], key: str | None) -> list[Document]:
    """Consecutive or not, rows with the same key form one document, in first-seen order."""
    if key is None:
        return [Document(str(r.number), r, [r]) for r in rows]
    docs: dict[str, Document] = {}
    for r in rows:
        k = r.get(key).strip()
        doc = docs.get(k)
        if doc is None:
            docs[k] = Document(k, r, [r])
        else:
            doc.rows.append(r)
    return list(docs.values())


def join(headers: Iterable[Row], details: Iterable[Row], header_key: str,
         detail_key: str | None = None) -> list[Document]:
    """A header file joined to its detail file on a key (invoice number, say)."""
    by_key: dict[str, list[Row]] = {}
    for r in details:
        by_key.setdefault(r.get(detail_key or header_key).strip(), []).append(r)
    return [Document(k, h, by_key.get(k, []))
            for h in headers for k in [h.get(header_key).strip()]]
