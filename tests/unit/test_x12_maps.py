"""The pyx12 maps in mappings/x12/maps: fresh, loadable by pyx12, schema-valid, complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from mappings.x12 import mapgen
from mappings.x12.pyx12_bridge import map_path

pytestmark = pytest.mark.unit

MAPS = Path(map_path())
MAP_FILES = sorted(p.name for p in MAPS.glob("*.xml") if p.name not in {"maps.xml", "dataele.xml", "codes.xml"})


def _pyx12_schema(name: str) -> etree.XMLSchema:
    import pyx12

    return etree.XMLSchema(etree.parse(str(Path(pyx12.__file__).parent / "map" / name)))


def test_maps_are_fresh() -> None:
    assert mapgen.main(["--check"]) == 0, "run: python -m mappings.x12.mapgen"


def test_index_names_every_map_and_required_versions() -> None:
    tree = etree.parse(str(MAPS / "maps.xml"))
    rows = {(v.get("icvn"), m.get("vriic"), m.get("fic")): m.text
            for v in tree.iter("version") for m in v.iter("map")}
    assert rows[("00401", "004010", "PO")] == "850.4010.xml"
    assert rows[("00401", "004010", "FA")] == "997.4010.xml"
    assert rows[("00501", "005010", "FA")] == "999.5010.xml"
    assert rows[("00501", "005010X231A1", "FA")] == "999.5010.xml"
    assert rows[("00501", "005010X230", "FA")] == "997.5010.xml"
    for fic in ("PO", "PR", "SH", "IN"):
        assert ("00401", "004010", fic) in rows and ("00501", "005010", fic) in rows
    assert set(rows.values()) == set(MAP_FILES)


@pytest.mark.parametrize("name", MAP_FILES)
def test_map_loads_in_pyx12(name: str) -> None:
    import pyx12.map_if
    import pyx12.params

    root = pyx12.map_if.load_map_file(name, pyx12.params.params(), map_path())
    assert root.getnodebypath("/ISA_LOOP/ISA") is not None
    assert root.getnodebypath("/ISA_LOOP/GS_LOOP/GS") is not None
    if not name.startswith("x12.control"):
        assert root.getnodebypath("/ISA_LOOP/GS_LOOP/ST_LOOP/ST") is not None
        assert root.getnodebypath("/ISA_LOOP/GS_LOOP/ST_LOOP/SE") is not None


@pytest.mark.parametrize("name", MAP_FILES)
def test_map_is_valid_against_pyx12_map_xsd(name: str) -> None:
    schema = _pyx12_schema("map.xsd")
    doc = etree.parse(str(MAPS / name))
    assert schema.validate(doc), schema.error_log


def test_index_is_valid_against_pyx12_maps_xsd() -> None:
    schema = _pyx12_schema("maps.xsd")
    doc = etree.parse(str(MAPS / "maps.xml"))
    assert schema.validate(doc), schema.error_log


def test_every_referenced_data_element_is_defined() -> None:
    defined = {e.get("ele_num") for e in etree.parse(str(MAPS / "dataele.xml")).iter("data_ele")}
    for name in MAP_FILES:
        for el in etree.parse(str(MAPS / name)).iter("element"):
            assert el.findtext("data_ele") in defined, f"{name}: {el.get('xid')}"
    simple = {n for n in mapgen.referenced_data_elements() if not n.startswith("C")}
    assert simple <= defined


def test_five_thousand_ten_differs_where_the_standard_changed() -> None:
    segs = mapgen.load_segments()
    # 004010 already dropped DTM's Century (624); DTM is 6 elements in both (Bots records004010/005010)
    assert len(segs["5010"]["DTM"].refs) == 6 and len(segs["4010"]["DTM"].refs) == 6
    assert segs["4010"]["DTM"].syntax == ["R020305", "C0403", "P0506"]
    assert len(segs["4010"]["MEA"].refs) == 10 and len(segs["5010"]["MEA"].refs) == 12
    assert len(segs["5010"]["ST"].refs) == 3 and len(segs["4010"]["ST"].refs) == 2


def test_segments_checked_against_bots_records() -> None:
    segs = mapgen.load_segments()
    # element counts per bots-edi/bots-grammars x12/4010/records004010.py
    for seg, n in {"BSN": 7, "CB1": 2, "FOB": 9, "PAM": 15, "PKG": 6, "PRF": 7, "L7": 16,
                   "LH1": 11, "LH2": 11, "LH4": 12, "IT8": 27, "CSH": 10, "TD5": 15}.items():
        assert len(segs["4010"][seg].refs) == n, seg
    # PO4: P0203 confirmed for 004010 (spec/sources/pages.syntax.tsv); the others were seen
    # for 004020/006010 only, so they are kept marked unverified (they warn)
    assert segs["4010"]["PO4"].syntax == ["P0203"]
    assert segs["4010"]["PO4"].unverified_syntax[:2] == ["C0506", "P0607"]


# -- 005010 structures (bots-edi/bots-grammars x12/5010/<set>005010.py) -----------------

def _only_set(set_id: str, fic: str, version: str, body: list[str]):
    from mappings.x12 import validator

    if version.startswith("005"):
        icvn, rep = "00501", "^"
    elif version >= "004030":
        icvn, rep = "00403", "^"
    else:
        icvn, rep = "00401", "U"
    isa = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261120*0930*"
           f"{rep}*{icvn}*000000001*0*P*>")
    segs = [isa, f"GS*{fic}*SENDER*RECEIVER*20261120*0930*1*X*{version}", f"ST*{set_id}*0001",
            *body, f"SE*{len(body) + 2}*0001", "GE*1*1", "IEA*1*000000001"]
    result = validator.validate(("~\n".join(segs) + "~\n").encode())
    assert result.readable, result.read_error
    (s,) = result.sets()
    return s


FIVE_THOUSAND_TEN_ONLY = {
    # N9 loop's MTX (005010 replaced MSG by MTX; at 004010 MTX is only in the ADV loop)
    "850": ("PO", ["BEG*00*SA*4500012345**20261120", "N9*L1*NOTES", "MTX**Ship complete",
                   "PO1*1*24*EA*4.25**BP*ACME-1001", "CTT*1"]),
    "855": ("PR", ["BAK*00*AC*4500012345*20261120", "N9*L1*NOTES", "MTX**Acknowledged",
                   "PO1*1*24*EA*4.25**BP*ACME-1001", "CTT*1"]),
    # AT9 in the TD3 loop (TD3 is a plain segment at 004010, AT9 unknown there)
    "856": ("SH", ["BSN*00*SHIP1*20261120*0930", "HL*1**S", "TD3*TL**TRLR1",
                   "AT9*05300*110*102", "HL*2*1*I", "LIN**BP*ACME-1001", "SN1**24*EA",
                   "CTT*2"]),
    # CRC in the header (004010 has CRC only inside the IT1 loop)
    "810": ("IN", ["BIG*20261120*INV1", "CRC*ZZ*Y*01", "IT1*1*24*EA*4.25**BP*ACME-1001",
                   "TDS*10200", "CTT*1"]),
}


@pytest.mark.parametrize("set_id", sorted(FIVE_THOUSAND_TEN_ONLY))
def test_a_five_thousand_ten_structure_is_accepted_at_5010_and_rejected_at_4010(set_id: str) -> None:
    fic, body = FIVE_THOUSAND_TEN_ONLY[set_id]
    at_5010 = _only_set(set_id, fic, "005010", body)
    assert at_5010.map_name == f"{set_id}.5010"
    assert at_5010.ack_code == "A", at_5010.findings
    # Each of these came in at 004030 already (Bots x12/4030/<set>004030.py).
    for version in ("004030", "004030VICS"):
        at_4030 = _only_set(set_id, fic, version, body)
        assert (at_4030.map_name, at_4030.ack_code, at_4030.findings) == (
            f"{set_id}.4030", "A", [])
    at_4010 = _only_set(set_id, fic, "004010", body)
    assert at_4010.map_name == f"{set_id}.4010"
    assert at_4010.ack_code == "R"
    new_seg = {"850": "MTX", "855": "MTX", "856": "AT9", "810": "CRC"}[set_id]
    assert [f.segment_id for f in at_4010.findings if f.level == "segment"] == [new_seg]


def test_new_5010_segments_match_records005010() -> None:
    segs = mapgen.load_segments()
    # element counts per bots-edi/bots-grammars x12/5010/records005010.py (6c1d8a54)
    for seg, n in {"MTX": 6, "IN2": 3, "EFI": 16, "AT9": 8, "CRC": 7}.items():
        assert len(segs["5010"][seg].refs) == n, seg
    assert [r.num for r in segs["5010"]["MTX"].refs] == ["363", "1551", "1551", "934", "1470", "819"]
    assert len(segs["4010"]["MTX"].refs) == 4


def test_four_thousand_thirty_differs_from_4010_where_records004030_does() -> None:
    segs = mapgen.load_segments()
    # element counts per bots-edi/bots-grammars x12/4030/records004030.py (6c1d8a54)
    for seg, n in {"ST": 3, "BIG": 11, "N4": 7, "MTX": 6, "DMG": 11}.items():
        assert len(segs["4030"][seg].refs) == n, seg
        assert len(segs["4010"][seg].refs) < n, seg
    assert segs["4030"]["BIG"].refs[10].num == "1005"
    assert segs["4030"]["BEG"] == segs["4010"]["BEG"]  # no override: the base line


def test_index_has_the_004030_maps_in_00401_interchanges() -> None:
    tree = etree.parse(str(MAPS / "maps.xml"))
    rows = {(v.get("icvn"), m.get("vriic"), m.get("fic")): m.text
            for v in tree.iter("version") for m in v.iter("map")}
    for fic, set_id in (("PO", "850"), ("PR", "855"), ("SH", "856"), ("IN", "810"),
                        ("FA", "997")):
        assert rows[("00401", "004030", fic)] == f"{set_id}.4030.xml"


@pytest.mark.parametrize("gs08", ["004030", "004030VICS", "004060"])
def test_pyx12_runs_004030_groups_against_the_004030_map(gs08: str) -> None:
    from mappings.x12.pyx12_bridge import _normalise, run_pyx12

    def interchange(note: str) -> bytes:
        segs = ["ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261120*"
                "0930*^*00403*000000001*0*P*>",
                f"GS*PO*SENDER*RECEIVER*20261120*0930*1*X*{gs08}", "ST*850*0001",
                "BEG*00*SA*4500012345**20261120", "N9*L1*NOTES", note,
                "PO1*1*24*EA*4.25**BP*ACME-1001", "CTT*1", "SE*7*0001", "GE*1*1",
                "IEA*1*000000001"]
        return ("~".join(segs) + "~").encode()

    text = _normalise(interchange("MTX**Ship complete").decode())
    assert "*00401*" in text and "*X*004030~" in text  # pyx12 reads 00401 interchanges only
    (s,) = run_pyx12(interchange("MTX**Ship complete")).sets.values()
    assert s.accepted and s.errors == []
    # MSG left the 850's N9 loop at 004030
    verdict = run_pyx12(interchange("MSG*Ship complete"))
    (s,) = verdict.sets.values()
    assert not s.accepted and [e.segment_id for e in s.errors] == ["MSG"]
