"""What a replay does (which stage it re-enters, and why), and how today's event differs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canonical.errors import GatewayError
from deadletter.filters import STAGES

# What re-entering each stage means, for the operator reading a dry run.
_WHY = {
    "validate": "validate the stored raw input again, with today's X12 maps",
    "map": "map the stored raw input again, with today's partner mappings",
    "route": "route the stored event again, with today's routes",
    "deliver": "send the stored event to {endpoint} again (attempts so far are kept)",
    "ack": "build and send the acknowledgment again",
    "send": "write the purchase order to the partner's outbox again (the same file)",
}
# Past this many differences a diff is summarised: nobody reads 10,000 lines.
MAX_DIFFERENCES = 200


class NotReplayable(GatewayError):
    """The dead letter cannot be replayed."""


@dataclass(frozen=True)
class ReplayPlan:
    """The work item a replay enqueues: its kind, its subject, and why that stage."""

    dead_letter_id: int
    stage: str
    message_id: int | None
    delivery_id: int | None
    reset_delivery: bool  # a deliver replay sets the delivery back to pending first
    why: str


def plan(dead_letter_id: int, *, stage: str, status: str, message_id: int | None,
         delivery_id: int | None, endpoint: str | None = None) -> ReplayPlan:
    """The replay of one dead letter; NotReplayable says why there is none."""
    if status != "parked":
        raise NotReplayable(f"dead letter {dead_letter_id} is {status}, not parked; "
                            "only parked dead letters are replayed")
    if stage not in STAGES:
        raise NotReplayable(f"dead letter {dead_letter_id}: stage {stage!r} is not one the "
                            f"pipeline runs ({', '.join(STAGES)})")
    if stage == "deliver" and delivery_id is None:
        raise NotReplayable(f"dead letter {dead_letter_id}: a deliver dead letter without a "
                            "delivery cannot be sent again")
    if stage not in ("deliver", "send") and message_id is None:
        raise NotReplayable(f"dead letter {dead_letter_id}: a {stage} dead letter without a "
                            "message has nothing to work on")
    why = _WHY[stage].format(endpoint=endpoint or "its destination")
    return ReplayPlan(dead_letter_id, stage, message_id, delivery_id,
                      reset_delivery=stage == "deliver", why=why)


@dataclass(frozen=True)
class Difference:
    """One path where two JSON documents differ."""

    path: str  # e.g. data.lines[2].quantity.value
    kind: str  # changed, added, removed
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_show(self.new)}"
        if self.kind == "removed":
            return f"- {self.path}: {_show(self.old)}"
        return f"~ {self.path}: {_show(self.old)} -> {_show(self.new)}"


def diff(old: Any, new: Any, *, ignore: tuple[str, ...] = ()) -> list[Difference]:
    """Per-path differences from old to new (e.g. the last stored event to today's)."""
    out: list[Difference] = []
    _walk(old, new, "", out, set(ignore))
    return out


def render(differences: list[Difference], *, limit: int = MAX_DIFFERENCES) -> str:
    """The differences, one per line, or a note that there are none."""
    if not differences:
        return "no differences"
    lines = [str(d) for d in differences[:limit]]
    if len(differences) > limit:
        lines.append(f"... and {len(differences) - limit} more")
    return "\n".join(lines)


def _walk(old: Any, new: Any, path: str, out: list[Difference], ignore: set[str]) -> None:
    if path in ignore:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                if sub not in ignore:
                    out.append(Difference(sub, "removed", old=old[key]))
            elif key not in old:
                if sub not in ignore:
                    out.append(Difference(sub, "added", new=new[key]))
            else:
                _walk(old[key], new[key], sub, out, ignore)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(new):
                out.append(Difference(sub, "removed", old=old[i]))
            elif i >= len(old):
                out.append(Difference(sub, "added", new=new[i]))
            else:
                _walk(old[i], new[i], sub, out, ignore)
        return
    # 1 and 1.0 are the same JSON number; True and 1 are not the same value.
    same_kind = type(old) is type(new) or (_number(old) and _number(new))
    if not same_kind or old != new:
        out.append(Difference(path or "(document)", "changed", old=old, new=new))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."
