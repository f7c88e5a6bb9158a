"""Which dead letters an operator means: `stage=map partner=acme since=2h reason~timeout`."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from canonical.errors import GatewayError

# The work item kinds of the pipeline; a dead letter's stage is one of them.
STAGES = ("validate", "map", "route", "deliver", "ack", "send")
STATUSES = ("parked", "replayed", "discarded")
# Longer expressions are a mistake or an attack, never an operator's filter.
MAX_EXPRESSION = 1000
MAX_VALUES = 50
MAX_VALUE_LENGTH = 200
# Dead letters in one page of a listing.
MAX_PAGE = 500

_DURATION = re.compile(r"^(?P<n>\d{1,6})(?P<unit>s|m|h|d|w)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TERM = re.compile(r"^(?P<key>[a-z_]+)(?P<op>~|=)(?P<value>.*)$", re.DOTALL)
_KEYS = {
    "stage": "=", "partner": "=", "endpoint": "=", "status": "=",
    "since": "=", "until": "=", "reason": "=~", "message": "=",
}
_EXAMPLE = "stage=map partner=acme since=2h reason~timeout"


class FilterError(GatewayError):
    """The dead-letter filter is not understood."""


@dataclass(frozen=True)
class Filter:
    """What to select; empty fields select everything. Statuses default to parked."""

    stages: tuple[str, ...] = ()
    partners: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("parked",)
    since: datetime | None = None  # last failure at or after
    until: datetime | None = None  # last failure before
    reason_contains: str | None = None  # case-insensitive substring of the reason
    message_id: int | None = None
    terms: tuple[str, ...] = field(default=(), compare=False)  # as written, for messages

    @property
    def empty(self) -> bool:
        """Whether it selects every parked dead letter (replay refuses that without --all)."""
        return not (self.stages or self.partners or self.endpoints or self.since
                    or self.until or self.reason_contains or self.message_id is not None)

    def describe(self) -> str:
        """The filter as an expression that parses back to it."""
        return " ".join(self.terms) or "(all parked)"


def parse(expression: str, *, now: datetime | None = None) -> Filter:
    """A Filter from `key=value` / `reason~text` terms separated by blanks (quotes allowed)."""
    if len(expression) > MAX_EXPRESSION:
        raise FilterError(f"filter is longer than {MAX_EXPRESSION} characters")
    try:
        terms = shlex.split(expression)
    except ValueError as exc:
        raise FilterError(f"filter {expression!r}: {exc}") from None
    values: dict[str, str] = {}
    for term in terms:
        match = _TERM.match(term)
        if not match:
            raise FilterError(f"filter term {term!r} is not key=value or reason~text "
                              f"(e.g. {_EXAMPLE})")
        key, op, value = match["key"], match["op"], match["value"]
        if key not in _KEYS:
            raise FilterError(f"filter term {term!r}: unknown key {key!r} "
                              f"(known: {', '.join(sorted(_KEYS))})")
        if op not in _KEYS[key]:
            raise FilterError(f"filter term {term!r}: {key} takes '=', only reason takes '~'")
        if key in values:
            raise FilterError(f"filter term {term!r}: {key} is given twice "
                              "(list values with commas: stage=map,route)")
        values[key] = value
    built = build(
        stages=_split(values.get("stage")), partners=_split(values.get("partner")),
        endpoints=_split(values.get("endpoint")), statuses=_split(values.get("status")),
        since=values.get("since"), until=values.get("until"), reason=values.get("reason"),
        message=values.get("message"), now=now)
    return replace(built, terms=tuple(terms))


def build(*, stages: list[str] | None = None, partners: list[str] | None = None,
          endpoints: list[str] | None = None, statuses: list[str] | None = None,
          since: str | None = None, until: str | None = None, reason: str | None = None,
          message: str | int | None = None, now: datetime | None = None) -> Filter:
    """A Filter from separate values, as CLI options and query parameters give them."""
    now = now or datetime.now(UTC)
    stages = _checked("stage", stages or [], STAGES)
    statuses = _statuses(statuses or [])
    for name, given in (("partner", partners or []), ("endpoint", endpoints or [])):
        if len(given) > MAX_VALUES:
            raise FilterError(f"{name}: at most {MAX_VALUES} values")
        if any(not v for v in given):
            raise FilterError(f"{name}: empty value")
    texts = [*(partners or []), *(endpoints or []), reason or "", since or "", until or ""]
    if any(len(t) > MAX_VALUE_LENGTH for t in texts):
        raise FilterError(f"a filter value is longer than {MAX_VALUE_LENGTH} characters")
    # No partner id, stage or reason holds control characters; PostgreSQL refuses NUL.
    if any(_CONTROL.search(t) for t in texts):
        raise FilterError("a filter value holds control characters")
    if reason is not None and not reason.strip():
        raise FilterError("reason: give some text to look for")
    since_at = parse_time("since", since, now) if since else None
    until_at = parse_time("until", until, now) if until else None
    if since_at and until_at and since_at >= until_at:
        raise FilterError(f"since ({since}) must be before until ({until})")
    terms = [t for t in (
        _term("stage", stages), _term("partner", partners), _term("endpoint", endpoints),
        _term("status", list(statuses)) if statuses != ("parked",) else "",
        f"since={since}" if since else "", f"until={until}" if until else "",
        f"reason~{shlex.quote(reason)}" if reason else "",
        f"message={message}" if message is not None else "") if t]
    return Filter(stages=tuple(stages), partners=tuple(partners or ()),
                  endpoints=tuple(endpoints or ()), statuses=statuses, since=since_at,
                  until=until_at, reason_contains=reason, message_id=_message(message),
                  terms=tuple(terms))


def parse_time(name: str, value: str, now: datetime) -> datetime:
    """`2h` ago (s, m, h, d, w), or an ISO date or time (UTC unless it says otherwise)."""
    match = _DURATION.match(value)
    try:
        if match:
            return now - timedelta(seconds=int(match["n"]) * _UNITS[match["unit"]])
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC, as the store keeps times: 9999-12-31T23:00-05:00 is past year 9999.
        return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        raise FilterError(f"{name}={value!r}: not a duration (30m, 2h, 7d, 1w) or an ISO "
                          "date or time (2024-03-01, 2024-03-01T12:00Z)") from None
    except OverflowError:
        raise FilterError(f"{name}={value!r}: outside the years 1 to 9999") from None


def _split(value: str | None) -> list[str]:
    if value is None:
        return []
    parts = [p.strip() for p in value.split(",")]
    if not all(parts):
        raise FilterError(f"empty value in {value!r}")
    return parts


def _checked(name: str, given: list[str], known: tuple[str, ...]) -> list[str]:
    wrong = [v for v in given if v not in known]
    if wrong:
        raise FilterError(f"{name}: unknown {name} {wrong[0]!r} (known: {', '.join(known)})")
    return given


def _statuses(given: list[str]) -> tuple[str, ...]:
    if not given:
        return ("parked",)
    if given == ["all"]:
        return STATUSES
    return tuple(_checked("status", given, STATUSES))


def _message(value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise FilterError(f"message={value!r}: a message id is a number") from None
    if not 0 < number < 2**63:
        raise FilterError(f"message={value!r}: no such message id")
    return number


def _term(key: str, values: list[str] | None) -> str:
    return f"{key}={','.join(values)}" if values else ""
