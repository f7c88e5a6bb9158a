"""The X12 validator on small hand-made interchanges: each check with its exact code and place."""

from __future__ import annotations

import pytest

from canonical.errors import InputTooLarge
from mappings.x12 import validator
from mappings.x12.results import FileResult, Finding

pytestmark = pytest.mark.unit

ISA = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261120*0930*U*"
       "00401*000000001*0*P*>")
PO_BODY = [
    "BEG*00*SA*4500012345**20261120",
    "REF*DP*042",
    "PER*BD*Jane Buyer*TE*5551234567",
    "DTM*002*20261201",
    "N1*ST*Store 118*92*0118",
    "N3*400 Main Street",
    "N4*Springfield*IL*62701*US",
    "PO1*1*24*EA*4.25**BP*ACME-1001",
    "PID*F****Widget, blue",
    "PO1*2*10*EA*38.5**BP*ACME-1002",
    "CTT*2",
]


def interchange(body: list[str] | None = None, *, set_id: str = "850", fic: str = "PO",
                version: str = "004010", isa: str = ISA, st02: str = "0001",
                se: str | None = None, ge: str | None = "GE*1*1",
                iea: str | None = "IEA*1*000000001", sets: int = 1) -> bytes:
    """An ISA..IEA around `sets` copies of one transaction set body."""
    body = PO_BODY if body is None else body
    segs = [isa, f"GS*{fic}*SENDER*RECEIVER*20261120*0930*1*X*{version}"]
    for k in range(sets):
        cn = st02 if sets == 1 else f"{int(st02) + k:04d}"
        segs += [f"ST*{set_id}*{cn}", *body]
        segs.append(se if se is not None else f"SE*{len(body) + 2}*{cn}")
    if ge:
        segs.append(ge)
    if iea:
        segs.append(iea)
    return ("~\n".join(s for s in segs if s) + "~\n").encode()


def only_set(data: bytes):
    result = validator.validate(data)
    assert result.readable, result.read_error
    (s,) = result.sets()
    return s


def errors(s, level: str | None = None) -> list[Finding]:
    return [f for f in s.errors if level is None or f.level == level]


def test_a_clean_purchase_order_is_accepted():
    result = validator.validate(interchange())
    assert result.accepted
    ic = result.interchanges[0]
    assert ic.ta1_ack_code == "A" and ic.ta1_note_code == "000"
    assert ic.groups[0].ack_code == "A"
    s = result.sets()[0]
    assert s.ack_code == "A" and s.map_name == "850.4010" and s.segment_count == 13
    assert not s.findings


# -- elements ----------------------------------------------------------------------


def element_error(body: list[str], **kw) -> Finding:
    s = only_set(interchange(body, **kw))
    assert s.ack_code == "R"
    found = errors(s, "element")
    assert found, s.findings
    return found[0]


def with_line(i: int, text: str) -> list[str]:
    body = list(PO_BODY)
    body[i] = text
    return body


def test_mandatory_element_missing_is_ak403_1_with_its_place_and_a_sentence():
    f = element_error(with_line(0, "BEG*00*SA***20261120"))
    assert (f.code, f.segment_id, f.segment_position, f.element_position) == ("1", "BEG", 2, 3)
    assert f.data_element == "324"
    assert f.message == "BEG03 (Purchase Order Number, element 324) is required but empty"
    assert f.line == 4 and f.file_position == 4
    s = only_set(interchange(with_line(0, "BEG*00*SA***20261120")))
    codes = {(x.level, x.code) for x in s.errors}
    assert ("segment", "8") in codes and ("set", "5") in codes


def test_conditional_element_missing_from_a_paired_syntax_note_is_ak403_2():
    f = element_error(with_line(2, "PER*BD*Jane Buyer*TE"))
    assert (f.code, f.segment_id, f.element_position) == ("2", "PER", 4)
    assert "P0304" in f.message


def test_required_syntax_note_is_ak403_2():
    f = element_error(with_line(1, "REF*DP"))  # R0203: REF02 or REF03
    assert (f.code, f.segment_id, f.element_position) == ("2", "REF", 2)


