"""X12 source trees and selectors: loops from the spec, the HL tree, qualifiers, components."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.language import selectors
from mappings.sources.x12_tree import build_tree, hl_level, split_sets
from mappings.x12 import specs
from mappings.x12.reader import X12Reader

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "mapping"
ENV = ("ISA*00*          *00*          *ZZ*ACME           *ZZ*DIST           *261120*0930*U*"
       "00401*000000001*0*P*>~GS*PO*ACME*DIST*20261120*0930*1*X*004010~")
PO = """ST*850*0001~BEG*00*SA*4500012345**20261120~CUR*BY*USD~REF*DP*042~REF*IA*V77~
DTM*002*20261201~DTM*010*20261125~N1*BY*Acme Retail*92*0001~N1*ST*Store 118*92*0118~
N3*400 Main St*Dock 7~N4*Springfield*IL*62701*US~PO1*1*24*EA*4.25**BP*A-1*VP*W-100~
PID*F****Blue widget~SCH*12*EA***002*20261201~SCH*12*EA***002*20261208~PO1*2*10*CA*38.5**BP*A-2~
PID*F****Red widget~SLN*1**I*2*EA~CTT*2*34~SE*19*0001~GE*1*1~IEA*1*000000001~"""


def tree_of(body: str, env: str = ENV):
    """The loop tree of the first transaction set in `body`, built with our 850/856 maps."""
    reader = X12Reader((env + body.replace("\n", "")).encode())
    segments = next(split_sets(reader))
    spec, _ = specs.select_map(segments[0].get(1), "004010")
    return build_tree(segments, spec, component=reader.interchange.delimiters.component)


def file_tree(name: str):
    reader = X12Reader(DATA / name)
    segments = next(split_sets(reader))
    spec, _ = specs.select_map(segments[0].get(1), "004010")
    return build_tree(segments, spec)


def value(text: str, node) -> str | None:
    return selectors.compile_getter(text)[0](node)


def test_loops_follow_the_map():
    root = tree_of(PO)
    assert [n.id for n in root.loops] == ["N1", "N1", "PO1", "PO1", "CTT"]
    po1 = root.loops[2]
    assert [s.id for s in po1.segments] == ["PO1"]
    assert [n.id for n in po1.loops] == ["PID", "SCH", "SCH"]
    assert [s.id for s in root.loops[1].segments] == ["N1", "N3", "N4"]


def test_plain_and_qualified_selectors():
    root = tree_of(PO)
    assert value("BEG03", root) == "4500012345"
    assert value("BEG04", root) is None  # empty element
    assert value("BEG09", root) is None  # past the end of the segment
    assert value("N1[N101=ST].N104", root) == "0118"
    assert value("N1[N101=ST].N102", root) == "Store 118"
    assert value("N1[N101=ST].N401", root) == "Springfield"  # inside the ship-to loop
    assert value("N1[N101=BY].N401", root) is None  # the buyer loop has no N4
    assert value("REF[REF01=DP].REF02", root) == "042"
    assert value("REF[REF01=IA|DP].REF02", root) == "042"
    assert value("REF[REF01!=DP].REF02", root) == "V77"
    assert value("DTM[DTM01=010].DTM02", root) == "20261125"
    assert value("REF[REF01=ZZ].REF02", root) is None


def test_selectors_are_scoped_to_the_loop():
    root = tree_of(PO)
    first, second = root.loops[2], root.loops[3]
    assert value("PO107", first) == "A-1"
    assert value("PID05", first) == "Blue widget"  # PID is a child loop, found by its trigger
    assert value("PID05", second) == "Red widget"
    assert value("PO101", root) == "1"  # from the top, the first PO1 loop
    each_sch = selectors.compile_each("SCH")
    assert [value("SCH06", n) for n in each_sch(first)] == ["20261201", "20261208"]
    assert each_sch(second) == []


def test_component_selector():
    env = ENV.replace("*>~", "*^~")
    root = tree_of("ST*850*0001~BEG*00*SA*1**20261120~PO1*1*2*EA*1**BP*X~"
                   "MEA*PD*WT*10*LB^2~CTT*1~SE*6*0001~GE*1*1~IEA*1*000000001~", env)
    po1 = root.loops[0]
    assert value("MEA04-1", po1) == "LB"
    assert value("MEA04-2", po1) == "2"
    assert value("MEA04-3", po1) is None


def test_each_over_segments_and_loops():
    root = tree_of(PO)
    refs = selectors.compile_each("REF")(root)
    assert [value("REF02", n) for n in refs] == ["042", "V77"]
    ship_to = selectors.compile_each("N1[N101=ST]")(root)
    assert len(ship_to) == 1 and value("N403", ship_to[0]) == "62701"


@pytest.mark.parametrize("text", ["", "beg03", "BEG3", "N1[N101]", "N1[REF01=DP]",
                                  "N1[N101=ST", "BEG03.BEG04", "BEGIN03", "N1[N101=ST]x"])
def test_selector_syntax_errors(text):
    with pytest.raises(selectors.SelectorSyntaxError):
        selectors.parse(text)


def test_parse_shapes():
    (p,) = selectors.parse("PO101")
    assert (p.segment, p.element, p.component) == ("PO1", 1, 0)
    (p,) = selectors.parse("N1")
    assert (p.segment, p.element) == ("N1", 0)
    (p,) = selectors.parse("TD501")
    assert (p.segment, p.element) == ("TD5", 1)
    a, b = selectors.parse("N1[N101=ST|BT].N104")
    assert a.conds[0].values == frozenset({"ST", "BT"}) and b.element == 4


def _levels(nodes):
    return [hl_level(n) for n in nodes]


def _items_per_order(root):
    orders = selectors.compile_each("HL[HL03=O]")(root)
    items = selectors.compile_each("HL[HL03=I]", descendants=True)
    return {value("PRF01", o): [value("LIN03", i) for i in items(o)] for o in orders}


def test_hl_tree_shipment_order_pack_item():
    root = file_tree("856-sopi.edi")
    assert _levels(root.hl_children) == ["S"]
    shipment = root.hl_children[0]
    assert _levels(shipment.hl_children) == ["O", "O"]
    assert _levels(shipment.hl_children[0].hl_children) == ["P", "P"]
    assert _items_per_order(root) == {"4500012345": ["ACME-1001", "ACME-1002"],
                                      "4500012346": ["ACME-2001"]}
    # children only: an order's children are packs, not items
    assert selectors.compile_each("HL[HL03=I]")(shipment.hl_children[0]) == []


def test_hl_tree_shipment_order_item():
    root = file_tree("856-soi.edi")
    assert _items_per_order(root) == {"4500012345": ["ACME-1001", "ACME-1002"]}
    order = root.hl_children[0].hl_children[0]
    assert _levels(selectors.compile_each("HL[HL03=I]")(order)) == ["I", "I"]


def test_hl_tree_shipment_tare_pack_item():
    root = file_tree("856-stpi.edi")
    shipment = root.hl_children[0]
    assert _levels(shipment.hl_children) == ["T"]
    assert _levels(shipment.hl_descendants()) == ["T", "P", "I", "P", "I"]
    items = selectors.compile_each("HL[HL03=I]", descendants=True)(root)
    assert [value("SN102", i) for i in items] == ["24", "8"]
    packs = selectors.compile_each("HL[HL03=P]", descendants=True)(shipment)
    assert [value("MAN02", p) for p in packs] == ["00012345678900000011",
                                                   "00012345678900000028"]


def test_hl_tree_items_before_their_order():
    root = file_tree("856-items-first.edi")
    assert _items_per_order(root) == {"4500012345": ["ACME-1001"]}


def test_describe_names_segment_position_and_line():
    root = tree_of(PO)
    _, locate, last = selectors.compile_getter("BEG05")
    text = selectors.describe(root, locate(root), last)
    assert text == "segment 2 (BEG, line 1) element BEG05"


def test_without_a_spec_the_set_is_flat():
    reader = X12Reader((ENV + PO.replace("\n", "")).encode())
    root = build_tree(next(split_sets(reader)), None)
    assert root.loops == [] and value("PO102", root) == "24"
