"""Read an input file the way a mapping needs it: X12 sets with their envelope, CSV text, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from canonical.errors import InputError, X12ReadError
from mappings import translate
from mappings.language.mapping import CompiledMapping
from mappings.translate import X12Set

FORMATS = ("x12", "csv", "json")


class UnreadableInput(InputError):
    """The input cannot be read in the format it claims."""


def sniff(path: Path) -> str:
    """x12, csv or json: the rule the pipeline uses (mappings.translate.detect), with the
    file's suffix (.csv, .txt, .json) standing for what a partner's mappings say it sends."""
    suffix = path.suffix.lower()
    sends = {"csv"} if suffix in (".csv", ".txt") else {"json"} if suffix == ".json" else set()
    return translate.detect(_head(path).encode("utf-8"), sends)


def _head(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return f.read(512).decode("utf-8", "replace").lstrip("\ufeff")
    except OSError as exc:
        raise UnreadableInput(f"{path}: cannot read: {exc.strerror or exc}") from exc


def x12_sets(path: Path) -> list[X12Set]:
    """Every ST..SE run of an X12 file, in file order, with its ISA and GS."""
    try:
        return translate.read_sets(path)
    except X12ReadError as exc:
        raise UnreadableInput(f"{path}: not X12: {exc}") from exc
    except OSError as exc:
        raise UnreadableInput(f"{path}: cannot read: {exc.strerror or exc}") from exc


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInput(f"{path}: cannot read as UTF-8 text: {exc}") from exc


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except ValueError as exc:
        raise UnreadableInput(f"{path}: not JSON: {exc}") from exc


def map_file(m: CompiledMapping, path: Path, details: Path | None = None) -> list[dict[str, Any]]:
    """Every document a mapping makes of a file: one per matching X12 set, CSV document or JSON."""
    if m.format == "x12":
        sets = [s for s in x12_sets(path) if not m.document or s.set_id == m.document]
        return [m.map_x12(s.segments, m.x12_spec(s.set_id, s.version), component=s.component)
                for s in sets]
    if m.format == "csv":
        detail_text = read_text(details) if details is not None else None
        return m.map_csv(read_text(path), detail_text, file=path.name,
                         details_file=details.name if details else "")
    return [m.map_json(read_json(path))]