def test_exclusion_syntax_note_is_ak403_10():
    f = element_error([*PO_BODY[:9], "QTY*01*5*EA*X", *PO_BODY[9:]])  # E0204
    assert (f.code, f.segment_id, f.element_position, f.loop) == ("10", "QTY", 4, "PO1/QTY")


def test_too_many_elements_is_ak403_3():
    f = element_error(with_line(10, "CTT*2" + "*" * 8 + "X"))
    assert (f.code, f.segment_id, f.element_position) == ("3", "CTT", 9)


def test_too_short_too_long_and_invalid_characters():
    assert element_error(with_line(0, "BEG*00*SA*" + "9" * 23 + "**20261120")).code == "5"
    assert element_error(with_line(3, "DTM*002*2026120")).code == "4"
    f = element_error(with_line(7, "PO1*1*2X*EA*4.25**BP*ACME-1001"))
    assert (f.code, f.element_position) == ("6", 2)
    f = element_error(with_line(8, "PID*F****Widget\x07"))
    assert f.code == "6"


def test_invalid_date_and_time_are_ak403_8_and_9():
    f = element_error(with_line(3, "DTM*002*20260230"))
    assert (f.code, f.element_position, f.value) == ("8", 2, "20260230")
    f = element_error(with_line(3, "DTM*002*20261201*2561"))
    assert (f.code, f.element_position) == ("9", 3)


def test_leap_day_is_a_date():
    assert only_set(interchange(with_line(3, "DTM*002*20280229"))).ack_code == "A"


def test_invalid_code_value_only_where_the_map_lists_codes():
    body = ["AK1*PO*1", "AK2*850*0001", "AK5*Z", "AK9*A*1*1*1"]
    s = only_set(interchange(body, set_id="997", fic="FA"))
    (f,) = errors(s, "element")
    assert (f.code, f.segment_id, f.element_position, f.value) == ("7", "AK5", 1, "Z")


def test_component_separator_in_a_simple_element_is_invalid():
    f = element_error(with_line(8, "PID*F****Widget>blue"))
    assert (f.code, f.element_position) == ("6", 5)


def test_too_many_repetitions_and_components():
    isa = ISA.replace("*U*00401*", "*^*00501*")
    body = ["AK1*HC*1*005010X222A1", "AK2*837*0001", "IK3*NM1*8**8",
            "CTX*" + "^".join(["SITUATIONAL TRIGGER"] * 11), "IK5*R*5", "AK9*R*1*1*0"]
    s = only_set(interchange(body, set_id="999", fic="FA", version="005010X231A1", isa=isa,
                             iea="IEA*1*000000001"))
    assert any(f.code == "12" and f.segment_id == "CTX" for f in errors(s, "element"))
    body[3] = "CTX*SITUATIONAL TRIGGER*NM1*8**1>2>3>4>5>6"
    s = only_set(interchange(body, set_id="999", fic="FA", version="005010X231A1", isa=isa))
    assert any(f.code == "13" and f.segment_id == "CTX" for f in errors(s, "element"))


# -- structure ---------------------------------------------------------------------


def segment_errors(body: list[str], **kw) -> list[Finding]:
    s = only_set(interchange(body, **kw))
    assert s.ack_code == "R"
    return errors(s, "segment")


def test_mandatory_segment_missing_is_ak304_3():
    (f,) = segment_errors(PO_BODY[1:])
    assert (f.code, f.segment_id, f.segment_position) == ("3", "BEG", 2)


def test_unrecognised_segment_id_is_ak304_1_and_does_not_cascade():
    found = segment_errors([*PO_BODY[:3], "Z$Z*1", *PO_BODY[3:]])
    assert [(f.code, f.segment_position) for f in found] == [("1", 5)]


def test_segment_of_another_set_is_ak304_6():
    found = segment_errors([*PO_BODY[:3], "BSN*00*1*20261120*1200", *PO_BODY[3:]])
    assert [(f.code, f.segment_id, f.segment_position) for f in found] == [("6", "BSN", 5)]


def test_segment_out_of_sequence_is_ak304_7():
    found = segment_errors([*PO_BODY[:8], "BEG*00*SA*1**20261120", *PO_BODY[8:]])
    assert [(f.code, f.segment_id, f.segment_position) for f in found] == [("7", "BEG", 10)]


