"""Outbound mappings: canonical purchase orders written as X12 850s that our validator
and pyx12 (with our maps) accept, and that the inbound mappings read back the same."""

from __future__ import annotations

import copy
import functools
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonical import schemas
from canonical.errors import MappingError, MappingFileError, OutboundDataError
from mappings.language import emitter, load_mapping
from mappings.x12 import compose, validator
from mappings.x12.pyx12_bridge import run_pyx12
from mappings.x12.reader import X12Reader

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples/orders/globex-po.json"
GLOBEX = ROOT / "mappings/partners/globex/850.outbound.yaml"
BASE_4010 = ROOT / "mappings/base/outbound/850.4010.yaml"
BASE_5010 = ROOT / "mappings/base/outbound/850.5010.yaml"
PARTIES = compose.Parties("ZZ", "DISTRIBUTOR", "ZZ", "GLOBEX", "DISTRIBUTOR", "GLOBEX")
NOW = datetime(2026, 11, 18, 9, 30)


def _po() -> dict:
    data = json.loads(SAMPLE.read_text())
    schemas.check("purchase_order", data)
    return data


@functools.cache
def _mapping(mapping_file: Path) -> emitter.OutboundMapping:
    return emitter.load(mapping_file)


def _write(mapping_file: Path, data: dict, numbers: tuple[int, int, int] = (7, 8, 9)) -> str:
    return compose.compose(_mapping(mapping_file), data, PARTIES,
                           compose.ControlNumbers(*numbers), NOW)


def _segments(text: str) -> list[list[str]]:
    with X12Reader(text.encode()) as reader:
        return [list(s.fields) for s in reader]


@pytest.mark.parametrize("mapping_file", [GLOBEX, BASE_4010, BASE_5010], ids=lambda p: p.stem
                         + ("-globex" if "globex" in str(p) else "-base"))
def test_the_850_is_accepted_by_our_validator_and_by_pyx12(mapping_file: Path) -> None:
    text = _write(mapping_file, _po())
    ours = validator.validate(text.encode())
    assert ours.accepted, ours.to_dict()
    assert [s.set_id for s in ours.sets()] == ["850"]
    theirs = run_pyx12(text.encode())
    assert theirs.valid and not theirs.envelope_errors, theirs
    assert [s.accepted and not s.errors for s in theirs.sets.values()] == [True]


def test_control_numbers_and_versions_are_where_x12_wants_them() -> None:
    segs = _segments(_write(BASE_5010, _po(), (41, 42, 43)))
    isa, gs, st = segs[0], segs[1], segs[2]
    assert (isa[12], isa[13], gs[6], gs[8]) == ("00501", "000000041", "42", "005010")
    assert st[1:] == ["850", "0043", "005010"]
    assert segs[-3][0] == "SE" and segs[-3][2] == "0043"
    assert int(segs[-3][1]) == len(segs) - 4  # ST..SE: all but ISA, GS, GE and IEA
    segs4 = _segments(_write(GLOBEX, _po()))
    assert segs4[0][12] == "00401" and segs4[1][8] == "004010" and len(segs4[2]) == 3


def test_globex_states_only_its_differences() -> None:
    data = _po()
    ids = [s[:3] for s in _segments(_write(GLOBEX, data)) if s[0] in ("REF", "PO1")]
    assert ids[:2] == [["REF", "IA", "DIST-0042"], ["REF", "DP", "042"]]  # before: REF
    assert [s[3] for s in _segments(_write(GLOBEX, data)) if s[0] == "PO1"] == ["EA", "CS", "EA"]
    del data["order_type"]
    beg = next(s for s in _segments(_write(GLOBEX, data)) if s[0] == "BEG")
    assert beg[2] == "NE"
    beg = next(s for s in _segments(_write(BASE_4010, data)) if s[0] == "BEG")
    assert beg[2] == "SA"


@pytest.mark.parametrize("outbound,inbound", [(BASE_4010, "850.4010.yaml"),
                                              (BASE_5010, "850.5010.yaml")])
