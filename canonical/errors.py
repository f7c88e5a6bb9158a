"""The one error tree of the gateway: every error we raise on purpose is a GatewayError.

Two branches decide what happens to a message after a failure:
TransientError is retried later; PermanentError goes to the dead-letter queue at once.
The class docstring is the default message, so ``raise InputTooLarge()`` says something useful.
"""

from __future__ import annotations

from collections.abc import Sequence


class GatewayError(Exception):
    """The gateway failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip().splitlines()[0])

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class TransientError(GatewayError):
    """A temporary failure; trying again later may succeed."""


class PermanentError(GatewayError):
    """A failure that trying again will not fix; the input is parked for an operator."""


class InputError(PermanentError):
    """The input is not what it claims to be."""


class InputTooLarge(InputError):
    """The input is larger than the configured limit."""


class X12ReadError(InputError):
    """The input cannot be read as an X12 interchange."""

    def __init__(self, message: str | None = None, *, offset: int | None = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.line = line

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        base = super().__str__()
        return f"{base} ({', '.join(where)})" if where else base


class OutboundDataError(PermanentError):
    """Outbound data cannot be written safely (X12 has no escape character)."""


class SchemaError(PermanentError):
    """The data does not match its canonical schema."""

    # Enough to see the pattern in a log line; the full list stays on .violations.
    shown = 5

    def __init__(self, message: str | None = None, *, violations: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.violations = list(violations)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.violations:
            return base
        listed = "; ".join(str(v) for v in self.violations[: self.shown])
        more = len(self.violations) - self.shown
        tail = f"; and {more} more" if more > 0 else ""
        count = len(self.violations)
        return f"{base}: {count} violation{'s' if count != 1 else ''}: {listed}{tail}"


class EnvelopeError(SchemaError):
    """The event envelope is not a valid canonical CloudEvent."""


class UnknownEventType(SchemaError):
    """The event type has no canonical schema."""


class SpecificationError(GatewayError):
    """An X12 specification (map) is missing or malformed."""


class ConfigError(PermanentError):
    """The configuration is invalid."""


class MappingError(PermanentError):
    """A mapping could not turn the input into a canonical event."""

    def __init__(self, message: str | None = None, *, mapping: str | None = None,
                 key: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.mapping = mapping  # the mapping file, as written in the message
        self.key = key  # the mapping key, e.g. "fields.lines.fields.quantity"
        self.where = where  # the source position, e.g. "segment 7 (PO1, line 7) element PO102"


class MappingFileError(ConfigError):
    """A mapping file is invalid."""

    def __init__(self, message: str | None = None, *, file: str | None = None,
                 line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.key = key


class DeliveryUnavailable(TransientError):
    """The destination did not take the event this time; it may later."""

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, if the destination answered at all
        self.retry_after = retry_after  # seconds the destination asked us to wait (Retry-After)


class DeliveryTimeout(DeliveryUnavailable):
    """The destination did not answer in time; it may have applied the event."""


class DeliveryRejected(PermanentError):
    """The destination refused the event; sending it again will not change that."""

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body  # an excerpt of the destination's answer, for the operator