def test_segment_over_its_maximum_use_is_ak304_5():
    found = segment_errors([PO_BODY[0], PO_BODY[0], *PO_BODY[1:]])
    assert [(f.code, f.segment_id, f.segment_position) for f in found] == [("5", "BEG", 3)]


def test_loop_over_its_maximum_is_ak304_4_for_a_real_loop():
    body = [*PO_BODY[:4], *["N1*ST*X*92*0118", "N3*A"] * 201, *PO_BODY[7:]]
    found = segment_errors(body)
    assert [(f.code, f.segment_id, f.loop) for f in found] == [("4", "N1", "N1")]


def test_loop_id_is_reported_on_findings_inside_a_loop():
    f = element_error(with_line(8, "PID*F****" + "X" * 81))
    assert (f.code, f.loop) == ("5", "PO1/PID")


# -- 856 hierarchy -----------------------------------------------------------------


ASN = ["BSN*00*SHP1*20261122*1405", "HL*1**S", "TD1*CTN25*2", "HL*2*1*O",
       "PRF*4500012345", "HL*3*2*I", "LIN**BP*ITEM-1", "SN1**24*EA", "CTT*3"]


def test_hl_tree_is_checked():
    s = only_set(interchange(ASN, set_id="856", fic="SH"))
    assert s.ack_code == "A", s.findings
    body = list(ASN)
    body[5] = "HL*3*9*I"
    f = element_error(body, set_id="856", fic="SH")
    assert (f.code, f.segment_id, f.element_position, f.segment_position) == ("7", "HL", 2, 7)
    body[5] = "HL*2*1*I"
    f = element_error(body, set_id="856", fic="SH")
    assert (f.code, f.element_position) == ("7", 1)


# -- set, group and interchange envelopes -------------------------------------------


def set_codes(s) -> list[str]:
    return [f.code for f in errors(s, "set")]


def test_set_trailer_checks():
    assert set_codes(only_set(interchange(se="SE*99*0001"))) == ["4"]
    assert set_codes(only_set(interchange(se="SE*13*0002"))) == ["3"]
    result = validator.validate(interchange(se="-"))
    assert "2" in set_codes(result.sets()[0])


def test_unsupported_set_is_ak502_1_and_duplicate_control_number_is_23():
    s = only_set(interchange(["W05*N*1"], set_id="940", fic="OW"))
    assert set_codes(s)[:1] == ["1"] and s.ack_code == "R"
    result = validator.validate(interchange(sets=2, ge="GE*2*1").replace(b"ST*850*0002",
                                                                        b"ST*850*0001")
                                .replace(b"SE*13*0002", b"SE*13*0001"))
    assert set_codes(result.sets()[1]) == ["23"]
    assert result.interchanges[0].groups[0].ack_code == "P"


def test_group_trailer_checks():
    g = validator.validate(interchange(ge="GE*2*1")).interchanges[0].groups[0]
    assert [f.code for f in g.errors] == ["5"] and g.ack_code == "R"
    g = validator.validate(interchange(ge="GE*1*7")).interchanges[0].groups[0]
    assert [f.code for f in g.errors] == ["4"]
    result = validator.validate(interchange(ge=None))
    assert [f.code for f in result.interchanges[0].groups[0].errors] == ["3"]


def test_interchange_trailer_checks():
    ic = validator.validate(interchange(iea="IEA*2*000000001")).interchanges[0]
    assert (ic.ta1_ack_code, ic.ta1_note_code) == ("R", "021")
    ic = validator.validate(interchange(iea="IEA*1*000000009")).interchanges[0]
    assert (ic.ta1_ack_code, ic.ta1_note_code) == ("R", "001")
    result = validator.validate(interchange(iea=None))
    assert result.interchanges[0].ta1_note_code == "023"
    assert all(s.ack_code == "R" for s in result.sets())  # rejected envelope, rejected sets


