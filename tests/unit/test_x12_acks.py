"""TA1, 997 and 999 built from hand-made and generated results (E2, E3)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.x12 import acks, writer
from mappings.x12.control_numbers import MemoryControlNumbers
from mappings.x12.reader import X12Reader
from mappings.x12.results import Finding, GroupResult, InterchangeResult, SetResult

pytestmark = pytest.mark.unit

NOW = datetime(2024, 5, 6, 7, 8)


def F(level: str, code: str, **kw: object) -> Finding:
    return Finding(level=level, code=code, message="test", **kw)  # type: ignore[arg-type]


def interchange(*groups: GroupResult, version: str = "00401", **kw: object) -> InterchangeResult:
    base: dict[str, object] = dict(
        control_number="000000905", sender_qualifier="ZZ", sender_id="ACME",
        receiver_qualifier="01", receiver_id="DISTRIB", date="230101", time="1200",
        version=version, ack_requested=False, usage="T", groups=list(groups))
    base.update(kw)
    return InterchangeResult(**base)  # type: ignore[arg-type]


def group(*sets: SetResult, version: str = "004010VICS", **kw: object) -> GroupResult:
    base: dict[str, object] = dict(functional_id="PO", control_number="17", version=version,
                                   sender="ACMEGS", receiver="DISTGS", sets=list(sets),
                                   declared_set_count=len(sets))
    base.update(kw)
    return GroupResult(**base)  # type: ignore[arg-type]


def build(ic: InterchangeResult, **kw: object) -> acks.AckBatch:
    return acks.build_acknowledgments(ic, MemoryControlNumbers(), NOW, **kw)  # type: ignore[arg-type]


def segments(text: str) -> list[list[str]]:
    return [s.fields for s in X12Reader(text.encode())]


def body(text: str) -> list[str]:
    """The segments between ST and SE, written with '*'."""
    segs = ["*".join(f) for f in segments(text)]
    return segs[3:-3]


def test_accepted_group_gets_a_997_addressed_back_to_the_sender() -> None:
    batch = build(interchange(group(SetResult("850", "0001"))))
    assert [a.kind for a in batch] == ["997"]
    ack = batch.acks[0]
    segs = segments(ack.text)
    isa = segs[0]
    assert len(ack.text.split("~")[0]) + 1 == writer.ISA_LENGTH
    assert (isa[5].strip(), isa[6].strip(), isa[7].strip(), isa[8].strip()) == (
        "01", "DISTRIB", "ZZ", "ACME")
    assert (isa[9], isa[10], isa[11], isa[12], isa[14], isa[15]) == (
        "240506", "0708", "U", "00401", "0", "T")
    assert segs[1] == ["GS", "FA", "DISTGS", "ACMEGS", "20240506", "0708", "1", "X", "004010"]
    assert segs[2] == ["ST", "997", "0001"]
    assert body(ack.text) == ["AK1*PO*17", "AK2*850*0001", "AK5*A", "AK9*A*1*1*1"]
    assert segs[-3] == ["SE", "6", "0001"]
    assert segs[-2] == ["GE", "1", "1"]
    assert segs[-1] == ["IEA", "1", "000000001"]
    assert (ack.answers_interchange, ack.answers_group) == ("000000905", "17")
    assert batch.notes == [] and batch.problems == []


def test_rejected_set_reports_segments_and_elements() -> None:
    bad = SetResult("850", "0002", ack_code="R", findings=[
        F("element", "7", segment_id="N1", segment_position=6, element_position=1,
          data_element="98", value="XX", loop="N1"),
        F("segment", "8", segment_id="N1", segment_position=6, loop="N1"),
        F("element", "4", segment_id="PO1", segment_position=9, element_position=3,
          component_position=2, data_element="355", value="A" * 150, loop="PO1/SCH"),
        F("segment", "2", segment_id="SCH", segment_position=12, loop="2010AA"),
        F("set", "5"),
        F("element", "7", severity="warning", segment_id="REF", segment_position=3,
          element_position=1),
    ])
    batch = build(interchange(group(bad, ack_code="R")))
    assert body(batch.acks[0].text) == [
        "AK1*PO*17", "AK2*850*0002",
        "AK3*N1*6*N1*8", "AK4*1*98*7*XX",
        "AK3*PO1*9*SCH", "AK4*3:2*355*4*" + "A" * 99,
        "AK3*SCH*12**2",
        "AK5*R*5", "AK9*R*1*1*0",
    ]


def test_a_copy_of_bad_data_holding_a_delimiter_is_left_out() -> None:
    bad = SetResult("850", "0001", ack_code="R", findings=[
        F("element", "6", segment_id="BEG", segment_position=2, element_position=3,
          data_element="324", value=value)
        for value in ("A~B", "A*B", "A:B", "A^B", "A\nB", "caf\u00e9", "\u00a0", "   ")])
    text = build(interchange(group(bad, ack_code="R"))).acks[0].text
    assert body(text)[2:11] == ["AK3*BEG*2"] + ["AK4*3*324*6"] * 8


def test_set_in_error_without_a_set_level_code_says_segments_in_error() -> None:
    bad = SetResult("850", "0001", ack_code="R", findings=[
        F("segment", "3", segment_id="PO1", segment_position=4)])
    assert body(build(interchange(group(bad, ack_code="R"))).acks[0].text)[-2] == "AK5*R*5"


def test_partially_accepted_group() -> None:
    sets = [SetResult("850", "0001"), SetResult("850", "0002", ack_code="R",
                                                 findings=[F("set", "3")]),
            SetResult("850", "0003", ack_code="E", findings=[F("set", "9")])]
    g = group(*sets, ack_code="P", declared_set_count=4, findings=[F("group", "5")])
    lines = body(build(interchange(g)).acks[0].text)
    assert [x for x in lines if x.startswith("AK5")] == ["AK5*A", "AK5*R*3", "AK5*E*9"]
    assert lines[-1] == "AK9*P*4*3*2*5"


def test_at_most_five_codes_in_ak5_and_ak9() -> None:
    s = SetResult("850", "0001", ack_code="R", findings=[F("set", str(c)) for c in range(1, 9)])
    g = group(s, ack_code="R", findings=[F("group", str(c)) for c in (1, 2, 3, 4, 5, 6, 1)])
    lines = body(build(interchange(g)).acks[0].text)
    assert lines[-2] == "AK5*R*1*2*3*4*5"
    assert lines[-1] == "AK9*R*1*1*0*1*2*3*4*5"


def test_5010_group_gets_a_999() -> None:
    bad = SetResult("850", "0002", implementation="005010", ack_code="R", findings=[
        F("element", "7", segment_id="REF", segment_position=4, element_position=1,
          repetition_position=2, data_element="128", value="ZZ"),
        F("set", "5")])
    g = group(SetResult("850", "0001"), bad, version="005010", ack_code="P")
    batch = build(interchange(g, version="00501"))
    assert [a.kind for a in batch] == ["999"]
    segs = segments(batch.acks[0].text)
    assert (segs[0][11], segs[0][12]) == ("^", "00501")
    assert segs[1][8] == "005010X231A1"
    assert segs[2] == ["ST", "999", "0001", "005010X231A1"]
    assert body(batch.acks[0].text) == [
        "AK1*PO*17*005010", "AK2*850*0001", "IK5*A",
        "AK2*850*0002*005010", "IK3*REF*4", "IK4*1::2*128*7*ZZ", "IK5*R*5",
        "AK9*P*2*2*1"]


def test_codes_a_997_cannot_carry_are_mapped_or_left_out() -> None:
    findings = [F("segment", "I6", segment_id="N1", segment_position=3),
                F("element", "I12", segment_id="N1", segment_position=3, element_position=2),
                F("element", "99", segment_id="N1", segment_position=3, element_position=3),
                F("segment", "42", segment_id="PO1", segment_position=5)]
    sets = [SetResult("850", "1", ack_code="R", findings=findings)]
    lines = body(build(interchange(group(*sets, ack_code="R"))).acks[0].text)
    assert lines[2:5] == ["AK3*N1*3**3", "AK4*2**6", "AK3*PO1*5"]
    sets_5010 = [SetResult("850", "1", ack_code="R", findings=findings)]
    g = group(*sets_5010, version="005010", ack_code="R")
    lines = body(build(interchange(g, version="00501")).acks[0].text)
    assert lines[2:5] == ["IK3*N1*3**I6", "IK4*2**I12", "IK3*PO1*5"]


@pytest.mark.parametrize("version,kind", [
    ("004010", "997"), ("004010VICS", "997"), ("003040", "997"), ("004030", "997"),
    ("005010", "999"), ("005010X222A1", "999"), ("006020", "999"), ("", "997"), ("junk", "997"),
])
def test_ack_kind_by_group_version(version: str, kind: str) -> None:
    assert acks.ack_kind(version) == kind


@pytest.mark.parametrize("version,isa12", [("003040", "00304"), ("004030", "00403"),
                                           ("004060VICS", "00406")])
def test_997_for_any_older_version_is_written_at_4010(version: str, isa12: str) -> None:
    ic = interchange(group(SetResult("850", "1"), version=version, sender="ACME    "),
                     version=isa12, ack_requested=True)
    ta1, ack = (segments(a.text) for a in build(ic))
    assert (ta1[0][11], ta1[0][12]) == ("U", "00401")
    assert (ack[0][11], ack[0][12], ack[1][8]) == ("U", "00401", "004010")
    assert ack[1][3] == "ACME"


def test_ta1_when_requested() -> None:
    batch = build(interchange(group(SetResult("850", "0001")), ack_requested=True))
    assert [a.kind for a in batch] == ["TA1", "997"]
    ta1 = batch.acks[0]
    assert segments(ta1.text)[1:] == [["TA1", "000000905", "230101", "1200", "A", "000"],
                                     ["IEA", "0", f"{ta1.interchange_control_number:09d}"]]
    assert ta1.answers_group is None


def test_broken_envelope_gets_only_a_ta1() -> None:
    ic = interchange(group(SetResult("850", "0001")), ta1_ack_code="R", ta1_note_code="001")
    batch = build(ic)
    assert [a.kind for a in batch] == ["TA1"]
    assert segments(batch.acks[0].text)[1] == ["TA1", "000000905", "230101", "1200", "R", "001"]
    assert any("not acknowledged" in n for n in batch.notes)


def test_envelope_accepted_with_errors_gets_ta1_and_997() -> None:
    ic = interchange(group(SetResult("850", "0001")), ta1_ack_code="E", ta1_note_code="006")
    assert [a.kind for a in build(ic)] == ["TA1", "997"]


def test_ta1_without_a_readable_control_number_is_a_problem() -> None:
    ic = interchange(control_number="ABC", ta1_ack_code="R", ta1_note_code="018")
    batch = build(ic)
    assert batch.acks == [] and "TA1" in batch.problems[0]


def test_acknowledgments_are_never_acknowledged() -> None:
    fa = group(SetResult("997", "0001"), functional_id="FA")
    batch = build(interchange(fa, group(SetResult("850", "0001"), control_number="18"),
                              ack_requested=True))
    assert [(a.kind, a.answers_group) for a in batch] == [("TA1", None), ("997", "18")]
    assert any("functional acknowledgment" in n for n in batch.notes)
    only_ta1 = build(interchange(only_ta1=True, ack_requested=True, ta1_ack_code="R"))
    assert only_ta1.acks == [] and only_ta1.notes


@pytest.mark.parametrize("field,value", [
    ("sender_id", ""), ("sender_id", "   "), ("sender_qualifier", ""),
    ("sender_id", "X" * 16), ("sender_id", "AC~ME"), ("receiver_id", ""),
    ("sender_id", "ACME\u0663"), ("receiver_qualifier", "0\u00b2"),
])
def test_no_ack_when_the_sender_cannot_be_addressed(field: str, value: str) -> None:
    ic = interchange(group(SetResult("850", "0001")), ack_requested=True, **{field: value})
    batch = build(ic)
    assert batch.acks == []
    assert "no acknowledgment can be addressed" in batch.problems[0]


def test_a_group_that_cannot_be_quoted_is_a_problem_and_the_others_go_on() -> None:
    ic = interchange(group(SetResult("850", "0001"), control_number="1~2"),
                     group(SetResult("850", "0001"), control_number="3"))
    batch = build(ic)
    assert [a.answers_group for a in batch] == ["3"]
    assert "segment terminator" in batch.problems[0]


def test_control_numbers_come_from_the_source_and_differ() -> None:
    numbers = MemoryControlNumbers(start=41)
    ic = interchange(group(SetResult("850", "1")), group(SetResult("850", "1"), control_number="2"),
                     ack_requested=True)
    batch = acks.build_acknowledgments(ic, numbers, NOW)
    assert [a.interchange_control_number for a in batch] == [41, 42, 43]
    assert [segments(a.text)[0][13] for a in batch] == ["000000041", "000000042", "000000043"]
    assert numbers.next_interchange() == 44
    assert [segments(a.text)[1][6] for a in batch.acks[1:]] == ["41", "42"]
    assert [segments(a.text)[2][2] for a in batch.acks[1:]] == ["0041", "0042"]


def test_other_delimiters_and_line_breaks() -> None:
    from mappings.x12.reader import Delimiters

    w = writer.SegmentWriter(Delimiters("|", ">", "!", "\n"))
    text = build(interchange(group(SetResult("850", "1"))), segment_writer=w).acks[0].text
    assert text.startswith("ISA|00|") and text.split("\n")[0][-1] == ">"
    assert "AK9|A|1|1|1\n" in text
    w2 = writer.SegmentWriter(newline="\r\n")
    text2 = build(interchange(group(SetResult("850", "1"))), segment_writer=w2).acks[0].text
    assert "~\r\nGS*" in text2 and len(text2.split("\r\n")[0]) == writer.ISA_LENGTH


def test_ack_filename_is_safe_and_says_what_it_answers() -> None:
    ic = interchange(group(SetResult("850", "1"), control_number="17"),
                     sender_id="A/../B C", ack_requested=True)
    names = [acks.ack_filename(a) for a in build(ic)]
    assert names == ["TA1_A_.._B_C_000000905_000000001.x12",
                     "997_A_.._B_C_000000905-17_000000002.x12"]
    assert all("/" not in n for n in names)


# -- generated results (E3) ------------------------------------------------------------

_codes = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "12", "I4", "I6", "I12"])
_group_codes = st.sampled_from(["1", "2", "3", "4", "5", "6"])
_values = st.one_of(st.none(), st.text(max_size=120))


@st.composite
def _findings(draw: st.DrawFn) -> list[Finding]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        level = draw(st.sampled_from(["set", "segment", "element"]))
        pos = draw(st.one_of(st.none(), st.integers(1, 999)))
        out.append(F(level, draw(_codes), segment_position=pos,
                     segment_id=draw(st.sampled_from([None, "N1", "PO1", "REF"])),
                     element_position=draw(st.one_of(st.none(), st.integers(1, 120))),
                     component_position=draw(st.one_of(st.none(), st.integers(1, 9))),
                     repetition_position=draw(st.one_of(st.none(), st.integers(1, 9))),
                     data_element=draw(st.sampled_from([None, "98", "I12", "12345"])),
                     value=draw(_values), loop=draw(st.sampled_from([None, "N1", "PO1/SCH"])),
                     severity=draw(st.sampled_from(["error", "error", "warning"]))))
    return out


@st.composite
def _sets(draw: st.DrawFn) -> SetResult:
    return SetResult(draw(st.sampled_from(["850", "855", "856", "810"])),
                     f"{draw(st.integers(1, 99999)):04d}",
                     ack_code=draw(st.sampled_from("AER")), findings=draw(_findings()),
                     implementation=draw(st.sampled_from([None, "005010"])))


@st.composite
def _groups(draw: st.DrawFn) -> GroupResult:
    sets = draw(st.lists(_sets(), max_size=6))
    return group(*sets, functional_id=draw(st.sampled_from(["PO", "PO", "IN", "FA"])),
                 control_number=str(draw(st.integers(1, 10**9 - 1))),
                 version=draw(st.sampled_from(["004010", "004010VICS", "005010"])),
                 ack_code=draw(st.sampled_from("AEPR")),
                 declared_set_count=draw(st.one_of(st.none(), st.integers(0, 10))),
                 findings=[F("group", c) for c in draw(st.lists(_group_codes, max_size=7))])


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(_groups(), max_size=4), ack_requested=st.booleans())
def test_generated_results_give_one_consistent_ack_per_group(
        groups: list[GroupResult], ack_requested: bool) -> None:
    ic = interchange(*groups, ack_requested=ack_requested)
    batch = build(ic)
    assert batch.problems == []
    functional = [a for a in batch if a.kind != "TA1"]
    answered = [g for g in groups if g.functional_id != "FA"]
    assert [a.answers_group for a in functional] == [g.control_number for g in answered]
    assert [a.kind for a in batch if a.kind == "TA1"] == (["TA1"] if ack_requested else [])
    numbers = [a.interchange_control_number for a in batch]
    assert len(set(numbers)) == len(numbers)
    for ack, g in zip(functional, answered, strict=True):
        segs = segments(ack.text)
        ids = [s[0] for s in segs]
        assert len(ack.text.split("~")[0]) + 1 == writer.ISA_LENGTH
        assert ack.kind == ("999" if g.version.startswith("005") else "997")
        ak2 = [s for s in segs if s[0] == "AK2"]
        ak5 = [s for s in segs if s[0] in ("AK5", "IK5")]
        ak9 = next(s for s in segs if s[0] == "AK9")
        assert [s[2] for s in ak2] == [s.control_number for s in g.sets]
        assert int(ak9[3]) == len(ak2) == len(ak5)
        assert int(ak9[4]) == sum(1 for s in ak5 if s[1] in ("A", "E"))
        assert all(len(s) <= 7 for s in ak5) and len(ak9) <= 10
        se = segs[ids.index("SE")]
        assert int(se[1]) == ids.index("SE") - ids.index("ST") + 1
        assert segs[ids.index("GE")][1] == "1" and segs[-1][1] == "1"
        for s in segs:
            if s[0] in ("AK4", "IK4") and len(s) > 4:
                assert len(s[4]) <= acks.MAX_BAD_DATA


# -- a partner's leniency: accepted with errors noted (AK5/IK5 E) ---------------------

def _lenient_result(version: str, codes: list[str]):
    from mappings.x12 import validator

    icvn, rep = ("00501", "^") if version.startswith("005") else ("00401", "U")
    segs = ["ISA*00*          *00*          *ZZ*ACME           *01*DISTRIB        *240506*"
            f"0708*{rep}*{icvn}*000000905*0*T*>",
            f"GS*PO*ACMEGS*DISTGS*20240506*0708*17*X*{version}", "ST*850*0001",
            "BEG*00*SA*PO-1**20240506", "PO1*1*1O*EA*4.25**BP*W-1", "CTT*1", "SE*5*0001",
            "GE*1*17", "IEA*1*000000905"]
    return validator.validate(("~".join(segs) + "~").encode(), accept_with_errors=codes)


@pytest.mark.parametrize(("version", "kind"), [("004010", "997"), ("005010", "999")])
def test_a_set_with_only_downgraded_errors_is_acknowledged_e_with_its_errors(
        version: str, kind: str) -> None:
    result = _lenient_result(version, ["AK403-6", "AK304-8"])
    (s,) = result.sets()
    assert s.ack_code == "E" and s.accepted and result.accepted
    assert [f.to_dict()["code"] for f in s.errors] == ["AK403-6", "AK304-8", "AK502-5"]
    ic = result.interchanges[0]
    assert ic.groups[0].ack_code == "E"
    (ack,) = build(ic)
    assert ack.kind == kind
    seg3, seg4, seg5 = ("IK3", "IK4", "IK5") if kind == "999" else ("AK3", "AK4", "AK5")
    got = body(ack.text)
    assert got[got.index("AK2*850*0001") + 1:] == [
        f"{seg3}*PO1*3*PO1*8", f"{seg4}*2*330*6*1O", f"{seg5}*E*5", "AK9*E*1*1*1"]


def test_leniency_needs_every_error_listed_and_takes_ik_spellings() -> None:
    (s,) = _lenient_result("004010", ["AK403-7"]).sets()  # lists another code
    assert s.ack_code == "R"
    (s,) = _lenient_result("004010", ["IK403-6"]).sets()  # the summaries need no listing
    assert s.ack_code == "E"
    (s,) = _lenient_result("004010", ["AK304-8"]).sets()  # a summary alone is not enough
    assert s.ack_code == "R"


def test_a_group_error_is_never_downgraded() -> None:
    from mappings.x12 import validator

    result = _lenient_result("004010", ["AK403-6"])
    assert result.sets()[0].ack_code == "E"
    bad_ge = validator.validate(
        b"ISA*00*          *00*          *ZZ*ACME           *01*DISTRIB        *240506*0708*U*"
        b"00401*000000905*0*T*>~GS*PO*ACMEGS*DISTGS*20240506*0708*17*X*004010~ST*850*0001~"
        b"BEG*00*SA*PO-1**20240506~PO1*1*1O*EA*4.25**BP*W-1~CTT*1~SE*5*0001~GE*1*99~"
        b"IEA*1*000000905~", accept_with_errors=["AK403-6"])
    (s,) = bad_ge.sets()
    assert s.ack_code == "R" and bad_ge.interchanges[0].groups[0].ack_code == "R"


def test_leniency_codes_are_checked() -> None:
    from mappings.x12 import validator

    assert validator.leniency_codes([" ik304-2 ", "AK502-4"]) == {"AK304-2", "AK502-4"}
    with pytest.raises(ValueError, match="AK905-5"):
        validator.leniency_codes(["AK905-5"])


@pytest.mark.parametrize("where", ["set_id", "control_number", "group"])
def test_a_value_outside_the_x12_character_set_is_a_problem_not_a_broken_ack(where) -> None:
    # Acks are stored and sent as ASCII: a foreign digit copied from ST01, ST02 or GS06
    # must not make one that cannot be encoded.
    bad = "85\u00b2" if where == "set_id" else "000\u0663"
    s = SetResult(bad if where == "set_id" else "850",
                  bad if where == "control_number" else "0001", ack_code="R")
    g = group(s, control_number=bad if where == "group" else "17", ack_code="R")
    batch = build(interchange(g, group(SetResult("850", "0001"), control_number="18")))
    assert [a.answers_group for a in batch] == ["18"]
    assert "outside the X12 character set" in batch.problems[0]
    for ack in batch:
        ack.text.encode("ascii")
