"""Mapping files compiled once per process, and what a partner's mapping references mean."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from canonical.errors import MappingFileError
from mappings.language import CompiledMapping, load_mapping

# Where base and partner mapping references are relative to, unless a caller says otherwise.
MAPPING_DIR = Path(__file__).resolve().parent


def resolve(root: str | os.PathLike[str], ref: str | os.PathLike[str]) -> Path:
    """A mapping reference as written in a partner file, relative to the mappings folder."""
    return _resolved(os.fspath(root), os.fspath(ref))


@functools.lru_cache(maxsize=4096)
def _resolved(root: str, ref: str) -> Path:
    # The same Path object for the same reference: a path's hash (COMPILED's key) is
    # worked out once per object, and every message looks its mappings up.
    path = Path(ref)
    return path if path.is_absolute() else Path(root) / path


def formats(mappings: Mapping[str, str | os.PathLike[str]],
            mapping_dir: str | os.PathLike[str] = MAPPING_DIR) -> set[str]:
    """The formats a partner's mappings read (a mapping that cannot be loaded is left out)."""
    found = set()
    for ref in mappings.values():
        try:
            found.add(load(resolve(mapping_dir, ref)).format)
        except MappingFileError:
            continue
    return found


# Compiled once per process and reused while the files of the extends chain are unchanged:
# compiling costs far more than mapping a document.
COMPILED: dict[Path, tuple[tuple[tuple[str, int, int], ...], CompiledMapping]] = {}


def stamp(files: list[str]) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple((f, (st := os.stat(f)).st_mtime_ns, st.st_size) for f in files)
    except OSError:
        return ()


def load(path: Path, fmt: str | None = None) -> CompiledMapping:
    """The compiled mapping (with an event: type; of format fmt when given)."""
    hit = COMPILED.get(path)
    if hit is not None and hit[0] and hit[0] == stamp(hit[1].files):
        mapping = hit[1]
    else:
        if not path.is_file():
            what = "this transaction set" if fmt == "x12" else "this document"
            raise MappingFileError(f"{path}: no mapping for {what}", file=str(path))
        mapping = load_mapping(path)
        COMPILED[path] = (stamp(mapping.files), mapping)
    if (fmt is not None and mapping.format != fmt) or not mapping.event:
        raise MappingFileError(f"{path}: not an {(fmt or mapping.format).upper()} mapping "
                               "with an event: type", file=str(path))
    return mapping


def mapping_key(data_path: str) -> str:
    """`lines[3].quantity.value` -> `fields.lines.fields.quantity.fields.value`."""
    names = [p.split("[")[0] for p in data_path.split(".") if p.split("[")[0]]
    return ".".join(f"fields.{n}" for n in names) or "fields"
