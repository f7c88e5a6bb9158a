"""Spec facts that were wrong once, and facts the spec marks unverified ('?'), end to end.

Regressions: real purchase orders and ship notices that the old facts rejected. Unverified
facts: a finding that rests only on one is a warning, so the set is accepted; the same
finding on a verified fact stays an error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mappings.x12 import elements, mapgen, specs, validator
from tests.unit.test_x12_validator import PO_BODY, interchange, only_set

pytestmark = pytest.mark.unit

ISA_5010 = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261120*0930*^*"
            "00501*000000001*0*P*>")
SHIP_NOTICE = [
    "BSN*00*SHIP0001*20261120*1200",
    "HL*1**S",
    "TD1*CTN25*2****G*21.5*LB",
    "TD5*B*2*UPSN*M",
    "HL*2*1*O",
    "PRF*4500012345",
    "HL*3*2*I",
    "LIN**BP*ACME-1001",
    "SN1**24*EA",
    "CTT*3",
]


def _po_with(line: str) -> list[str]:
    """The purchase order with one more segment after the first PO1."""
    at = PO_BODY.index("PID*F****Widget, blue")
    return [*PO_BODY[:at], line, *PO_BODY[at:]]


@pytest.mark.parametrize(("version", "isa"), [("004010", None), ("005010", ISA_5010)])
def test_a_purchase_order_with_a_class_of_trade_code_is_accepted(version, isa):
    # CTP01 is element 687, ID 2/2 (it was written 3/3, which rejected every CTP*RS)
    kw = {"isa": isa} if isa else {}
    s = only_set(interchange(_po_with("CTP*RS*RES*12.5"), version=version, **kw))
    assert s.accepted and not s.errors, [f.message for f in s.errors]


def test_a_three_letter_class_of_trade_code_is_too_long():
    s = only_set(interchange(_po_with("CTP*RES*RES*12.5")))
    (bad,) = [f for f in s.errors if f.level == "element"]
    assert (bad.code, bad.segment_id, bad.element_position, bad.data_element) == (
        "5", "CTP", 1, "687")


def test_ctp_syntax_notes_now_apply():
    # C0607 from stupidedi and pyx12: a multiplier qualifier (CTP06) needs its multiplier
    s = only_set(interchange(_po_with("CTP*RS*RES*12.5***DIS")))
    assert not s.accepted
    assert any(f.code == "2" and f.element_position == 7 for f in s.errors)


@pytest.mark.parametrize(("version", "isa"), [("004010", None), ("005010", ISA_5010)])
def test_a_ship_notice_with_a_free_text_lading_description_is_accepted(version, isa):
    # TD105 is element 79, AN 1/50 (it was written ID 1/2)
    body = [line if not line.startswith("TD1") else
            "TD1*CTN25*2***Mixed cartons, fragile*G*21.5*LB" for line in SHIP_NOTICE]
    kw = {"isa": isa} if isa else {}
    s = only_set(interchange(body, set_id="856", fic="SH", version=version, **kw))
    assert s.accepted and not s.errors, [f.message for f in s.errors]


def test_an_unverified_syntax_note_only_warns():
    # FOB C0405 is seen for other releases only (spec: C0405?): FOB04 without FOB05 warns.
    assert "C0405" in mapgen.load_segments()["4010"]["FOB"].unverified_syntax
    body = [*PO_BODY[:3], "FOB*PP***01", *PO_BODY[3:]]
    s = only_set(interchange(body))
    assert s.accepted and not s.errors, [f.message for f in s.errors]
    (warn,) = [f for f in s.warnings if f.segment_id == "FOB"]
    assert warn.code == "2" and warn.element_position == 5
    assert elements.UNVERIFIED_NOTE in warn.message


def test_a_note_a_page_confirms_rejects():
    # TD1 C0102 is confirmed for 004010 (spec/sources/pages.syntax.tsv): an error
    body = [line if not line.startswith("TD1") else "TD1*CTN25" for line in SHIP_NOTICE]
    s = only_set(interchange(body, set_id="856", fic="SH"))
    assert not s.accepted
    assert any(f.segment_id == "TD1" and f.code == "2" and f.element_position == 2
               for f in s.errors)


def test_a_verified_syntax_note_still_rejects():
    body = [line if not line.startswith("TD5") else "TD5*B*2" for line in SHIP_NOTICE]
    s = only_set(interchange(body, set_id="856", fic="SH"))
    assert not s.accepted  # TD5 C0203 is in stupidedi's tables: an error
    assert any(f.segment_id == "TD5" and f.code == "2" for f in s.errors)


@pytest.fixture
def marked_maps(tmp_path, monkeypatch) -> Path:
    """A copy of our maps whose unverified.json also marks BEG and PER's element 3."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "maps"
    shutil.copytree(specs.default_map_path(), folder)
    doc = json.loads((folder / specs.UNVERIFIED).read_text())
    doc["maps"]["850.4010.xml"]["BEG"] = {"segment": True, "elements": [], "syntax": []}
    doc["maps"]["850.4010.xml"]["PER"] = {"segment": False, "elements": [3], "syntax": []}
    (folder / specs.UNVERIFIED).write_text(json.dumps(doc))
    specs.load_folder.cache_clear()
    specs.load_spec.cache_clear()
    yield folder
    specs.load_folder.cache_clear()
    specs.load_spec.cache_clear()


def test_findings_on_an_unverified_segment_or_element_warn(marked_maps):
    body = ["BEG*00*SA*" + "9" * 30 + "**20261120*EXTRA*1*2*3*4*5*6*7",
            "PER*BD*Jane Buyer*TEL*5551234567", *PO_BODY[3:]]
    result = validator.validate(interchange(body), maps=marked_maps)
    (s,) = result.sets()
    assert s.accepted and not s.errors, [f.message for f in s.errors]
    found = {(f.segment_id, f.code) for f in s.warnings}
    # BEG03 too long, BEG has too many elements, PER03 (365, ID 2/2) too long
    assert {("BEG", "5"), ("BEG", "3"), ("PER", "5")} <= found
    same_on_ours = only_set(interchange(body))
    assert {f.segment_id for f in same_on_ours.errors} >= {"BEG", "PER"}


def test_an_unverified_element_still_reports_bad_characters(marked_maps):
    body = ["BEG*00*SA*4500\x0112345**20261120", *PO_BODY[1:]]
    result = validator.validate(interchange(body), maps=marked_maps)
    (s,) = result.sets()
    assert not s.accepted
    assert any(f.segment_id == "BEG" and f.code == "6" for f in s.errors)


def test_unverified_marks_reach_the_generated_file():
    doc = json.loads((mapgen.MAPS_DIR / mapgen.UNVERIFIED).read_text())
    po4 = doc["maps"]["856.4010.xml"]["PO4"]
    assert "C0506" in po4["syntax"] and "P0203" not in po4["syntax"] and not po4["segment"]
    assert doc["maps"]["810.4010.xml"]["SR"]["segment"] is True
    # ITD05 (351) is an unverified element (R or N0: only Bots has it)
    assert 5 in doc["maps"]["810.4010.xml"]["ITD"]["elements"]
