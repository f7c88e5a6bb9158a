"""An uploaded CSV checked the way the pipeline will read it, before it is accepted.

The partner's CSV mapping reads the file (mappings.translate.translate, the one the
pipeline and `edigw translate` use) and the canonical schema checks each document.
The mapping stops at the first bad cell; when it does, each data row is also mapped on
its own, so the partner sees every bad row at once instead of one per upload.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from canonical.errors import ConfigError, InputError
from gateway import partners as partners_mod
from mappings import translate as translate_mod
from mappings.outcome import Translated

# Rows mapped one by one to find more errors after the first; past this, the first is enough.
ROW_BY_ROW_MAX = 2000
MAX_PROBLEMS = 50
_CELL = re.compile(r"^(?:\S+?\.yaml:\d+: )?(?:[\w.\[\]]+: )?(?P<what>.*?) at \S+ "
                   r"row (?P<row>\d+) column (?P<col>\S+) \((?P<name>[^)]*)\)\s*$", re.S)
_DOCUMENT = re.compile(r": document \d+ \((?P<key>[^)]*)\)")


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where when it is known: a row (the file's line) and a column."""

    message: str
    row: int | None = None
    column: str = ""  # "12 (qty)": its position and its header
    document: str = ""  # the document it is in (e.g. "shipment_id EG-55012")


@dataclass
class Checked:
    """The verdict on one upload."""

    problems: list[Problem] = field(default_factory=list)
    documents: int = 0
    more: bool = False  # more problems than are listed

    @property
    def ok(self) -> bool:
        return not self.problems and self.documents > 0


def readable(data: bytes, max_bytes: int) -> tuple[str | None, str]:
    """(None, the text) for a file that may be CSV; else (why not, "")."""
    if not data:
        return "The file is empty: choose a CSV file with a header row and at least one row.", ""
    if len(data) > max_bytes:
        return (f"The file is {len(data):,} bytes; the portal takes files of up to "
                f"{max_bytes:,} bytes ({_size(max_bytes)}). Split it into smaller files."), ""
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        return ("This is a spreadsheet workbook (Excel or similar), not CSV: save it as "
                "\"CSV UTF-8 (comma delimited)\" and upload that file."), ""
    if data.startswith(b"%PDF"):
        return "This is a PDF document, not CSV.", ""
    if b"\x00" in data[:65536]:
        return ("This is not a text file (it holds binary data); the portal takes CSV "
                "text only."), ""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return (f"The file is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} is "
                "not UTF-8. Save it as \"CSV UTF-8\" and upload it again."), ""
    head = text.lstrip()[:3]
    if head.startswith("ISA"):
        return ("This is an X12 EDI file, not CSV; the portal takes CSV files only."), ""
    if head[:1] in ("{", "["):
        return "This is a JSON document, not CSV; the portal takes CSV files only.", ""
    if not text.strip():
        return "The file holds only blank lines: there is nothing to read.", ""
    return None, text


def check(data: bytes, *, partner: partners_mod.Partner, name: str,
          max_bytes: int) -> Checked:
    """Every problem the partner's mapping and the schema find in an upload (none: good)."""
    why, text = readable(data, max_bytes)
    if why is not None:
        return Checked([Problem(why)])
    try:
        results = _translate(data, partner, name)
    except (ConfigError, InputError) as exc:
        return Checked([Problem(re.sub(r"^\S+?\.yaml:\d+: ", "", str(exc)))])
    out = Checked(documents=sum(1 for r in results if r.ok))
    for r in results:
        if not r.ok:
            out.problems.append(_problem(r))
    if any(p.row is not None for p in out.problems):
        _each_row(text, name, partner, out)
    if not out.problems and not out.documents:
        out.problems.append(Problem("The file has a header row but no data rows."))
    if len(out.problems) > MAX_PROBLEMS:
        out.problems, out.more = out.problems[:MAX_PROBLEMS], True
    return out


def _translate(data: bytes, partner: partners_mod.Partner, name: str) -> list[Translated]:
    refs = {k: str(v.resolve()) for k, v in partner.mappings.items()}
    return list(translate_mod.translate(data, fmt="csv", mappings=refs, partner=partner.id,
                                        name=name))


def _problem(failure: Translated) -> Problem:
    text = str(failure.error or failure.reason)
    found = _CELL.match(text)
    doc = _DOCUMENT.search(failure.where)
    document = doc.group("key") if doc else ""
    if found:
        col, name, what = found.group("col"), found.group("name"), found.group("what")
        if col == "?":  # the header row has no such column at all
            return Problem(f"the header row has no column {name!r} (or it is empty here)",
                           int(found.group("row")), name, document)
        return Problem(what, int(found.group("row")), f"{col} ({name})", document)
    # Not about a cell: a missing column, or the schema on a whole document. The
    # mapping file's own path and line mean nothing to a partner.
    return Problem(re.sub(r"^\S+?\.yaml:\d+: ", "", text), None, "", document)


def _each_row(text: str, name: str, partner: partners_mod.Partner, out: Checked) -> None:
    """Map each data row alone (the header, blank lines up to the row's own line, the row)
    and add what is wrong with it; the row numbers stay the file's."""
    seen = {(p.row, p.column, p.message) for p in out.problems}
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    checked = 0
    for record in reader:
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in record):
            continue
        if header is None:
            header = record
            continue
        checked += 1
        if checked > ROW_BY_ROW_MAX or len(out.problems) > MAX_PROBLEMS:
            return
        single = io.StringIO()
        writer = csv.writer(single, lineterminator="\n")
        writer.writerow(header)
        single.write("\n" * (line - 2))
        writer.writerow(record)
        try:
            results = _translate(single.getvalue().encode("utf-8"), partner, name)
        except (ConfigError, InputError):
            continue  # the whole file's problem is listed already
        for failure in (r for r in results if not r.ok):
            p = _problem(failure)
            if p.row is not None and (p.row, p.column, p.message) not in seen:
                seen.add((p.row, p.column, p.message))
                out.problems.append(p)
    out.problems.sort(key=lambda p: (p.row is not None, p.row or 0))


def _size(n: int) -> str:
    return f"{n / 1048576:.1f} MB" if n >= 1048576 else f"{max(1, n // 1024)} KB"
