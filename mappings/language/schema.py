"""Check a mapping file against mapping.schema.json; every error says `file:line: key: message`."""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema

from canonical.errors import MappingFileError
from mappings.language.yaml_source import Marks, key_text, mark_of

# Enough to fix a file in one go without flooding the terminal.
MAX_SHOWN = 10


@functools.cache
def mapping_schema() -> dict[str, Any]:
    """The JSON Schema of mapping files (draft 2020-12)."""
    text = resources.files("mappings.language").joinpath("mapping.schema.json").read_text("utf-8")
    return json.loads(text)


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(mapping_schema())


def _best(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For anyOf failures, the branch that got furthest says the most useful thing."""
    if error.context:
        # A "not of type" error is from a branch meant for another kind of value.
        pool = [e for e in error.context if e.validator != "type"] or list(error.context)
        deepest = max(pool, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) >= len(error.absolute_path):
            return _best(deepest)
    return error


def _extra(error: jsonschema.ValidationError) -> list[str]:
    """The keys an additionalProperties error is about (not those a pattern allows)."""
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return sorted(k for k in set(error.instance) - set(error.schema.get("properties", {}))
                  if not any(p.search(k) for p in patterns))


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = _extra(error)
        return f"unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
    if error.validator == "anyOf" and isinstance(error.instance, dict | list | int | float):
        return f"{error.instance!r} is not a selector, null or a field object"
    msg = error.message
    return msg if len(msg) <= 200 else msg[:197] + "..."


def problems(data: Any, marks: Marks) -> list[str]:
    """Every schema violation, as `file:line: key: message`, in file order."""
    out = []
    for err in _validator().iter_errors(data):
        err = _best(err)
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = _extra(err)
            if extra:
                path = (*path, extra[0])  # point at the unknown key's own line
        file, line = mark_of(marks, path)
        out.append((file, line or 0, f"{file}:{line}: {key_text(path)}: {_message(err)}"))
    out.sort()
    return [m for _, _, m in out]


def check(data: Any, marks: Marks) -> None:
    """Raise MappingFileError listing the violations, if there are any."""
    found = problems(data, marks)
    if not found:
        return
    shown = found[:MAX_SHOWN]
    more = len(found) - len(shown)
    text = "\n".join(shown) + (f"\n... and {more} more" if more > 0 else "")
    first = shown[0].split(":", 2)
    raise MappingFileError(text, file=first[0],
                           line=int(first[1]) if first[1].isascii() and first[1].isdigit() else None)