@pytest.mark.parametrize(("old", "new", "note"), [
    ("*261120*", "*261332*", "014"),
    ("*0930*", "*2599*", "015"),
    ("*000000001*", "*00000000A*", "018"),
    ("*0*P*", "*7*P*", "019"),
    ("*0*P*", "*0*X*", "020"),
    ("ISA*00*", "ISA*99*", "010"),
    ("*ZZ*SENDER ", "*QQ*SENDER ", "005"),
    ("*ZZ*SENDER         *", "*ZZ*SENDER        *", "006"),
])
def test_isa_fields(old, new, note):
    data = interchange().replace(old.encode(), new.encode(), 1)
    ic = validator.validate(data).interchanges[0]
    assert ic.ta1_note_code == note and ic.ta1_ack_code == "R", ic.findings


def test_unknown_isa12_version_is_noted_not_rejected():
    ic = validator.validate(interchange().replace(b"*00401*", b"*00040*")).interchanges[0]
    assert (ic.ta1_ack_code, ic.ta1_note_code) == ("E", "017")


def test_service_segments_ta1_only_and_acknowledgment_groups():
    data = interchange().replace(b"~\nGS*", b"~\nISB*1~\nISE*1~\nGS*", 1)
    assert validator.validate(data).accepted
    ta1 = f"{ISA}~\nTA1*000000123*261120*0930*A*000~\nIEA*0*000000001~\n".encode()
    ic = validator.validate(ta1).interchanges[0]
    assert ic.only_ta1 and ic.accepted and not ic.groups
    ack = interchange(["AK1*PO*1", "AK9*A*1*1*1"], set_id="997", fic="FA")
    result = validator.validate(ack)
    assert result.interchanges[0].groups[0].is_acknowledgment and result.accepted


def test_nearest_map_is_used_with_a_warning():
    s = only_set(interchange(version="004060"))
    assert s.ack_code == "A" and s.map_name == "850.4030"
    assert any("nearest" in w.message and "004060" in w.message and "004030" in w.message
               for w in s.warnings)
    for version, map_name in (("004010VICS", "850.4010"), ("004030VICS", "850.4030")):
        s = only_set(interchange(version=version))
        assert s.ack_code == "A" and s.map_name == map_name and not s.warnings


# N9 loop of an 850: at 004030 it holds DTM, MTX, PWK, EFI; at 004010 DTM and MSG.
N9_WITH_MTX = [*PO_BODY[:4], "N9*ZZ*NOTES", "MTX*GEN*Ship complete only", *PO_BODY[4:]]


def test_mtx_in_the_n9_loop_is_accepted_at_004030_and_rejected_at_004010():
    s = only_set(interchange(N9_WITH_MTX, version="004030"))
    assert (s.ack_code, s.map_name, s.findings) == ("A", "850.4030", [])
    s = only_set(interchange(N9_WITH_MTX, version="004010"))
    assert s.ack_code == "R"
    assert [(f.code, f.segment_id, f.segment_position) for f in errors(s, "segment")] == [
        ("2", "MTX", 7)]


def test_004030_still_rejects_what_its_own_standard_rejects():
    # MSG left the 850 at 004030 (MTX took its place), and BEG is mandatory.
    msg = [*PO_BODY[:4], "N9*ZZ*NOTES", "MSG*Ship complete only", *PO_BODY[4:]]
    s = only_set(interchange(msg, version="004030VICS"))
    assert s.ack_code == "R" and not s.warnings
    assert [(f.code, f.segment_id) for f in errors(s, "segment")] == [("6", "MSG")]
    s = only_set(interchange(PO_BODY[1:], version="004030"))
    assert s.ack_code == "R"
    assert ("3", "BEG") in [(f.code, f.segment_id) for f in errors(s, "segment")]
    # An element past MTX's sixth is past the 004030 MTX, not a version question.
    s = only_set(interchange([*PO_BODY[:4], "N9*ZZ*N", "MTX*GEN*A**AA*1*EN*X", *PO_BODY[4:]],
                             version="004030"))
    assert s.ack_code == "R" and [f.code for f in errors(s, "element")] == ["3"]


