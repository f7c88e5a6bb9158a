"""Cells that a spreadsheet would run as formulas (= + - @, tab, carriage return), made inert.

Anything the portal lets a partner download as CSV (their upload history: file names they
chose, reasons quoting their cells) goes through `neutralise`: a leading ' makes Excel,
LibreOffice and Google Sheets show the text instead of evaluating it. Plain numbers such
as -12 or +3.5 are left alone: they are no formula, and a quote would turn them into text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: object) -> str:
    """The cell's text, prefixed with ' when a spreadsheet would take it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(TRIGGERS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV text with every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in header])
    for row in rows:
        writer.writerow([neutralise(v) for v in row])
    return out.getvalue()
