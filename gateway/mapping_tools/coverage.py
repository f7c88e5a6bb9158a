"""What an input holds that a mapping leaves out, so data loss is never silent.

The mapping runs in the language's tracking mode; every non-empty X12 element (CSV cell,
JSON value) that none of its selectors read is listed. Envelope and structure elements
(ST01/ST02, SE01/SE02, HL01/HL02, LS/LE) are the reader's, not the mapping's, and are
not listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.mapping_tools import inputs
from mappings.language import load_mapping
from mappings.sources import csv_rows

STRUCTURE = frozenset({("ST", 1), ("ST", 2), ("ST", 3), ("SE", 1), ("SE", 2), ("HL", 1),
                       ("HL", 2), ("LS", 1), ("LE", 1)})


@dataclass(frozen=True)
class Dropped:
    """One source value the mapping did not read."""

    where: str  # "segment 5 (PER, line 6)", "orders.csv row 3", "JSON"
    ref: str  # PER02, a column name, a JSON path
    value: str
    segment: str = ""  # X12 segment id; "" otherwise
    qualifier: str = ""  # the segment's first element (N1*BY -> BY), to tell repeats apart


@dataclass
class Coverage:
    present: int  # source values with content
    dropped: list[Dropped]
    documents: int

    @property
    def used(self) -> int:
        return self.present - len(self.dropped)


def _x12(mapping_path: Path, source: Path) -> Coverage:
    m = load_mapping(mapping_path, track=True)
    sets = [s for s in inputs.x12_sets(source) if not m.document or s.set_id == m.document]
    present, dropped = 0, []
    for s in sets:
        m.reads.clear()  # type: ignore[union-attr]
        m.map_x12(s.segments, m.x12_spec(s.set_id, s.version), component=s.component)
        reads = m.reads or set()
        start = s.segments[0].position
        for seg in s.segments:
            sid = seg.fields[0]
            for n, value in enumerate(seg.fields[1:], 1):
                if not value or (sid, n) in STRUCTURE:
                    continue
                present += 1
                if (seg.position, n) not in reads:
                    where = f"segment {seg.position - start + 1} ({sid}, line {seg.line})"
                    dropped.append(Dropped(where, f"{sid}{n:02d}", value, sid, seg.get(1)))
    return Coverage(present, dropped, len(sets))


def _csv(mapping_path: Path, source: Path, details: Path | None) -> Coverage:
    m = load_mapping(mapping_path, track=True)
    docs = inputs.map_file(m, source, details)
    reads = m.reads or set()
    opts = m.definition.get("csv") or {}
    present, dropped = 0, []
    files = [(source, opts)]
    if details is not None:
        files.append((details, opts.get("details") or {}))
    for f, o in files:
        rows = csv_rows.read_rows(inputs.read_text(f), columns=o.get("columns"),
                                  header=o.get("header", True), delimiter=o.get("delimiter", ","),
                                  file=f.name)
        for row in rows:
            for col in row.columns:
                value = row.values.get(col, "")
                if not value.strip():
                    continue
                present += 1
                if (row.file, row.number, col) not in reads:
                    dropped.append(Dropped(row.where(col), col, value))
    return Coverage(present, dropped, len(docs))


def _json_leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [x for k, v in value.items()
                for x in _json_leaves(v, f"{path}/{k.replace('~', '~0').replace('/', '~1')}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in _json_leaves(v, f"{path}/{i}")]
    return [(path, value)]


def _json(mapping_path: Path, source: Path) -> Coverage:
    m = load_mapping(mapping_path, track=True)
    doc = inputs.read_json(source)
    m.map_json(doc)
    reads = m.reads or set()
    present, dropped = 0, []
    for path, value in _json_leaves(doc, ""):
        if value is None or value == "":
            continue
        present += 1
        # A value read whole (an object or array) covers everything inside it.
        if path not in reads and not any(path.startswith(r + "/") for r in reads):
            dropped.append(Dropped("JSON", path, str(value)))
    return Coverage(present, dropped, 1)


def coverage(mapping_path: Path, source: Path, details: Path | None = None) -> Coverage:
    """Run the mapping on source in tracking mode; list what it read nothing of."""
    fmt = load_mapping(mapping_path).format
    if fmt == "x12":
        return _x12(mapping_path, source)
    if fmt == "csv":
        return _csv(mapping_path, source, details)
    return _json(mapping_path, source)