def test_a_version_without_a_map_notes_what_the_nearest_map_does_not_know():
    # 003050 850: NTE in the heading (gone from the 850 by 004010) and an N3 with an
    # element past the 004010 N3's last.
    body = [PO_BODY[0], "NTE*ADD*This order is a follow-up", *PO_BODY[1:5],
            "N3*400 Main Street*Suite 2*Dock 4", *PO_BODY[6:]]
    s = only_set(interchange(body, version="003050"))
    assert s.ack_code == "A" and s.map_name == "850.4010" and not s.errors
    noted = [(f.code, f.segment_id) for f in s.warnings if "003050" in f.message
             and "not rejected" in f.message]
    assert noted == [("6", "NTE"), ("3", "N3")]
    # At 004010 itself the same set breaks the standard.
    s = only_set(interchange(body, version="004010"))
    assert s.ack_code == "R"
    assert [(f.code, f.segment_id) for f in s.errors if f.level != "set"] == [
        ("6", "NTE"), ("3", "N3"), ("8", "N3")]


def test_a_version_without_a_map_is_still_rejected_for_rules_of_every_version():
    body = [PO_BODY[0], "NTE*ADD*Note", "N1*ST*Store 118*92", *PO_BODY[7:]]
    s = only_set(interchange(body, version="003050"))
    assert s.ack_code == "R"
    assert [(f.code, f.segment_id) for f in s.errors if f.level == "element"] == [("2", "N1")]
    s = only_set(interchange(body[1:], version="003050"))
    assert ("3", "BEG") in [(f.code, f.segment_id) for f in errors(s, "segment")]


def test_findings_are_capped_per_set_but_the_verdict_holds():
    body = [PO_BODY[0], *["Z$Z*1"] * 150, *PO_BODY[1:]]
    s = only_set(interchange(body))
    assert s.ack_code == "R" and len(s.findings) <= validator.MAX_FINDINGS_PER_SET + 1
    assert "more findings" in s.findings[-1].message


# -- the contract ------------------------------------------------------------------


def test_unreadable_input_is_a_verdict_not_an_exception(tmp_path):
    result = validator.validate(b"hello, this is not X12")
    assert isinstance(result, FileResult) and not result.readable and result.read_error
    missing = validator.validate(tmp_path / "nope.edi")
    assert not missing.readable and "nope.edi" in missing.read_error


def test_input_too_large_escapes():
    with pytest.raises(InputTooLarge):
        validator.validate(interchange(), max_bytes=100)


def test_sources_can_be_paths_bytes_or_streams(tmp_path):
    import io
    p = tmp_path / "po.edi"
    p.write_bytes(interchange())
    assert validator.validate(p).accepted and validator.validate(p).path == str(p)
    assert validator.validate(io.BytesIO(interchange())).accepted


def test_a_real_003050_850_with_nte_is_accepted_with_warnings_naming_the_version():
    from tests.conftest import REPO

    result = validator.validate(REPO / "tests" / "data" / "x12" /
                                "stupidedi-850-003050-padded-isa.edi")
    (s,) = result.sets()
    assert result.accepted and s.ack_code == "A" and s.errors == []
    assert result.interchanges[0].ta1_ack_code == "A"
    assert [(w.code, w.segment_id) for w in s.warnings] == [("", "ST"), ("6", "NTE")]
    assert all("003050" in w.message for w in s.warnings)


def test_before_004010_dtm05_is_century_and_the_notes_move_with_it():
    def dtm(version: str, segment: str):
        body = [*PO_BODY[:3], segment, *PO_BODY[4:]]
        return only_set(interchange(body, version=version))

    assert dtm("003050", "DTM*002*010808***20").ack_code == "A"
    s = dtm("003050", "DTM*002*010808***20*D8")  # DTM06 1250 without DTM07 1251
    assert [(f.code, f.element_position, f.data_element) for f in errors(s, "element")] == [
        ("2", 7, "1251")]
    assert "P0607" in errors(s, "element")[0].message
    s = dtm("003050", "DTM*002*010808***2O")
    assert [(f.code, f.element_position, f.data_element) for f in errors(s, "element")] == [
        ("6", 5, "624")]
    # At 004010 the Century is gone: DTM05 is 1250, and P0506 wants DTM06.
    s = dtm("004010", "DTM*002*20010808***20")
    assert [(f.code, f.element_position) for f in errors(s, "element")] == [("2", 6)]
