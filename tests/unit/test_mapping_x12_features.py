"""Language features the base mappings needed: element pairs, dotted each:, `/` selectors,
`matches:`, `extract:`, `check_digit:`, and counters that only fill in missing values."""

from __future__ import annotations

import pytest

from canonical.errors import MappingFileError
from mappings.language import load_mapping
from mappings.sources.x12_tree import build_tree, split_sets
from mappings.x12 import specs
from mappings.x12.reader import X12Reader

pytestmark = pytest.mark.unit

ENV = ("ISA*00*          *00*          *ZZ*ACME           *ZZ*DIST           *261120*0930*U*"
       "00401*000000001*0*P*>~GS*PO*ACME*DIST*20261120*0930*1*X*004010~")
PO = """ST*850*0001~BEG*00*SA*PO-9**20261120~N9*L1*NOTES~MSG*first~MSG*second~N9*L1*MORE~
MSG*third~PO1**2*EA*1**BP*A-1*UP*012345678905*VN*V-1~PO1*7*1*EA*1**UP*1234~
PO1**3*EA*1~CTT*3~SE*12*0001~GE*1*1~IEA*1*000000001~"""
ASN = """ST*856*0001~BSN*00*S1*20261120*1200~HL*1**S~REF*BM*BOL-1~REF*CN*TRK-1~HL*2*1*O~
PRF*PO-1~HL*3*2*P~MAN*GM*00000715670002152360~HL*4*3*P~MAN*GM*00007121610006156802~
CTT*4~SE*12*0001~GE*1*1~IEA*1*000000001~"""


def tree(body: str):
    reader = X12Reader((ENV + body.replace("\n", "")).encode())
    segments = next(split_sets(reader))
    spec, _ = specs.select_map(segments[0].get(1), "004010")
    return build_tree(segments, spec, component=">")


def run(fields: str, body: str = PO, tmp_path=None) -> dict:
    text = f"format: x12\ndocument: '850'\nfields:\n{fields}"
    return load_mapping("t.yaml", text=text)(tree(body))


def test_pairs_give_one_item_per_qualifier_and_id():
    out = run("""  lines:
    each: PO1
    fields:
      qty: PO102
      ids:
        pairs: PO106..PO125
        fields: {q: PO106, id: PO107}
""")
    assert out["lines"][0]["ids"] == [{"q": "BP", "id": "A-1"}, {"q": "UP", "id": "012345678905"},
                                      {"q": "VN", "id": "V-1"}]
    assert out["lines"][1]["ids"] == [{"q": "UP", "id": "1234"}]
    assert "ids" not in out["lines"][2]


@pytest.mark.parametrize("bad", ["PO106..PO124", "PO106..SLN07", "PO107..PO106"])
def test_pairs_syntax(bad):
    with pytest.raises(MappingFileError, match="pairs"):
        run(f"  x: {{each: PO1, fields: {{y: {{pairs: '{bad}', fields: {{a: PO106}}}}}}}}\n")


def test_counter_with_a_source_fills_only_missing_values():
    out = run("""  lines:
    each: PO1
    fields:
      n: {select: PO101, counter: true}
""")
    assert [ln["n"] for ln in out["lines"]] == ["1", "7", "3"]


def test_dotted_each_flattens_every_step():
    out = run("  notes: {each: N9.MSG, value: MSG01}\n")
    assert out["notes"] == ["first", "second", "third"]
    out = run("  refs: {each: 'HL[HL03=S].REF', value: REF02}\n", ASN)
    assert out["refs"] == ["BOL-1", "TRK-1"]
    out = run("  packs: {each: 'HL[HL03=O].HL[HL03=P]', value: MAN02}\n", ASN)
    assert out["packs"] == ["00000715670002152360"]  # children only, not the inner pack


def test_root_selector_reads_the_top_of_the_set():
    out = run("""  lines:
    each: PO1
    fields:
      po: /BEG03
      has_beg: {const: yes, when: {select: /BEG, exists: true}}
      own: BEG03
""")
    assert out["lines"][0] == {"po": "PO-9", "has_beg": "yes"}
    out = run("  notes: {each: /N9.MSG, value: MSG01}\n")
    assert out["notes"] == ["first", "second", "third"]


def test_matches_condition():
    out = run("""  lines:
    each: PO1
    fields:
      qty: PO102
      upc: {first: [{select: PO109, when: {select: PO109, matches: '[0-9]{12}'}},
                    {select: PO107, when: {select: PO107, matches: '[0-9]{12}'}}]}
""")
    assert out["lines"][0]["upc"] == "012345678905"
    assert "upc" not in out["lines"][1]  # 1234 is not twelve digits


def test_matches_with_a_bad_pattern_is_a_file_error():
    with pytest.raises(MappingFileError, match="regular expression"):
        run("  a: {select: BEG03, when: {select: BEG03, matches: '('}}\n")


def test_extract_and_check_digit():
    out = run("""  packs:
    each: 'HL[HL03=P]'
    descendants: true
    fields:
      sscc: {select: MAN02, extract: '(?:00)?([0-9]{18})', check_digit: gs1}
      raw: MAN02
""", ASN)
    assert out["packs"] == [{"raw": "00000715670002152360"},
                            {"sscc": "007121610006156802", "raw": "00007121610006156802"}]


def test_tracking_mode_records_every_pair_read():
    text = ("format: x12\ndocument: '850'\nfields:\n  lines:\n    each: PO1\n    fields:\n"
            "      ids: {pairs: PO106..PO125, fields: {q: PO106, id: PO107}}\n"
            "      po: /BEG03\n")
    m = load_mapping("t.yaml", text=text, track=True)
    t = tree(PO)
    out = m(t)
    assert out["lines"][0]["po"] == "PO-9"
    po1 = t.loops[2].segments[0]
    assert {(po1.position, e) for e in range(6, 12)} <= m.reads


def test_each_with_a_list_value_gives_one_flat_list():
    body = PO.replace("PO1**2", "N1*ST*Store~N3*1 Main St*Dock 7~N3*Building B~PO1**2")
    out = run("  parties: {each: N1, fields: {lines: {each: N3, value: {list: [N301, N302]}}}}\n",
              body)
    assert out["parties"] == [{"lines": ["1 Main St", "Dock 7", "Building B"]}]


def test_each_with_an_empty_default_keeps_the_empty_list():
    out = run("  acks: {each: ACK, default: [], fields: {s: ACK01}}\n  po: BEG03\n")
    assert out == {"acks": [], "po": "PO-9"}
