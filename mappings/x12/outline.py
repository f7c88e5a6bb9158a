"""A quick look at a file's envelopes (ISA, GS, ST ids) without validating anything."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from mappings.x12.reader import X12Reader


@dataclass(slots=True)
class GroupSummary:
    functional_id: str
    control_number: str
    sender: str
    receiver: str
    version: str
    set_counts: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class InterchangeSummary:
    control_number: str
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    version: str
    ack_requested: bool
    usage: str
    delimiters: dict[str, str | None]
    line: int
    groups: list[GroupSummary] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # TA1, ISB, ... outside groups


def scan(path: str | os.PathLike[str] | bytes) -> list[InterchangeSummary]:
    """Every interchange of the file with its groups and the sets each holds."""
    out: list[InterchangeSummary] = []
    group: GroupSummary | None = None
    with X12Reader(path) as reader:
        for seg in reader:
            sid = seg.id
            if sid == "ISA":
                d = reader.interchange.delimiters if reader.interchange else None
                g = seg.get
                out.append(InterchangeSummary(
                    g(13), g(5), g(6).rstrip(), g(7), g(8).rstrip(), g(9), g(10), g(12),
                    g(14) == "1", g(15),
                    {"element": d.element, "component": d.component,
                     "repetition": d.repetition, "segment": d.segment} if d else {},
                    seg.line))
                group = None
            elif not out:
                continue
            elif sid == "GS":
                g = seg.get
                group = GroupSummary(g(1), g(6), g(2), g(3), g(8))
                out[-1].groups.append(group)
            elif sid == "ST" and group is not None:
                group.set_counts[seg.get(1)] += 1
            elif sid == "GE":
                group = None
            elif group is None and sid not in ("IEA",):
                out[-1].other.append(sid)
    return out
