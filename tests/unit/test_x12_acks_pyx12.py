"""Every acknowledgment we generate is accepted by pyx12 with our own maps."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.x12 import acks, writer
from mappings.x12.control_numbers import MemoryControlNumbers
from mappings.x12.pyx12_bridge import run_pyx12
from mappings.x12.reader import Delimiters
from mappings.x12.results import Finding, GroupResult, InterchangeResult, SetResult

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 6, 7, 8)


def _assert_pyx12_accepts(ack: acks.Acknowledgment) -> None:
    verdict = run_pyx12(ack.text.encode())
    problems = [e for s in verdict.sets.values() for e in s.errors] + verdict.envelope_errors
    assert verdict.valid and not problems, f"{ack.text}\n{problems}"
    assert all(s.accepted for s in verdict.sets.values())
    if ack.kind != "TA1":
        assert [s.set_id for s in verdict.sets.values()] == [ack.kind]


def _finding(level: str, code: str, **kw: object) -> Finding:
    return Finding(level=level, code=code, message="test", **kw)  # type: ignore[arg-type]


def _interchange(groups: list[GroupResult], version: str, **kw: object) -> InterchangeResult:
    return InterchangeResult("000000905", "ZZ", "ACME", "01", "DISTRIB", "230101", "1200",
                             version, groups=groups, ack_requested=True, usage="T",
                             **kw)  # type: ignore[arg-type]


def _bad_set(control: str) -> SetResult:
    return SetResult("850", control, ack_code="R", implementation="005010", findings=[
        _finding("segment", "8", segment_id="N1", segment_position=6, loop="N1"),
        _finding("element", "7", segment_id="N1", segment_position=6, element_position=1,
                 data_element="98", value="XX"),
        _finding("element", "4", segment_id="PO1", segment_position=9, element_position=3,
                 component_position=2, repetition_position=1, data_element="355",
                 value="A~B", loop="PO1/SCH"),
        _finding("segment", "I6", segment_id="SCH", segment_position=12),
        _finding("set", "5"), _finding("set", "3")])


@pytest.mark.parametrize("version,isa12", [("004010", "00401"), ("004010VICS", "00401"),
                                           ("005010", "00501")])
@pytest.mark.parametrize("newline", ["", "\n"])
def test_hand_made_acks_are_accepted_by_pyx12(version: str, isa12: str, newline: str) -> None:
    sets = [SetResult("850", "0001"), _bad_set("0002"),
            SetResult("850", "0003", ack_code="E", findings=[_finding("set", "9")])]
    g = GroupResult("PO", "17", version, "ACMEGS", "DISTGS", sets=sets, declared_set_count=4,
                    ack_code="P", findings=[_finding("group", "5")])
    ic = _interchange([g], isa12)
    batch = acks.build_acknowledgments(ic, MemoryControlNumbers(), NOW,
                                       segment_writer=writer.SegmentWriter(newline=newline))
    assert [a.kind for a in batch] == ["TA1", "999" if version >= "005" else "997"]
    for ack in batch:
        _assert_pyx12_accepts(ack)


def test_ta1_for_a_broken_envelope_is_accepted_by_pyx12() -> None:
    ic = _interchange([], "00501", ta1_ack_code="R", ta1_note_code="022")
    w = writer.SegmentWriter(Delimiters("|", ">", "!", "\n"))
    batch = acks.build_acknowledgments(ic, MemoryControlNumbers(), NOW, segment_writer=w)
    assert [a.kind for a in batch] == ["TA1"]
    _assert_pyx12_accepts(batch.acks[0])


_set_codes = st.sampled_from(["1", "2", "3", "4", "5", "23"])
_seg_codes = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "I4", "I6", "I9"])
_elem_codes = st.sampled_from(["1", "2", "4", "5", "6", "7", "8", "10", "12", "I6", "I12"])


@st.composite
def _sets(draw: st.DrawFn) -> SetResult:
    findings = [_finding("set", c) for c in draw(st.lists(_set_codes, max_size=7))]
    for _ in range(draw(st.integers(0, 5))):
        pos, seg = draw(st.integers(2, 40)), draw(st.sampled_from(["N1", "PO1", "REF"]))
        findings.append(_finding("segment", draw(_seg_codes), segment_id=seg,
                                 segment_position=pos, loop=draw(st.sampled_from([None, "N1"]))))
        findings.append(_finding(
            "element", draw(_elem_codes), segment_id=seg, segment_position=pos,
            element_position=draw(st.integers(1, 30)),
            component_position=draw(st.one_of(st.none(), st.integers(1, 5))),
            repetition_position=draw(st.one_of(st.none(), st.integers(1, 5))),
            data_element=draw(st.sampled_from([None, "98", "I12"])),
            value=draw(st.one_of(st.none(), st.text(max_size=120)))))
    code = "A" if not findings else draw(st.sampled_from("ER"))
    return SetResult(draw(st.sampled_from(["850", "855", "856", "810"])),
                     f"{draw(st.integers(1, 10**9 - 1)):04d}", ack_code=code, findings=findings,
                     implementation=draw(st.sampled_from([None, "005010"])))


@st.composite
def _groups(draw: st.DrawFn) -> GroupResult:
    sets = draw(st.lists(_sets(), max_size=4))
    accepted = sum(1 for s in sets if s.accepted)
    code = "A" if accepted == len(sets) else ("R" if accepted == 0 else "P")
    return GroupResult(draw(st.sampled_from(["PO", "PR", "SH", "IN"])),
                       str(draw(st.integers(1, 10**9 - 1))),
                       draw(st.sampled_from(["004010", "004010VICS", "005010"])), "ACMEGS",
                       "DISTGS", sets=sets, ack_code=code, declared_set_count=len(sets),
                       findings=[_finding("group", c)
                                 for c in draw(st.lists(st.sampled_from("123456"), max_size=6))])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=_groups())
def test_generated_acks_are_accepted_by_pyx12(g: GroupResult) -> None:
    isa12 = "00501" if g.version >= "005" else "00401"
    batch = acks.build_acknowledgments(_interchange([g], isa12), MemoryControlNumbers(), NOW)
    assert batch.problems == []
    for ack in batch:
        _assert_pyx12_accepts(ack)
