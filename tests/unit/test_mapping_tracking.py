"""Tracking mode: a mapping loaded with track=True records which source elements it read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mappings.language import load_mapping
from mappings.sources.x12_tree import split_sets
from mappings.x12.reader import X12Reader

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "mapping"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "x12" / "acme-850-4010.edi"


def segments_of(path: Path):
    reader = X12Reader(path)
    return next(split_sets(reader)), reader.interchange.delimiters.component


def test_tracking_gives_the_same_output_and_records_reads():
    segs, comp = segments_of(SAMPLE)
    plain = load_mapping(DATA / "850-base.yaml")
    tracked = load_mapping(DATA / "850-base.yaml", track=True)
    assert plain.reads is None
    assert tracked.map_x12(segs, component=comp) == plain.map_x12(segs, component=comp)
    by_id = {s.fields[0]: s.position for s in reversed(segs)}  # first of each id
    reads = tracked.reads
    assert (by_id["BEG"], 3) in reads and (by_id["BEG"], 5) in reads
    assert (by_id["CUR"], 1) in reads  # the qualifier that chose CUR[CUR01=BY]
    assert (by_id["CUR"], 2) in reads
    per = next(s for s in segs if s.fields[0] == "PER")
    assert not any(p == per.position for p, _ in reads)  # the base never reads PER
    po1s = [s for s in segs if s.fields[0] == "PO1"]
    assert all((s.position, 2) in reads for s in po1s)  # every line, not only the first


def test_reads_accumulate_until_cleared():
    segs, comp = segments_of(SAMPLE)
    m = load_mapping(DATA / "850-base.yaml", track=True)
    m.map_x12(segs, component=comp)
    assert m.reads
    m.reads.clear()
    assert not m.reads


def test_qualifiers_of_unchosen_segments_are_not_recorded(tmp_path):
    (tmp_path / "m.yaml").write_text(
        'format: x12\ndocument: "850"\nversion: "004010"\n'
        'fields:\n  ship_to: "N1[N101=ST].N104"\n')
    segs, comp = segments_of(SAMPLE)
    m = load_mapping(tmp_path / "m.yaml", track=True)
    assert m.map_x12(segs, component=comp) == {"ship_to": "0118"}
    n1s = [s for s in segs if s.fields[0] == "N1"]
    by, st = n1s
    assert (st.position, 1) in m.reads and (st.position, 4) in m.reads
    assert not any(p == by.position for p, _ in m.reads)


def test_each_and_when_record_their_qualifiers(tmp_path):
    (tmp_path / "m.yaml").write_text(
        'format: x12\ndocument: "850"\nversion: "004010"\n'
        'fields:\n'
        '  stores: {each: "N1[N101=ST]", value: N104}\n'
        '  has_dept: {const: "yes", when: {select: "REF[REF01=DP]", exists: true}}\n')
    segs, comp = segments_of(SAMPLE)
    m = load_mapping(tmp_path / "m.yaml", track=True)
    assert m.map_x12(segs, component=comp) == {"stores": ["0118"], "has_dept": "yes"}
    ref = next(s for s in segs if s.fields[0] == "REF")
    st = [s for s in segs if s.fields[0] == "N1"][1]
    assert (ref.position, 1) in m.reads and (st.position, 1) in m.reads


def test_csv_tracking_records_file_row_and_column():
    m = load_mapping(DATA / "alto-invoice-csv.yaml", track=True)
    header = "102561333,102627752,\"CCYYMMDD\",20090918,20090914,\"P313455\",337.22,42.15,379.37\n"
    detail = "102561333,10,48.000,7.0254,337.22,\"1011422\"\n"
    docs = m.map_csv(header, detail, file="h.csv", details_file="d.csv")
    assert docs[0]["invoice_number"] == "102561333"
    assert ("h.csv", 1, "po_number") in m.reads
    assert ("d.csv", 1, "material") in m.reads
    assert ("h.csv", 1, "batch_number") not in m.reads


def test_json_tracking_records_paths():
    m = load_mapping(DATA / "webhook-order-json.yaml", track=True)
    body = json.loads('{"order": {"number": "A1", "date": "20261120", "channel": "web",'
                      ' "lines": [{"qty": 2, "unit": "each", "item": {"name": "Cup"}}]}}')
    out = m.map_json(body)
    assert out["po_number"] == "A1"
    assert "/order/number" in m.reads and "/order/lines/0/qty" in m.reads
    assert "/order/channel" not in m.reads