def test_the_inbound_base_mapping_reads_back_what_was_written(outbound: Path,
                                                              inbound: str) -> None:
    data = _po()
    text = _write(outbound, data)
    segs = []
    with X12Reader(text.encode()) as reader:
        segs = [s for s in reader]
    body = segs[2:-2]  # ST..SE
    back = load_mapping(ROOT / "mappings/base" / inbound).map_x12(body)
    assert back["po_number"] == data["po_number"] and back["po_date"] == data["po_date"]
    assert back["purpose"] == "original" and back["currency"] == "USD"
    assert back["notes"] == data["notes"]
    assert [(p["role"], p["name"]) for p in back["parties"]] == [
        (p["role"], p["name"]) for p in data["parties"]]
    assert back["parties"][1]["address"] == data["parties"][1]["address"]
    for got, sent in zip(back["lines"], data["lines"], strict=True):
        assert got["line_number"] == sent["line_number"]
        assert got["quantity"] == sent["quantity"]
        assert got["unit_price"]["value"] == sent["unit_price"]["value"]
        assert [(i["kind"], i["id"]) for i in got["item_ids"]] == [
            (i["kind"], i["id"]) for i in sent["item_ids"]]
    assert back["dates"] == [{"kind": "requested_delivery", "qualifier": "002",
                              "date": "2026-12-01"}]
    assert back["totals"] == {"line_count": 3, "quantity_total": "39", "total_amount": "838.00"}


def test_a_value_with_a_delimiter_is_refused_naming_segment_and_element() -> None:
    data = _po()
    data["lines"][1]["description"] = "Widget*large"
    with pytest.raises(OutboundDataError, match=r"segment PID, element PID05: .*element "
                                                r"separator '\*'"):
        _write(GLOBEX, data)
    data = _po()
    data["notes"] = ["two\nlines"]
    with pytest.raises(OutboundDataError, match=r"MSG01: .*control character"):
        _write(GLOBEX, data)


def test_implied_decimals_dates_and_missing_required_values() -> None:
    data = _po()
    data["allowances_charges"] = [{"indicator": "charge", "code": "D240", "amount": "25.5"}]
    sac = next(s for s in _segments(_write(BASE_4010, data)) if s[0] == "SAC")
    assert sac[1:6] == ["C", "D240", "", "", "2550"]
    bad = copy.deepcopy(data)
    bad["allowances_charges"][0]["amount"] = "25.555"
    with pytest.raises(MappingError, match=r"SAC05.*more than 2 decimal places"):
        _write(BASE_4010, bad)
    bad = copy.deepcopy(data)
    del bad["po_date"]
    with pytest.raises(MappingError, match="BEG05: no value"):
        _write(BASE_4010, bad)


def test_mapping_file_errors_name_file_line_and_key(tmp_path: Path) -> None:
    f = tmp_path / "850.yaml"
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  BEG:\n    CUR02: currency\n")
    with pytest.raises(MappingFileError, match=r"850.yaml:4: segments.BEG.CUR02: CUR02 is not "
                                               r"an element of BEG"):
        emitter.load(f)
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  REF_x:\n    before: NOPE\n"
                 "    REF01: {const: IA}\n")
    with pytest.raises(MappingFileError, match=r"850.yaml:4: segments.REF_x.before: no "
                                               r"segment 'NOPE'"):
        emitter.load(f)
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  BEG:\n    colour: red\n")
    with pytest.raises(MappingFileError, match=r"850.yaml:4: segments.BEG.colour"):
        emitter.load(f)


def test_mapping_check_knows_both_directions(tmp_path: Path) -> None:
    from mappings.language import check

    assert check(GLOBEX) == [] and check(BASE_5010) == []
    f = tmp_path / "850.yaml"
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  PO1:\n    N101: x\n")
    assert check(f) and "N101 is not an element of PO1" in check(f)[0]
    with pytest.raises(MappingFileError, match="cannot read a document"):
        load_mapping(GLOBEX)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=40))
def test_any_text_is_written_as_itself_or_refused(text: str) -> None:
    data = _po()
    data["lines"][0]["description"] = text
    data["notes"] = [text]
    try:
        written = _write(GLOBEX, data)
    except OutboundDataError as exc:
        assert "segment PID, element PID05" in str(exc) or "segment MSG, element MSG01" in str(exc)
        return
    segs = _segments(written)
    pid = next(s for s in segs if s[0] == "PID")
    assert pid[5] == text  # read back as written: no delimiter slipped through
    assert next(s for s in segs if s[0] == "MSG")[1] == text


def test_first_alternatives_keep_required_and_refuse_transforms_beside_them(
        tmp_path: Path) -> None:
    f = tmp_path / "850.yaml"
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  BEG:\n"
                 "    BEG04: {first: [release_number, order_type], required: true}\n")
    data = _po()
    del data["order_type"]
    with pytest.raises(MappingError, match=r"BEG04: no value at JSON path /"):
        compose.compose(emitter.load(f), data, PARTIES, compose.ControlNumbers(1, 1, 1), NOW)
    f.write_text(f"extends: {BASE_4010}\nsegments:\n  BEG:\n"
                 "    BEG02: {first: [order_type], table: purpose}\n")
    with pytest.raises(MappingFileError, match=r"850.yaml:4: segments.BEG.BEG02: table: "
                                               r"beside first:"):
        emitter.load(f)
