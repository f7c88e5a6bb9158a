"""What validating an X12 file found, in a shape that the CLI, the acks and the pipeline share.

Each Finding carries the acknowledgment element and code that reports it (TA105, AK905,
AK502, AK304, AK403: the 997 names; the 999 reports the same codes in IK5/IK304/IK403),
where it is, and a sentence a person can act on. `to_dict` gives the documented JSON
shape of `edigw validate --format json` (see docs/validate-json.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["file", "interchange", "group", "set", "segment", "element"]
Severity = Literal["error", "warning"]

# Which acknowledgment element carries a finding of each level.
ACK_ELEMENT: dict[str, str] = {
    "interchange": "TA105",
    "group": "AK905",
    "set": "AK502",
    "segment": "AK304",
    "element": "AK403",
    "file": "",
}


@dataclass(slots=True)
class Finding:
    """One error or warning, with the X12 code that reports it and where it is."""

    level: Level
    code: str  # the X12 code value, e.g. "7" for AK403 "invalid code value", "022" for TA105
    message: str
    severity: Severity = "error"
    segment_position: int | None = None  # within the transaction set, ST = 1
    segment_id: str | None = None
    element_position: int | None = None
    component_position: int | None = None
    repetition_position: int | None = None
    data_element: str | None = None  # reference number, e.g. "353"
    loop: str | None = None  # loop id from the map, e.g. "N1" or "PO1/SCH"
    line: int | None = None  # line of the file
    file_position: int | None = None  # ordinal of the segment in the file
    value: str | None = None  # the offending value, for AK404/IK404

    @property
    def ack_element(self) -> str:
        return ACK_ELEMENT[self.level]

    def to_dict(self) -> dict[str, Any]:
        ack = self.ack_element
        return {
            "code": f"{ack}-{self.code}" if ack else self.code,
            "ack_element": ack or None,
            "x12_code": self.code,
            "severity": self.severity,
            "level": self.level,
            "segment_position": self.segment_position,
            "segment_id": self.segment_id,
            "element_position": self.element_position,
            "component_position": self.component_position,
            "repetition_position": self.repetition_position,
            "data_element": self.data_element,
            "loop": self.loop,
            "line": self.line,
            "file_position": self.file_position,
            "value": self.value,
            "message": self.message,
        }


def _errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def _warnings(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "warning"]


@dataclass(slots=True)
class SetResult:
    """One transaction set (ST..SE) and its verdict."""

    set_id: str  # ST01, e.g. "850"
    control_number: str  # ST02
    line: int | None = None
    file_position: int | None = None
    segment_count: int = 0  # segments counted from ST to SE inclusive
    map_name: str | None = None  # e.g. "850.4010", None when no map applies
    implementation: str | None = None  # ST03 when present (5010)
    findings: list[Finding] = field(default_factory=list)
    # Set by the validator: A accepted, E accepted with errors noted, R rejected.
    ack_code: str = "A"

    @property
    def accepted(self) -> bool:
        return self.ack_code in ("A", "E")

    @property
    def errors(self) -> list[Finding]:
        return _errors(self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return _warnings(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.set_id,
            "control_number": self.control_number,
            "accepted": self.accepted,
            "ack_code": self.ack_code,
            "map": self.map_name,
            "implementation": self.implementation,
            "segment_count": self.segment_count,
            "line": self.line,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
        }


@dataclass(slots=True)
class GroupResult:
    """One functional group (GS..GE) and its verdict (AK9)."""

    functional_id: str  # GS01, e.g. "PO"
    control_number: str  # GS06
    version: str  # GS08, e.g. "004010VICS"
    sender: str = ""  # GS02
    receiver: str = ""  # GS03
    date: str = ""  # GS04
    time: str = ""  # GS05
    line: int | None = None
    file_position: int | None = None
    sets: list[SetResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    declared_set_count: int | None = None  # GE01
    # Set by the validator: A, E (accepted with errors), P (partially accepted), R.
    ack_code: str = "A"

    @property
    def is_acknowledgment(self) -> bool:
        """An inbound 997/999 group: recognised, never acknowledged."""
        return self.functional_id == "FA"

    @property
    def accepted_count(self) -> int:
        return sum(1 for s in self.sets if s.accepted)

    @property
    def errors(self) -> list[Finding]:
        return _errors(self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return _warnings(self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "functional_id": self.functional_id,
            "control_number": self.control_number,
            "version": self.version,
            "sender": self.sender,
            "receiver": self.receiver,
            "date": self.date,
            "time": self.time,
            "line": self.line,
            "ack_code": self.ack_code,
            "declared_set_count": self.declared_set_count,
            "set_count": len(self.sets),
            "accepted_count": self.accepted_count,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "transaction_sets": [s.to_dict() for s in self.sets],
        }


@dataclass(slots=True)
class InterchangeResult:
    """One interchange (ISA..IEA) and its envelope verdict (TA1)."""

    control_number: str  # ISA13
    sender_qualifier: str  # ISA05
    sender_id: str  # ISA06, trailing blanks removed
    receiver_qualifier: str  # ISA07
    receiver_id: str  # ISA08, trailing blanks removed
    date: str  # ISA09 YYMMDD
    time: str  # ISA10 HHMM
    version: str  # ISA12
    ack_requested: bool  # ISA14 == "1"
    usage: str  # ISA15: P production, T test, I information
    element_separator: str = "*"
    component_separator: str = ":"
    repetition_separator: str | None = None
    segment_terminator: str = "~"
    line: int | None = None
    file_position: int | None = None
    groups: list[GroupResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # TA1: TA104 A/E/R and TA105 note code ("000" when no error).
    ta1_ack_code: str = "A"
    ta1_note_code: str = "000"
    declared_group_count: int | None = None  # IEA01
    only_ta1: bool = False  # the interchange carries TA1 segments and no group

    @property
    def accepted(self) -> bool:
        return self.ta1_ack_code in ("A", "E")

    @property
    def errors(self) -> list[Finding]:
        return _errors(self.findings)

    @property
    def warnings(self) -> list[Finding]:
        return _warnings(self.findings)

    def sets(self) -> list[SetResult]:
        return [s for g in self.groups for s in g.sets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "control_number": self.control_number,
            "sender": {"qualifier": self.sender_qualifier, "id": self.sender_id},
            "receiver": {"qualifier": self.receiver_qualifier, "id": self.receiver_id},
            "date": self.date,
            "time": self.time,
            "version": self.version,
            "ack_requested": self.ack_requested,
            "usage": self.usage,
            "delimiters": {
                "element": self.element_separator,
                "component": self.component_separator,
                "repetition": self.repetition_separator,
                "segment": self.segment_terminator,
            },
            "line": self.line,
            "accepted": self.accepted,
            "ta1": {"ack_code": self.ta1_ack_code, "note_code": self.ta1_note_code},
            "declared_group_count": self.declared_group_count,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "groups": [g.to_dict() for g in self.groups],
        }


@dataclass(slots=True)
class FileResult:
    """Everything found in one file."""

    path: str
    readable: bool = True
    read_error: str | None = None  # why the file cannot be read as X12 at all
    encoding: str = "ascii"
    interchanges: list[InterchangeResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # outside any interchange

    def sets(self) -> list[SetResult]:
        return [s for i in self.interchanges for s in i.sets()]

    @property
    def accepted(self) -> bool:
        """True when the file was read and every transaction set in it was accepted."""
        return (self.readable and not _errors(self.findings)
                and all(i.accepted for i in self.interchanges)
                and all(s.accepted for s in self.sets()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "readable": self.readable,
            "read_error": self.read_error,
            "encoding": self.encoding,
            "accepted": self.accepted,
            "errors": [f.to_dict() for f in _errors(self.findings)],
            "warnings": [f.to_dict() for f in _warnings(self.findings)],
            "interchanges": [i.to_dict() for i in self.interchanges],
        }
