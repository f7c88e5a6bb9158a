"""JSON documents read by pointer-like paths (`/lines/*/qty`), each value with the path it came from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

WILDCARD = "*"


class Scope:
    """A JSON value and its path from the document root (JSON Pointer syntax)."""

    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str = "") -> None:
        self.value = value
        self.path = path

    def __repr__(self) -> str:
        return f"Scope({self.path or '/'!r})"


def parse_path(text: str) -> tuple[str, ...]:
    """`/lines/*/qty` or `lines/*/qty` into its steps; `~1` and `~0` as in JSON Pointer."""
    body = text[1:] if text.startswith("/") else text
    if not body:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in body.split("/"))


def _step(value: Any, step: str) -> Any:
    if isinstance(value, dict):
        return value.get(step)
    if isinstance(value, list) and step.isascii() and step.isdigit():
        i = int(step)
        return value[i] if i < len(value) else None
    return None


def _escape(step: str) -> str:
    return step.replace("~", "~0").replace("/", "~1")


def get(value: Any, steps: tuple[str, ...]) -> Any:
    """The value at a path without wildcards, or None."""
    for s in steps:
        value = _step(value, s)
        if value is None:
            return None
    return value


def scopes(scope: Scope, steps: tuple[str, ...]) -> Iterator[Scope]:
    """Every value a path reaches (several through `*`), each with its own path."""
    if not steps:
        yield scope
        return
    head, rest = steps[0], steps[1:]
    value = scope.value
    if head == WILDCARD:
        if isinstance(value, list):
            for i, item in enumerate(value):
                yield from scopes(Scope(item, f"{scope.path}/{i}"), rest)
        elif isinstance(value, dict):
            for k, item in value.items():
                yield from scopes(Scope(item, f"{scope.path}/{_escape(k)}"), rest)
        return
    nxt = _step(value, head)
    if nxt is not None:
        yield from scopes(Scope(nxt, f"{scope.path}/{_escape(head)}"), rest)


def elements(scope: Scope, steps: tuple[str, ...]) -> list[Scope]:
    """What `each:` iterates: the items of the array a path reaches (or the values it reaches)."""
    found = list(scopes(scope, steps))
    if len(found) == 1 and isinstance(found[0].value, list) and WILDCARD not in steps:
        arr = found[0]
        return [Scope(item, f"{arr.path}/{i}") for i, item in enumerate(arr.value)]
    return found
