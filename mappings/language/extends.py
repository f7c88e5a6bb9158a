"""`extends:`: a partner mapping states only how it differs from a base mapping.

Merge rules (docs/mapping-language.md, "extends"):
- mappings merge key by key, recursively; the partner's value wins;
- `null` removes the inherited key (`fields: {lines: {fields: {pack_size: null}}}`);
- a field object that names its own source (select, column, path, const, concat, first)
  replaces the inherited field whole, so old transforms do not leak onto a new source;
  a field object without a source (`{default: EA}`) is merged into the inherited one;
- lists (concat, list, when, csv.columns) are replaced, never appended;
- tables merge code by code, so a partner adds or overrides codes; `CODE: null` drops one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from canonical.errors import MappingFileError
from mappings.language import yaml_source
from mappings.language.yaml_source import Marks, Path_

SOURCE_KEYS = frozenset({"select", "column", "path", "const", "concat", "first"})
MAX_DEPTH = 8  # a chain longer than this is surely a loop or a mistake


_ELEMENT = re.compile(r"^[A-Z][A-Z0-9]{1,2}[0-9]{2}$")


def _is_field_path(path: Path_) -> bool:
    """Whether `path` names a field: its parent key is `fields`, or it is an element of a
    segment of an outbound mapping (segments.BEG.BEG02)."""
    if len(path) >= 2 and path[-2] == "fields":
        return True
    return (len(path) >= 3 and "segments" in path and isinstance(path[-1], str)
            and _ELEMENT.match(path[-1]) is not None)


def merge(base: Any, over: Any, path: Path_, marks: Marks, over_marks: Marks) -> Any:
    """`over` applied on top of `base`; marks of the values `over` brings are copied."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        _copy_marks(path, over_marks, marks)
        return over
    if _is_field_path(path) and SOURCE_KEYS & over.keys():
        _drop_marks(path, marks)
        _copy_marks(path, over_marks, marks)
        return over
    out = dict(base)
    for key, value in over.items():
        sub = (*path, key)
        if value is None:
            out.pop(key, None)
            _drop_marks(sub, marks)
        elif key in out:
            out[key] = merge(out[key], value, sub, marks, over_marks)
        else:
            out[key] = value
            _copy_marks(sub, over_marks, marks)
    if path in over_marks:
        marks[path] = over_marks[path]
    return out


def _copy_marks(path: Path_, src: Marks, dst: Marks) -> None:
    n = len(path)
    for p, m in src.items():
        if p[:n] == path:
            dst[p] = m


def _drop_marks(path: Path_, marks: Marks) -> None:
    n = len(path)
    for p in [p for p in marks if p[:n] == path]:
        del marks[p]


def resolve(path: str | Path, *, text: str | None = None,
            _seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Marks, list[str]]:
    """A mapping file with its `extends:` chain merged in: (data, marks, files base first)."""
    file = str(path)
    data, marks = yaml_source.load(path, text=text)
    if not isinstance(data, dict):
        raise MappingFileError(f"{file}:1: a mapping file must be a YAML mapping (key: value)",
                               file=file, line=1)
    parent = data.get("extends")
    if parent is None:
        return data, marks, [file]
    line = marks.get(("extends",), (file, 1))[1]
    if not isinstance(parent, str):
        raise MappingFileError(f"{file}:{line}: extends: must be a file name", file=file,
                               line=line, key="extends")
    # Normalised, so errors say mappings/base/850.4010.yaml, not partners/acme/../../base/...
    base_path = Path(os.path.normpath(Path(file).parent / parent))
    key = str(base_path.resolve())
    if key in _seen or len(_seen) >= MAX_DEPTH:
        raise MappingFileError(f"{file}:{line}: extends: {parent} makes a cycle (or a chain "
                               f"longer than {MAX_DEPTH})", file=file, line=line, key="extends")
    if not base_path.is_file():
        raise MappingFileError(f"{file}:{line}: extends: {parent} not found (looked for "
                               f"{base_path})", file=file, line=line, key="extends")
    base, base_marks, files = resolve(base_path, _seen=(*_seen, key))
    merged_marks = dict(base_marks)
    merged = merge(base, {k: v for k, v in data.items() if k != "extends"}, (), merged_marks,
                   marks)
    merged_marks[()] = (file, 1)
    return merged, merged_marks, [*files, file]
