"""The CloudEvents 1.0 JSON envelope around every canonical event, with a deterministic id."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from canonical import errors, schemas

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
TYPE_PREFIX = "com.edi-gateway."
SOURCE_PREFIX = "edigw://partners/"

# Fixed forever: every event id ever sent is derived under it, and ERPs drop duplicates by id.
# Changing it would make every retried or replayed document look new. (Made once with uuid4.)
ID_NAMESPACE = uuid.UUID("5b0c6f0e-3f4e-4c1a-9d8e-6a2f0e9b7c41")

# The data key that is the business key of each event type, used as the CloudEvents subject.
SUBJECT_KEYS: Mapping[str, str] = {
    "purchase_order": "po_number",
    "po_acknowledgment": "po_number",
    "ship_notice": "shipment_id",
    "invoice": "invoice_number",
}

_CORE = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype",
         "dataschema", "data")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")
_TYPE = re.compile(r"^com\.edi-gateway\.(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)$")

Extension = str | int | bool


@dataclass(frozen=True)
class Event:
    """A canonical event: the CloudEvents context attributes and the document as data."""

    id: str
    source: str
    type: str
    time: str
    dataschema: str
    data: dict[str, Any]
    subject: str | None = None
    extensions: dict[str, Extension] = field(default_factory=dict)
    specversion: str = SPECVERSION
    datacontenttype: str = CONTENT_TYPE

    @property
    def event_type(self) -> str:
        """The event type without version, e.g. purchase_order."""
        return _parse_type(self.type)[0]

    @property
    def version(self) -> int:
        """The schema version of data."""
        return _parse_type(self.type)[1]

    @property
    def partner(self) -> str | None:
        """The partner extension attribute."""
        value = self.extensions.get("partner")
        return value if isinstance(value, str) else None

    @property
    def po_number(self) -> str | None:
        """The ponumber extension attribute."""
        value = self.extensions.get("ponumber")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        """The event as a CloudEvents JSON object (extensions flattened beside the core)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "dataschema": self.dataschema,
            "data": self.data,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out.update(self.extensions)
        return out


def event_id(partner: str, event_type: str, keys: Mapping[str, str]) -> str:
    """The deterministic event id (UUIDv5) of one document of one partner."""
    if not partner:
        raise ValueError("event_id needs a partner")
    if not _EVENT_TYPE.match(event_type):
        # The version is left out on purpose: a document re-emitted under a v2 schema is
        # still the same document, and the ERP should still see it as a duplicate.
        raise ValueError(f"event_id needs a bare event type such as purchase_order, not {event_type!r}")
    if not keys:
        raise ValueError("event_id needs at least one key (control numbers or business keys)")
    for name, value in keys.items():
        if not isinstance(name, str) or not isinstance(value, str):
            # 123 and "000000123" would silently give two ids for one document.
            raise TypeError(f"event_id keys and values must be strings, got {name!r}: {value!r}")
    # JSON of a list is an unambiguous encoding: no choice of strings can make two different
    # inputs spell the same name, so only a SHA-1 collision could give two documents one id.
    name = json.dumps([partner, event_type, sorted(keys.items())], separators=(",", ":"))
    return str(uuid.uuid5(ID_NAMESPACE, name))


def x12_control(isa13: str, gs06: str, st02: str) -> str:
    """The x12control extension value: ISA13.GS06.ST02."""
    return f"{isa13}.{gs06}.{st02}"


def x12_keys(control: str) -> dict[str, str]:
    """The event_id keys of an X12 transaction set, from its x12control value."""
    # Control numbers, not business keys: a replacement PO reuses its PO number but is a new
    # transaction set, and must not be dropped by the ERP as a duplicate of the original.
    isa13, gs06, st02 = control.split(".")
    return {"isa13": isa13, "gs06": gs06, "st02": st02}


