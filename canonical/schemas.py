"""Canonical JSON Schemas: loaded once from the package, checked with jsonschema, errors named by path.

Two validators per schema, both built once: jsonschema-rs answers "does it conform?" in
tens of microseconds (the pipeline's path, one call per event), and python-jsonschema,
the reference, explains a document that does not (every violation, by path). A "no" from
the fast check is always handed to the reference, which decides; the one way the pair
could go wrong is the fast check accepting what the reference refuses, and
tests/unit/test_schema_fast_path.py looks for exactly that over every shipped document
and mutations of them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
import referencing
import referencing.jsonschema

from canonical import errors

BASE_URI = "https://schemas.edi-gateway.dev/canonical/"

# Files named <name>.v<N>.json; these two are building blocks, not event types.
_FILE_NAME = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.json$")
_NOT_EVENTS = frozenset({"common", "cloudevent"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# jsonschema quotes the whole offending instance; a huge object in a log line helps no one.
_MAX_MESSAGE = 240
# The "format" values the shipped schemas use (a test keeps this list complete).
_USED_FORMATS = ("date", "date-time", "sscc18")

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class SchemaViolation:
    """One place where data does not match its schema."""

    path: str
    message: str
    location: Location = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _sscc18_ok(value: object) -> bool:
    """Whether an 18-digit string ends in its GS1 mod-10 check digit."""
    # Anything not 18 digits is the pattern's to report; one message per fault is enough.
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{18}", value):
        return True
    body = [int(c) for c in value[:17]]
    # GS1: weights 3,1,3,... from the digit next to the check digit leftwards.
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == int(value[17])


def _format_checker() -> jsonschema.FormatChecker:
    """The draft 2020-12 format checks plus our own (sscc18)."""
    checker = jsonschema.FormatChecker(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("sscc18")(_sscc18_ok)
    return checker


@functools.cache
def _schemas() -> dict[tuple[str, int], dict[str, Any]]:
    """Every schema file shipped in canonical/schemas, by (name, version)."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for entry in resources.files("canonical").joinpath("schemas").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found[(match["name"], int(match["version"]))] = json.loads(entry.read_text("utf-8"))
    return found


@functools.cache
def _registry() -> referencing.Registry:
    """A registry of every schema by its $id, so $ref to common.v1.json resolves offline."""
    resources_by_id = [
        (schema["$id"], referencing.Resource(schema, referencing.jsonschema.DRAFT202012))
        for schema in _schemas().values()
    ]
    return referencing.Registry().with_resources(resources_by_id).crawl()


@functools.cache
def _validator(name: str, version: int) -> jsonschema.Draft202012Validator:
    """The validator for one schema, built once."""
    return jsonschema.Draft202012Validator(
        _schemas()[(name, version)], registry=_registry(), format_checker=_format_checker()
    )


@functools.cache
def _fast(name: str, version: int) -> jsonschema_rs.Draft202012Validator:
    """The compiled (Rust) validator for one schema: a yes/no answer, built once."""
    registry = jsonschema_rs.Registry([(s["$id"], s) for s in _schemas().values()])
    # The formats our schemas use are checked by the reference's own functions, so the
    # two validators cannot differ on what a date or a date-time is.
    checker = _format_checker()
    formats = {f: functools.partial(checker.conforms, format=f) for f in _USED_FORMATS}
    return jsonschema_rs.Draft202012Validator(
        _schemas()[(name, version)], formats=formats, validate_formats=True,
        registry=registry)


def event_types() -> list[str]:
    """The canonical event types, e.g. ["invoice", "po_acknowledgment", ...]."""
    return sorted({name for name, _ in _schemas() if name not in _NOT_EVENTS})


def versions(event_type: str) -> list[int]:
    """The schema versions shipped for an event type, oldest first."""
    return sorted(v for name, v in _schemas() if name == event_type and name not in _NOT_EVENTS)


def schema_id(event_type: str, version: int = 1) -> str:
    """The $id of an event type's schema, used as the envelope's dataschema."""
    return str(schema(event_type, version)["$id"])


def schema(event_type: str, version: int = 1) -> dict[str, Any]:
    """The schema document of an event type and version."""
    if event_type in _NOT_EVENTS or (event_type, version) not in _schemas():
        known = ", ".join(f"{t}.v{v}" for t in event_types() for v in versions(t))
        raise errors.UnknownEventType(f"no canonical schema {event_type}.v{version} (known: {known})")
    return _schemas()[(event_type, version)]


def validate(event_type: str, data: Mapping[str, Any], version: int = 1) -> list[SchemaViolation]:
    """Every way data breaks its event type's schema; empty when it conforms."""
    schema(event_type, version)  # raises UnknownEventType before we build anything
    if _fast(event_type, version).is_valid(data):
        return []
    return _violations(_validator(event_type, version), data)


def check(event_type: str, data: Mapping[str, Any], version: int = 1) -> None:
    """Raise SchemaError listing every violation unless data conforms."""
    found = validate(event_type, data, version)
    if found:
        raise errors.SchemaError(
            f"{event_type}.v{version} data does not match its schema", violations=found
        )


def validate_envelope(envelope: Mapping[str, Any]) -> list[SchemaViolation]:
    """Every way an envelope breaks cloudevent.v1.json; empty when it conforms."""
    if _fast("cloudevent", 1).is_valid(envelope):
        return []
    return _violations(_validator("cloudevent", 1), envelope)


def render_path(location: Sequence[str | int]) -> str:
    """A JSON location as a readable path: lines[3].quantity.value, or $ for the root."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"  # keys with dots or spaces stay unambiguous
    return out or "$"


def _violations(validator: jsonschema.Draft202012Validator, instance: object) -> list[SchemaViolation]:
    """All errors of one validation run as violations, deduplicated, in document order."""
    seen: dict[tuple[Location, str], SchemaViolation] = {}
    for error in validator.iter_errors(instance):
        for violation in _explain(error):
            seen.setdefault((violation.location, violation.message), violation)
    return sorted(seen.values(), key=lambda v: (_sort_key(v.location), v.message))


def _explain(error: jsonschema.ValidationError) -> Iterator[SchemaViolation]:
    """One error as violations, pointing at the missing or unexpected key itself."""
    where: Location = tuple(error.absolute_path)
    instance = error.instance
    # jsonschema reports both of these at the parent object; an analyst wants the key.
    if error.validator == "required" and isinstance(instance, dict):
        for name in error.validator_value:
            if name not in instance:
                yield _violation((*where, name), "is required")
        return
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        for name in _unexpected(error.schema, instance):
            yield _violation(
                (*where, name), "is not a property here (partner-specific data goes in extensions)"
            )
        return
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    yield _violation(where, message)


def _unexpected(schema_node: Mapping[str, Any], instance: Mapping[str, Any]) -> list[str]:
    """The keys of instance that the schema's properties and patternProperties do not allow."""
    known = schema_node.get("properties", {})
    patterns = [re.compile(p) for p in schema_node.get("patternProperties", {})]
    return [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]


def _violation(location: Location, message: str) -> SchemaViolation:
    return SchemaViolation(path=render_path(location), message=message, location=location)


def _sort_key(location: Location) -> tuple[tuple[int, int | str], ...]:
    # Numeric indexes sort as numbers, so lines[10] comes after lines[2].
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in location)
