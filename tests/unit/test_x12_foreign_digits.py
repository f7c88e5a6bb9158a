"""Digits X12 does not have: superscripts (Latin-1 0xB2, 0xB3), Arabic-Indic, full-width.

Python's str.isdigit() takes them and int() refuses some of them; X12's digits are 0-9
only. In every numeric, date, count and control number element, each must give the X12
rejection that element's check gives any other bad character (AK4 code 6, AK5, AK9, TA1),
never a traceback, through the validator, the acknowledgments and both CLI commands
(issue #10).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from mappings.translate import translate
from mappings.x12 import acks, validator
from mappings.x12.control_numbers import MemoryControlNumbers
from mappings.x12.results import FileResult
from tests.conftest import REPO

pytestmark = pytest.mark.unit

SAMPLES = REPO / "samples" / "x12"
PO = (SAMPLES / "acme-850-4010.edi").read_text("ascii")
ASN = (SAMPLES / "globex-856-4010-sopi.edi").read_text("ascii")
# Each with the encoding a partner would send it in.
DIGITS = [("\u00b2", "latin-1"), ("\u00b3", "latin-1"), ("\u00b2", "utf-8"),
          ("\u0663", "utf-8"), ("\uff11", "utf-8")]


def _element(r: FileResult, segment: str, position: int, codes: tuple[str, ...] = ("6",)) -> bool:
    return any(f.level == "element" and f.segment_id == segment and f.element_position == position
               and f.code in codes for s in r.sets() for f in s.errors)


def _set(r: FileResult, code: str) -> bool:
    return any(f.level == "set" and f.code == code for s in r.sets() for f in s.errors)


def _group(r: FileResult, code: str) -> bool:
    return any(f.code == code for ic in r.interchanges for g in ic.groups for f in g.errors)


def _ta1(r: FileResult, note: str, ack: str = "R") -> bool:
    return any(ic.ta1_note_code == note and ic.ta1_ack_code == ack for ic in r.interchanges)


# (name, document, [(old, new with {d} for the digit)], what the validator must say)
CASES: list[tuple[str, str, list[tuple[str, str]], Callable[[FileResult], bool]]] = [
    ("PO102 quantity (N)", PO, [("PO1*1*24*", "PO1*1*2{d}*")], lambda r: _element(r, "PO1", 2)),
    ("PO104 price (R)", PO, [("*4.25*", "*4.2{d}*")], lambda r: _element(r, "PO1", 4)),
    ("CTT01 line count (N0)", PO, [("CTT*3*39", "CTT*{d}*39")], lambda r: _element(r, "CTT", 1)),
    ("DTM02 date (DT)", PO, [("DTM*002*20261201", "DTM*002*2026120{d}")],
     lambda r: _element(r, "DTM", 2, ("6", "8"))),
    ("BEG05 date all foreign (DT)", PO, [("**20261120~", "**{d}{d}{d}{d}{d}{d}{d}{d}~")],
     lambda r: _element(r, "BEG", 5, ("6", "8"))),
    ("ST01 set id", PO, [("ST*850*", "ST*85{d}*")], lambda r: _set(r, "6")),
    ("SE01 segment count", PO, [("SE*20*", "SE*2{d}*")], lambda r: _set(r, "4")),
    ("GE01 set count", PO, [("GE*1*1001", "GE*{d}*1001")], lambda r: _group(r, "5")),
    ("GS06 and GE02 group control number", PO,
     [("*0930*1001*X", "*0930*100{d}*X"), ("GE*1*1001", "GE*1*100{d}")],
     lambda r: _group(r, "6")),
    ("GS04 date", PO, [("*20261120*0930*1001", "*2026112{d}*0930*1001")],
     lambda r: _ta1(r, "024", "E")),
    ("GS08 version", PO, [("*X*004010~", "*X*00401{d}~")], lambda r: _group(r, "2")),
    ("IEA01 group count", PO, [("IEA*1*", "IEA*{d}*")], lambda r: _ta1(r, "021")),
    ("ISA13 and IEA02 control number", PO,
     [("*00401*000001001*", "*00401*00000100{d}*"), ("IEA*1*000001001", "IEA*1*00000100{d}")],
     lambda r: _ta1(r, "018")),
    ("ISA09 date", PO, [("*261120*0930*", "*26112{d}*0930*")], lambda r: _ta1(r, "014")),
    ("ISA10 time", PO, [("*261120*0930*", "*261120*093{d}*")], lambda r: _ta1(r, "015")),
    ("ISA12 version", PO, [("*U*00401*", "*U*0040{d}*")], lambda r: _ta1(r, "017", "E")),
    ("HL01 hierarchical id", ASN, [("HL*2*1*O", "HL*{d}*1*O")], lambda r: _element(r, "HL", 1)),
    ("HL02 parent id", ASN, [("HL*2*1*O", "HL*2*{d}*O")],
     lambda r: _element(r, "HL", 2, ("6", "7"))),
]


def _said(r: FileResult) -> list[str]:
    found = [*r.findings]
    for ic in r.interchanges:
        found += ic.findings + [f for g in ic.groups for f in g.findings]
        found += [f for s in ic.sets() for f in s.findings]
    return [f"{f.level} {f.code} {f.segment_id}{f.element_position}: {f.message}" for f in found]


def _mutated(doc: str, edits: list[tuple[str, str]], digit: str, encoding: str) -> bytes:
    for old, new in edits:
        assert old in doc, old
        doc = doc.replace(old, new.format(d=digit), 1)
    return doc.encode(encoding)


def _cases():
    for name, doc, edits, check in CASES:
        for digit, encoding in DIGITS:
            yield pytest.param(_mutated(doc, edits, digit, encoding), check,
                               id=f"{name}-U+{ord(digit):04X}-{encoding}")


@pytest.mark.parametrize("data,check", list(_cases()))
def test_a_foreign_digit_is_an_x12_rejection(data: bytes, check):
    result = validator.validate(data)
    assert result.readable, result.read_error
    assert check(result), _said(result)
    assert not result.accepted or any(ic.ta1_ack_code == "E" for ic in result.interchanges)
    for ic in result.interchanges:
        batch = acks.build_acknowledgments(ic, MemoryControlNumbers(), datetime(2026, 11, 29))
        assert batch.acks or batch.problems
    for t in translate(data, fmt="x12"):
        assert t.status in ("rejected", "translated", "failed", "skipped")


@pytest.mark.parametrize("digit,encoding", DIGITS)
def test_the_997_carries_ak4_code_6_for_a_foreign_digit_in_a_quantity(digit, encoding):
    data = _mutated(PO, [("PO1*1*24*", "PO1*1*2{d}*")], digit, encoding)
    [ic] = validator.validate(data).interchanges
    batch = acks.build_acknowledgments(ic, MemoryControlNumbers(), datetime(2026, 11, 29))
    [ack] = [a for a in batch if a.kind == "997"]
    assert "AK3*PO1*14*PO1*8~" in ack.text and "AK4*2*330*6~" in ack.text
    assert "AK5*R*5~" in ack.text and "AK9*R*1*1*0~" in ack.text


@pytest.mark.parametrize("edits", [
    [("PO1*1*24*", "PO1*1*2{d}*")], [("GE*1*1001", "GE*{d}*1001")], [("IEA*1*", "IEA*{d}*")],
    [("SE*20*", "SE*2{d}*")]], ids=["PO102", "GE01", "IEA01", "SE01"])
@pytest.mark.parametrize("digit,encoding", [("\u00b2", "latin-1"), ("\u0663", "utf-8")])
def test_the_cli_exits_1_with_a_verdict_not_a_traceback(tmp_path, edits, digit, encoding):
    path = tmp_path / "po.edi"
    path.write_bytes(_mutated(PO, edits, digit, encoding))
    runner = CliRunner()
    v = runner.invoke(app, ["validate", str(path), "--ack-dir", str(tmp_path / "acks")])
    assert v.exit_code == 1 and isinstance(v.exception, SystemExit | None), v.output
    assert "Traceback" not in v.output and "rejected" in v.output.lower()
    t = runner.invoke(app, ["translate", str(path), "--mappings-dir", str(REPO / "mappings"),
                            "--partners-dir", str(REPO / "conf" / "partners")])
    assert t.exit_code == 1 and isinstance(t.exception, SystemExit | None), (t.output, t.exception)
    assert "validation failed" in t.stderr and "Traceback" not in t.stderr
