"""Read a mapping file's YAML keeping the line of every key, so errors can say `file:line: key`.

Scalars follow YAML 1.2 rather than PyYAML's YAML 1.1: X12 codes such as `00`, `002`,
`NO`, `Y` or `ON` stay strings instead of becoming 0, 2 or booleans. Keys are always
strings, exactly as written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from canonical.errors import MappingFileError

Path_ = tuple[str | int, ...]
# Where each value came from: path in the document -> (file, line).
Marks = dict[Path_, tuple[str, int]]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans, integers and floats."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                       "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"),
                              list("tf"))
# No leading zeros: "002" is a code, not the number 2.
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"),
                              list("-0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^-?(?:0|[1-9][0-9]*)\.[0-9]+$"), list("-0123456789"))


def key_text(path: Path_) -> str:
    """A dotted key for messages: fields.lines.fields.quantity, concat[1]."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def _convert(node: yaml.Node, loader: _Loader, path: Path_, file: str, marks: Marks) -> Any:
    marks[path] = (file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise MappingFileError(f"{file}:{knode.start_mark.line + 1}: {key_text(path)}: "
                                       "keys must be plain text", file=file,
                                       line=knode.start_mark.line + 1, key=key_text(path))
            key = str(knode.value)
            if key == "<<":
                raise MappingFileError(f"{file}:{knode.start_mark.line + 1}: YAML merge keys "
                                       "are not supported; use extends:", file=file,
                                       line=knode.start_mark.line + 1)
            if key in out:
                line = knode.start_mark.line + 1
                raise MappingFileError(f"{file}:{line}: {key_text((*path, key))}: duplicate key",
                                       file=file, line=line, key=key_text((*path, key)))
            out[key] = _convert(vnode, loader, (*path, key), file, marks)
            marks[(*path, key)] = (file, knode.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(n, loader, (*path, i), file, marks) for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load(path: str | Path, *, text: str | None = None) -> tuple[Any, Marks]:
    """Parse one YAML file into plain data and the line of every key and item."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise MappingFileError(f"{file}: cannot read: {exc.strerror or exc}", file=file) from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        marks: Marks = {}
        data = {} if node is None else _convert(node, loader, (), file, marks)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise MappingFileError(f"{file}:{line}: not valid YAML: {exc.problem}", file=file,
                               line=line) from exc
    finally:
        loader.dispose()
    return data, marks


def mark_of(marks: Marks, path: Path_) -> tuple[str, int | None]:
    """The file and line of a path, or of its nearest ancestor that has one."""
    p = tuple(path)
    while p:
        if p in marks:
            return marks[p]
        p = p[:-1]
    found = marks.get(())
    return (found[0], found[1]) if found else ("", None)
