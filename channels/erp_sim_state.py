"""The ERP simulator's memory: effects applied once per key, every request, the fault switch."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from channels import signing

Mode = Literal["none", "503", "hang", "400", "refuse", "slow"]


class FaultSpec(BaseModel):
    """A fault switch setting, as POSTed to /_sim/faults."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = Field("none", description="What ERP requests get while the switch is on: none,"
                       " 503, 400, hang (no answer), slow (applied late), refuse (no listener).")
    retry_after: int | None = Field(None, ge=0, description="Retry-After seconds sent with 503.")
    count: int | None = Field(None, ge=1, description="Affect this many requests, then turn off.")
    seconds: float | None = Field(None, gt=0, description="Stay on this long, then turn off.")
    delay: float | None = Field(None, ge=0, description="slow: seconds before the effect is"
                                " applied (default 1); hang: longest hold (default 3600).")
    keys: list[str] | None = Field(None, description="Affect only these Idempotency-Keys.")

    def hold(self) -> float:
        """How long a slow request waits before its effect, or a hung one before letting go."""
        if self.delay is not None:
            return self.delay
        return 3600.0 if self.mode == "hang" else 1.0

    @model_validator(mode="after")
    def _refuse_needs_seconds(self) -> FaultSpec:
        # A refused connection never reaches the simulator, so it cannot be counted, and the
        # switch cannot be turned off over HTTP while refusing: only a duration ends it.
        if self.mode == "refuse" and (self.seconds is None or self.count is not None):
            raise ValueError("refuse takes seconds, not count")
        return self


@dataclass
class Effect:
    """One applied event: what the ERP did, once per Idempotency-Key."""

    seq: int
    key: str
    event_id: str | None
    event_type: str | None
    body_sha256: str
    applied_at: float
    # The event's business key (its CloudEvents subject, a PO number for an 850): the same
    # document applied under two keys shows as two effects with one subject.
    subject: str | None = None


@dataclass
class RequestRecord:
    """One request as received, whatever came of it."""

    seq: int
    at: float
    path: str
    key: str | None
    body_sha256: str
    signature: str  # "ok", "absent" (none configured), or why it failed
    fault: str = "none"
    status: int | None = None  # None while still being answered (or hung)
    outcome: str = ""  # applied, replayed, in-flight, conflict, rejected, ...


@dataclass
class _Fault:
    spec: FaultSpec
    remaining: int | None
    ends_at: float | None


@dataclass
class SimState:
    """Everything the simulator remembers; safe to read from another thread."""

    secrets: list[signing.Secret] = field(default_factory=list)  # empty = not checked
    lock: threading.Lock = field(default_factory=threading.Lock)
    effects: dict[str, Effect] = field(default_factory=dict)
    requests: list[RequestRecord] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    generation: int = 0  # bumped by every fault change, so held requests can let go
    refuse_until: float | None = None  # time.monotonic() when listening starts again
    stopping: bool = False
    on_refuse: Callable[[], None] | None = None  # set by the server runner: stop listening
    _fault: _Fault | None = None

    def set_fault(self, spec: FaultSpec) -> None:
        with self.lock:
            self.generation += 1
            if spec.mode == "none":
                self._fault = None
                return
            ends_at = time.monotonic() + spec.seconds if spec.seconds else None
            self._fault = _Fault(spec, spec.count, ends_at)
            if spec.mode == "refuse":
                self.refuse_until = ends_at
                self._fault = None  # the listener does the refusing; requests see nothing

    def fault(self) -> FaultSpec:
        """The switch as it is now (none once its count or time ran out)."""
        with self.lock:
            fault = self._current()
            return fault.spec if fault else FaultSpec()

    def take_fault(self, key: str | None) -> FaultSpec | None:
        """The fault that applies to a request with `key`, using up one of its count."""
        with self.lock:
            fault = self._current()
            if fault is None or (fault.spec.keys is not None and key not in fault.spec.keys):
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._fault = None
            return fault.spec

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def reset(self) -> None:
        with self.lock:
            self.effects.clear()
            self.requests.clear()
            self.in_flight.clear()
            self._fault = None
            self.generation += 1

    def stats(self) -> dict[str, Any]:
        with self.lock:
            fault = self._current()
            return {
                "requests": len(self.requests),
                "effects": len(self.effects),
                "replays": sum(r.outcome == "replayed" for r in self.requests),
                "in_flight": len(self.in_flight),
                "by_status": dict(Counter(str(r.status) for r in self.requests)),
                "by_outcome": dict(Counter(r.outcome for r in self.requests)),
                "fault": (fault.spec if fault else FaultSpec()).model_dump(),
            }

    def effect_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(e) for e in sorted(self.effects.values(), key=lambda e: e.seq)]

    def request_list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(r) for r in self.requests]

    def _current(self) -> _Fault | None:
        fault = self._fault
        if fault is not None and fault.ends_at is not None and time.monotonic() >= fault.ends_at:
            self._fault = fault = None
        return fault