def make_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    partner: str,
    keys: Mapping[str, str],
    version: int = 1,
    subject: str | None = None,
    time: datetime | None = None,
    x12control: str | None = None,
    extensions: Mapping[str, Extension] | None = None,
    check: bool = True,
) -> Event:
    """A new event for one canonical document, checked against its schema unless check=False."""
    if check:
        schemas.check(event_type, data, version)
    data = _copied(data)  # the event must not change when the caller's dict does
    ext: dict[str, Extension] = {"partner": partner}
    po_number = _po_number(data)
    if po_number:
        ext["ponumber"] = po_number
    if x12control:
        ext["x12control"] = x12control
    for name, value in (extensions or {}).items():
        if name in _CORE or name in ext:
            raise ValueError(f"extension {name!r} would overwrite an attribute the gateway sets")
        ext[name] = value
    when = time or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    if subject is None and isinstance(data.get(SUBJECT_KEYS.get(event_type, "")), str):
        subject = data[SUBJECT_KEYS[event_type]]
    event = Event(
        id=event_id(partner, event_type, keys),
        source=SOURCE_PREFIX + quote(partner, safe=""),
        type=f"{TYPE_PREFIX}{event_type}.v{version}",
        time=format_time(when),
        dataschema=schemas.schema_id(event_type, version),
        data=data,
        subject=subject,
        extensions=ext,
    )
    # Cheap, and catches bad extension names before anything is stored or sent.
    found = schemas.validate_envelope(event.to_dict())
    if found:
        raise errors.EnvelopeError("event envelope is not a canonical CloudEvent", violations=found)
    return event


_SCALARS = (str, int, float, bool, type(None))


def _copied(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): several times cheaper than
    copy.deepcopy, which keeps a memo for shared and cyclic objects JSON cannot have."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, Mapping):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return copy.deepcopy(value)  # anything else (a Decimal, a tuple): as it always was


def to_json(event: Event) -> bytes:
    """The event as compact UTF-8 JSON with sorted keys, so equal events give equal bytes."""
    return json.dumps(
        event.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def from_json(raw: bytes | str, *, check_data: bool = True) -> Event:
    """Read an event, checking the envelope and (unless check_data=False) its data."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise errors.EnvelopeError(f"event is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise errors.EnvelopeError("event is not a JSON object")
    return from_dict(obj, check_data=check_data)


def from_dict(obj: dict[str, Any], *, check_data: bool = True) -> Event:
    """An event from its parsed JSON (kept by reference, not copied), checked as from_json."""
    found = schemas.validate_envelope(obj)
    if found:
        raise errors.EnvelopeError("event envelope is not a canonical CloudEvent", violations=found)
    event_type, version = _parse_type(obj["type"])
    expected_schema = schemas.schema_id(event_type, version)  # UnknownEventType if not ours
    if obj["dataschema"] != expected_schema:
        raise errors.EnvelopeError(
            f"dataschema {obj['dataschema']!r} does not match type {obj['type']!r}"
            f" (expected {expected_schema!r})"
        )
    if check_data:
        schemas.check(event_type, obj["data"], version)
    return Event(
        id=obj["id"],
        source=obj["source"],
        type=obj["type"],
        time=obj.get("time", ""),
        dataschema=obj["dataschema"],
        data=obj["data"],
        subject=obj.get("subject"),
        extensions={k: v for k, v in obj.items() if k not in _CORE},
        specversion=obj["specversion"],
        datacontenttype=obj["datacontenttype"],
    )


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z, e.g. 2024-03-01T12:00:00.000Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_type(type_: str) -> tuple[str, int]:
    match = _TYPE.match(type_)
    if not match:
        raise errors.UnknownEventType(f"not a canonical event type: {type_!r}")
    return match["name"], int(match["version"])


def _po_number(data: Mapping[str, Any]) -> str | None:
    """The one PO number a document concerns, if there is exactly one."""
    if isinstance(data.get("po_number"), str):
        return str(data["po_number"])
    # A ship notice names its POs per order; only a single-PO shipment has one to route by.
    numbers = {o.get("po_number") for o in data.get("orders") or [] if isinstance(o, dict)}
    if len(numbers) != 1:
        return None
    (only,) = numbers
    return only if isinstance(only, str) else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
