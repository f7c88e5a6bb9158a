"""Mapping files end to end: schema errors with file:line:key, extends, run-time errors, CSV, JSON."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from canonical import schemas
from canonical.errors import MappingError, MappingFileError, PermanentError
from mappings.language import check, load_mapping
from mappings.sources.x12_tree import split_sets
from mappings.x12.reader import X12Reader
from tests.conftest import CORPUS

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1] / "data" / "mapping"
REPO = Path(__file__).resolve().parents[2]
ENV = ("ISA*00*          *00*          *ZZ*ACME           *ZZ*DIST           *261120*0930*U*"
       "00401*000000001*0*P*>~GS*PO*ACME*DIST*20261120*0930*1*X*004010~")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def segments(body: str):
    return next(split_sets(X12Reader((ENV + body).encode())))


PO = ("ST*850*0001~BEG*00*SA*4500012345**20261120~N1*ST*Store*92*0118~N3*1 Main St~"
      "PO1*1*24*EA*4.25**BP*A-1~PID*F****Blue~PO1*2*10*BX*38.5**BP*A-2~CTT*2~SE*9*0001~"
      "GE*1*1~IEA*1*000000001~")


def test_base_850_maps_the_sample_to_a_valid_purchase_order():
    m = load_mapping(DATA / "850-base.yaml")
    segs = next(split_sets(X12Reader(REPO / "samples" / "x12" / "acme-850-4010.edi")))
    data = m.map_x12(segs)
    assert schemas.validate("purchase_order", data) == []
    assert data["po_number"] == "4500012345" and data["po_date"] == "2026-11-20"
    assert data["parties"][1]["address"]["city"] == "Springfield"
    assert [x["line_number"] for x in data["lines"]] == ["1", "2", "3"]
    assert data["lines"][0]["item_ids"][2] == {"kind": "upc", "qualifier": "UP",
                                               "id": "012345678905"}
    assert data["totals"] == {"line_count": 3, "quantity_total": "39"}


# -- schema and compile errors --------------------------------------------------------


def test_schema_errors_name_file_line_and_key(tmp_path):
    path = write(tmp_path, "bad.yaml", """
        format: x12
        fields:
          po_number: BEG03
          po_date: {select: BEG05, dat: CCYYMMDD}
          lines:
            each: PO1
            fields:
              quantity: {select: PO102, decimal: two}
        """)
    problems = check(path)
    assert problems == [
        f"{path}:4: fields.po_date.dat: unknown key 'dat'",
        f"{path}:8: fields.lines.fields.quantity.decimal: 'two' is not of type 'integer'",
    ]
    with pytest.raises(MappingFileError) as info:
        load_mapping(path)
    assert info.value.line == 4 and str(path) in str(info.value)


@pytest.mark.parametrize(("field", "message"), [
    ("{select: 'N1[N101=ST'}", "'[' without ']'"),
    ("{select: BEG03, table: nope}", "no table 'nope'"),
    ("{select: BEG03, const: X}", "exactly one of"),
    ("{column: po}", "column: is for csv mappings"),
    ("{select: BEG05, date: CCYYMMDD, number: true}", "choose one of date, number"),
    ("{each: PO1}", "each: needs fields:"),
    ("{each: 'PO101', fields: {a: PO101}}", "each: takes one segment or loop"),
])
def test_compile_errors_name_file_line_and_key(tmp_path, field, message):
    path = write(tmp_path, "bad.yaml", f"""
        format: x12
        tables: {{uom: {{EA: EA}}}}
        fields:
          po_number: BEG03
          broken: {field}
        """)
    with pytest.raises(MappingFileError) as info:
        load_mapping(path)
    text = str(info.value)
    assert text.startswith(f"{path}:5: fields.broken")
    assert message in text


def test_yaml_errors_and_duplicate_keys(tmp_path):
    dup = write(tmp_path, "dup.yaml", "format: x12\nfields:\n  a: BEG01\n  a: BEG02\n")
    assert check(dup) == [f"{dup}:4: fields.a: duplicate key"]
    bad = write(tmp_path, "bad.yaml", "format: x12\nfields: [a\n")
    assert check(bad)[0].startswith(f"{bad}:")


def test_codes_stay_strings(tmp_path):
    """YAML 1.1 would read 00 as 0, 002 as 2 and NO as false; codes must stay as written."""
    path = write(tmp_path, "codes.yaml", """
        format: x12
        tables:
          t: {00: original, 002: delivery, NO: no_charge, Y: yes_code}
        fields:
          a: {select: BEG01, table: t}
        """)
    m = load_mapping(path)
    assert m.definition["tables"]["t"] == {"00": "original", "002": "delivery",
                                           "NO": "no_charge", "Y": "yes_code"}
    assert m.map_x12(segments(PO)) == {"a": "original"}


# -- extends ----------------------------------------------------------------------------


def test_extends_overrides_removes_and_merges_tables(tmp_path):
    write(tmp_path, "base.yaml", """
        format: x12
        document: "850"
        tables:
          uom: {EA: EA, CA: CA}
        fields:
          po_number: BEG03
          po_date: {select: BEG05, date: CCYYMMDD}
          lines:
            each: PO1
            fields:
              line_number: PO101
              unit: {select: PO103, table: uom, strict: true}
              description: PID05
        """)
    partner = write(tmp_path, "partner.yaml", """
        extends: base.yaml
        name: acme-850
        tables:
          uom: {BX: EA}
        fields:
          po_number: {select: BEG03, upper: true}
          order_type: BEG02
          lines:
            fields:
              description: null
        """)
    m = load_mapping(partner)
    assert m.name == "acme-850" and m.files == [str(tmp_path / "base.yaml"), str(partner)]
    data = m.map_x12(segments(PO))
    assert data["order_type"] == "SA" and data["po_date"] == "2026-11-20"
    assert data["lines"] == [{"line_number": "1", "unit": "EA"},
                             {"line_number": "2", "unit": "EA"}]  # BX added by the partner


def test_extends_field_with_a_new_source_replaces_the_inherited_one(tmp_path):
    write(tmp_path, "base.yaml", "format: x12\nfields:\n  d: {select: BEG05, date: CCYYMMDD}\n")
    swap = write(tmp_path, "swap.yaml", "extends: base.yaml\nfields:\n  d: {select: BEG03}\n")
    tweak = write(tmp_path, "tweak.yaml", "extends: base.yaml\nfields:\n  d: {default: x}\n")
    assert load_mapping(swap).map_x12(segments(PO)) == {"d": "4500012345"}
    assert load_mapping(tweak).definition["fields"]["d"] == {
        "select": "BEG05", "date": "CCYYMMDD", "default": "x"}


def test_errors_in_a_partner_file_point_at_the_partner_file(tmp_path):
    write(tmp_path, "base.yaml", "format: x12\nfields:\n  a: BEG03\n")
    partner = write(tmp_path, "p.yaml", "extends: base.yaml\nfields:\n  b: {select: BEG03, x: 1}\n")
    assert check(partner) == [f"{partner}:3: fields.b.x: unknown key 'x'"]


def test_extends_cycles_and_missing_bases(tmp_path):
    a = write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    assert "makes a cycle" in check(a)[0]
    c = write(tmp_path, "c.yaml", "extends: none.yaml\n")
    assert check(c)[0].startswith(f"{c}:1: extends: none.yaml not found")


# -- run time ---------------------------------------------------------------------------


def test_runtime_error_names_key_and_segment_position(tmp_path):
    path = write(tmp_path, "m.yaml", """
        format: x12
        tables:
          uom: {EA: EA}
        fields:
          lines:
            each: PO1
            fields:
              unit: {select: PO103, table: uom, strict: true}
        """)
    with pytest.raises(MappingError) as info:
        load_mapping(path).map_x12(segments(PO))
    err = info.value
    assert isinstance(err, PermanentError)
    assert str(err) == (f"{path}:8: fields.lines.fields.unit: code 'BX' is not in table uom "
                        "(EA) at segment 7 (PO1, line 1) element PO103")
    assert err.key == "fields.lines.fields.unit" and "segment 7" in err.where


def test_runtime_error_from_a_qualified_selector(tmp_path):
    path = write(tmp_path, "m.yaml", """
        format: x12
        fields:
          ship_to_number: {select: "N1[N101=ST].N104", integer: true}
        """)
    body = PO.replace("N1*ST*Store*92*0118", "N1*ST*Store*92*A118")
    with pytest.raises(MappingError, match=r"'A118' is not a whole number at segment 3 \(N1"):
        load_mapping(path).map_x12(segments(body))


def test_required_field_missing(tmp_path):
    path = write(tmp_path, "m.yaml", "format: x12\nfields:\n  x: {select: BEG04, required: true}\n")
    with pytest.raises(MappingError, match=r"fields.x: no value at segment 2 \(BEG, line 1\) element BEG04"):
        load_mapping(path).map_x12(segments(PO))


def test_conditions_defaults_concat_first_const_counter(tmp_path):
    path = write(tmp_path, "m.yaml", """
        format: x12
        fields:
          kind: {const: order}
          ship_to: {select: "N1[N101=ST].N102", when: {select: "N1[N101=ST]", exists: true}}
          never: {select: BEG03, when: {select: BEG01, equals: "05"}}
          both: {select: BEG03, when: [{select: BEG01, in: ["00", "01"]},
                                       {select: BEG02, not_equals: DS}]}
          label: {concat: [BEG02, {const: "-"}, BEG03, BEG04]}
          spaced: {concat: ["N1[N101=ST].N102", "N1[N101=ST].N301"], separator: " / "}
          currency: {first: ["CUR[CUR01=BY].CUR02", {const: USD}]}
          release: {select: BEG04, default: none}
          lines:
            each: PO1
            fields:
              n: {counter: true}
              id: PO107
          notes: {each: PID, value: PID05}
        """)
    data = load_mapping(path).map_x12(segments(PO))
    assert data == {
        "kind": "order", "ship_to": "Store", "both": "4500012345",
        "label": "SA-4500012345", "spaced": "Store / 1 Main St", "currency": "USD",
        "release": "none",
        "lines": [{"id": "A-1", "n": "1"}, {"id": "A-2", "n": "2"}],
    }


def test_generated_code_is_visible_for_debugging():
    m = load_mapping(DATA / "850-base.yaml")
    assert "out['po_number']" in m.run.__source__


# -- CSV and JSON -----------------------------------------------------------------------


def test_csv_header_and_detail_files_from_the_corpus():
    csv_dir = CORPUS / "csv"
    if not (csv_dir / "invoice-header-alto.csv").is_file():
        pytest.skip(f"the CSV corpus is not at {csv_dir}; set EDIGW_CORPUS")
    m = load_mapping(DATA / "alto-invoice-csv.yaml")
    with open(csv_dir / "invoice-header-alto.csv", newline="") as h, \
            open(csv_dir / "invoice-detail-alto.csv", newline="") as d:
        header, detail = h.read(), d.read()
    docs = m.map_csv(header, detail)
    assert [d["invoice_number"] for d in docs] == ["102561333", "102561334", "102561336",
                                                   "102561343"]
    last = docs[3]
    assert last["invoice_date"] == "2009-09-14" and last["po_number"] == "P317510"
    assert [(x["line_number"], x["quantity"]["value"], x["item_ids"][0]["id"])
            for x in last["lines"]] == [("10", "5000.000", "144MT"), ("20", "1.000", "018679")]
    assert all(schemas.validate("invoice", d) == [] for d in docs)


def test_csv_with_a_header_row_grouped_by_key(tmp_path):
    path = write(tmp_path, "m.yaml", """
        format: csv
        csv: {group_by: order}
        fields:
          po_number: order
          lines:
            each: rows
            fields:
              sku: {column: sku, trim: true}
              qty: {column: qty, integer: true}
        """)
    text = "order,sku,qty\nA1, X ,2\nB2,Y,1\nA1,Z,3\n"
    docs = load_mapping(path).map_csv(text)
    assert docs == [{"po_number": "A1", "lines": [{"sku": "X", "qty": 2}, {"sku": "Z", "qty": 3}]},
                    {"po_number": "B2", "lines": [{"sku": "Y", "qty": 1}]}]
    with pytest.raises(MappingError, match=r"'x' is not a whole number at row 3 column 3 \(qty\)"):
        load_mapping(path).map_csv("order,sku,qty\nA1,X,2\nA1,Y,x\n")


def test_json_paths_each_and_errors():
    m = load_mapping(DATA / "webhook-order-json.yaml")
    body = {"order": {"number": "A1", "date": "20240301", "currency": "eur",
                      "notes": [{"text": "hi"}, {"text": "there"}],
                      "lines": [{"qty": 2, "unit": "each", "item": {"name": " Bowl "}},
                                {"qty": "3.50", "unit": "case"}]}}
    data = m.map_json(body)
    assert data == {"po_number": "A1", "po_date": "2024-03-01", "currency": "EUR",
                    "notes": ["hi", "there"],
                    "lines": [{"quantity": {"value": "2", "unit": "EA"}, "description": "Bowl",
                               "line_number": "1"},
                              {"quantity": {"value": "3.50", "unit": "CA"}, "line_number": "2"}]}
    assert schemas.validate("purchase_order", data) == []
    body["order"]["lines"][1]["unit"] = "pallet"
    with pytest.raises(MappingError, match="at JSON path /order/lines/1/unit"):
        m.map_json(body)
