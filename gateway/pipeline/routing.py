"""Routes: which destinations an event goes to, by type, partner and a simple condition."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from canonical.envelope import TYPE_PREFIX
from gateway.settings import Condition, Route

_MISSING = object()


def destinations(routes: Iterable[Route], envelope: Mapping[str, Any]) -> list[str]:
    """The destinations of every route the event matches, each once, in configuration order."""
    out: list[str] = []
    for r in routes:
        if matches(r, envelope):
            out.extend(d for d in r.to if d not in out)
    return out


def matches(route: Route, envelope: Mapping[str, Any]) -> bool:
    """Whether the event's type and partner match the route's globs and its condition holds."""
    full = str(envelope.get("type", ""))
    short = full.removeprefix(TYPE_PREFIX).rsplit(".v", 1)[0]
    if not (fnmatch.fnmatchcase(short, route.type) or fnmatch.fnmatchcase(full, route.type)):
        return False
    if not fnmatch.fnmatchcase(str(envelope.get("partner", "")), route.partner):
        return False
    return route.when is None or holds(route.when, envelope)


def holds(condition: Condition, envelope: Mapping[str, Any]) -> bool:
    """Whether the condition holds for the event (fields by dotted path, e.g. data.currency)."""
    value = lookup(envelope, condition.field)
    if condition.op == "exists":
        return (value is not _MISSING) == bool(condition.value)
    if condition.op == "equals":
        return value is not _MISSING and value == condition.value
    if condition.op == "not_equals":
        return value is _MISSING or value != condition.value
    if condition.op == "in":
        return value is not _MISSING and value in condition.value
    raise ValueError(f"unknown condition {condition.op!r}")


def lookup(envelope: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (list items by number: data.lines.0.sku), or a marker if absent."""
    value: Any = envelope
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif (isinstance(value, list) and part.isascii() and part.isdigit()
              and int(part) < len(value)):
            value = value[int(part)]
        else:
            return _MISSING
    return value
