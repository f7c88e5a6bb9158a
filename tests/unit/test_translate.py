"""mappings.translate: one result per set, the right mapping, ids from control numbers,
errors that name the mapping key and the source position."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from canonical import envelope
from canonical.errors import MappingError, SchemaError, X12ReadError
from mappings.translate import MAPPING_DIR, SetRejected, Translated, translate

pytestmark = pytest.mark.unit

EXAMPLE = MAPPING_DIR / "base" / "examples" / "850.4010-full.edi"
ISA = ("ISA*00*          *00*          *ZZ*ACME           *ZZ*DIST           *240301*0930*U*"
       "00401*000000777*0*P*>~")


def run(source: bytes | Path, **kw) -> list[Translated]:
    return list(translate(source, **kw))


def interchange(*sets: str, gs: str = "GS*PO*ACME*DIST*20240301*0930*7*X*004010~") -> bytes:
    body = "".join(sets)
    return (ISA + gs + body + f"GE*{len(sets)}*7~IEA*1*000000777~").encode()


def po(st02: str, beg: str = "BEG*00*SA*PO-1**20240301~", lines: str = "PO1*1*2*EA*3~") -> str:
    segs = [f"ST*850*{st02}", beg.rstrip("~"), *lines.rstrip("~").split("~")]
    return "~".join([*segs, f"SE*{len(segs) + 1}*{st02}"]) + "~"


def test_one_event_per_set_with_the_id_from_control_numbers():
    when = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
    results = run(interchange(po("0001"), po("0002")), partner="acme", time=when)
    assert [r.status for r in results] == ["translated", "translated"]
    first = results[0].event
    assert first.id == envelope.event_id("acme", "purchase_order",
                                         envelope.x12_keys("000000777.7.0001"))
    assert first.subject == "PO-1" and first.extensions["ponumber"] == "PO-1"
    assert first.extensions["x12control"] == "000000777.7.0001"
    assert first.time == "2024-03-12T09:30:00.000Z"
    assert results[1].event.id != first.id
    assert results[0].mapping.endswith("base/850.4010.yaml")


def test_a_path_works_and_the_partner_defaults_to_the_isa_sender():
    (result,) = run(EXAMPLE)
    assert result.ok and result.event.partner == "ACMERETAIL"


def test_a_rejected_set_comes_back_with_its_reason():
    bad = po("0002", lines="PO1*1*2*EA*3~").replace("SE*4*0002", "SE*9*0002")
    results = run(interchange(po("0001"), bad))
    assert [r.status for r in results] == ["translated", "rejected"]
    assert isinstance(results[1].error, SetRejected)
    assert "SE01" in results[1].reason and results[1].event is None


def test_versions_without_a_map_use_the_nearest_base_mapping():
    gs = "GS*PO*ACME*DIST*20240301*0930*7*X*004030~"
    (result,) = run(interchange(po("0001"), gs=gs))
    assert result.ok and result.mapping.endswith("base/850.4010.yaml")
    gs = "GS*PO*ACME*DIST*20240301*0930*7*X*005010~"
    (result,) = run(interchange(po("0001"), gs=gs))
    assert result.ok and result.mapping.endswith("base/850.5010.yaml")


def test_a_partner_mapping_is_used_for_its_set(tmp_path: Path):
    own = tmp_path / "850.yaml"
    own.write_text(f"extends: {MAPPING_DIR / 'base' / '850.4010.yaml'}\n"
                   "fields:\n  po_number: {select: BEG03, required: true, upper: true}\n")
    beg = "BEG*00*SA*po-lower**20240301~"
    (result,) = run(interchange(po("0001", beg=beg)), mappings={"850": own})
    assert result.ok and result.event.data["po_number"] == "PO-LOWER"
    assert result.mapping == str(own)


def test_a_mapping_error_names_the_key_and_the_position(tmp_path: Path):
    own = tmp_path / "850.yaml"
    own.write_text(f"extends: {MAPPING_DIR / 'base' / '850.4010.yaml'}\n"
                   "fields:\n  po_date: {select: BEG05, date: YYMMDD}\n")
    (result,) = run(interchange(po("0001")), mappings={"850.4010": own})
    assert result.status == "failed" and isinstance(result.error, MappingError)
    assert "fields.po_date" in result.reason and "segment 2 (BEG, line 1)" in result.reason


def test_a_schema_error_names_the_mapping_keys_and_the_set(tmp_path: Path):
    own = tmp_path / "850.yaml"
    own.write_text(f"extends: {MAPPING_DIR / 'base' / '850.4010.yaml'}\n"
                   "fields:\n  currency: {const: dollars}\n")
    (result,) = run(interchange(po("0001")), mappings={"850": own})
    assert isinstance(result.error, SchemaError)
    assert "fields.currency" in result.reason and "000000777.7.0001" in result.reason


def test_acknowledgments_are_skipped_and_unreadable_input_raises():
    ack = "ST*997*0001~AK1*PO*7~AK9*A*1*1*1~SE*4*0001~"
    (result,) = run(interchange(ack, gs="GS*FA*ACME*DIST*20240301*0930*7*X*004010~"))
    assert result.status == "skipped" and result.event is None
    with pytest.raises(X12ReadError):
        run(b"not x12 at all")


def test_a_partners_agreed_errors_do_not_stop_translation():
    # PID05 past its 80 characters: rejected, unless the partner's leniency lists AK403-5
    # (the map stage validates again with it when the validate stage's result is gone).
    data = interchange(po("0001", lines="PO1*1*2*EA*3~PID*F****" + "x" * 90 + "~"))
    assert [r.status for r in run(data)] == ["rejected"]
    assert [r.status for r in run(data, accept_with_errors=["AK403-5"])] == [
        "translated"]


# -- CSV and JSON -----------------------------------------------------------------------

PARTNERS = MAPPING_DIR / "partners"
ASN = PARTNERS / "evergreen" / "examples" / "asn-EG-55012.csv"
INVOICE = PARTNERS / "brightline" / "examples" / "invoice-BL-20417.json"
EVERGREEN = {"ship_notice": "partners/evergreen/ship_notice.yaml"}
BRIGHTLINE = {"invoice": "partners/brightline/invoice.yaml"}


@pytest.mark.parametrize(("head", "sends", "fmt"), [
    (b"\xef\xbb\xbf\r\n ISA*00*", {"csv"}, "x12"),
    (b'{"a": 1}', set(), "json"),
    (b'{"a": 1}', {"csv"}, "csv"),  # a CSV whose first cell starts with a brace
    (b'[{"a": 1}]', {"csv", "json"}, "json"),
    (b"po,qty\n", {"csv", "x12"}, "csv"),
    (b"hello", {"x12"}, "x12"),
    (b"hello", set(), "x12"),
    (b"hello", {"json"}, "json"),
])
def test_the_format_is_detected_by_content_then_by_what_the_partner_sends(head, sends, fmt):
    from mappings.translate import detect

    assert detect(head, sends) == fmt


def test_a_csv_and_a_json_document_each_become_an_event_keyed_by_key_and_file():
    import hashlib

    [asn] = run(ASN, partner="evergreen", mappings=EVERGREEN)
    [invoice] = run(INVOICE.read_bytes(), partner="brightline", mappings=BRIGHTLINE)
    assert asn.ok and asn.format == "csv" and asn.key == "EG-55012" and asn.line == 2
    assert asn.event.id == envelope.event_id("evergreen", "ship_notice", {
        "document": "EG-55012", "sha256": hashlib.sha256(ASN.read_bytes()).hexdigest()[:32]})
    assert invoice.ok and invoice.format == "json" and invoice.event.subject == "BL-20417"
    assert run(ASN, partner="evergreen", mappings=EVERGREEN)[0].event.id == asn.event.id


def test_a_json_mapping_error_names_the_json_path():
    text = INVOICE.read_text().replace('"quantity": 2,', '"quantity": "two",')
    [result] = run(text.encode(), partner="brightline", mappings=BRIGHTLINE, name="inv.json")
    assert result.status == "failed" and isinstance(result.error, MappingError)
    assert "JSON path /data/invoice/lines/1/quantity" in result.reason
    assert result.where == "inv.json: document 1 (invoice_number BL-20417)"


def test_a_json_schema_error_names_the_source_json_path_of_a_repeated_field():
    text = INVOICE.read_text().replace('"po_line": "2"', '"po_line": 2')
    [result] = run(text.encode(), partner="brightline", mappings=BRIGHTLINE)
    assert isinstance(result.error, SchemaError), result.reason
    assert ("at fields.lines.fields.po_line_number (lines[1].po_line_number from JSON path "
            "/data/invoice/lines/1/po_line): 1 violation: lines[1].po_line_number: 2 is not "
            "of type 'string'") in result.reason


def test_a_csv_document_verdict_rejects_it_and_a_stream_is_read_once():
    import io

    from mappings.verdicts import Verdict

    [result] = run(io.BufferedReader(io.BytesIO(ASN.read_bytes())), partner="evergreen",
                   mappings=EVERGREEN, verdicts=[Verdict(1, False, "", "row 2: bad")])
    assert result.status == "rejected" and "row 2: bad" in result.reason


def test_a_file_name_picks_among_several_mappings_of_its_format(tmp_path: Path):
    from canonical.errors import ConfigError

    both = {"ship_notice": EVERGREEN["ship_notice"],
            "asn": str(PARTNERS / "evergreen" / "ship_notice.yaml")}
    with pytest.raises(ConfigError, match=r"more than one csv mapping \(asn, ship_notice\)"):
        run(ASN.read_bytes(), partner="evergreen", mappings=both, name="upload.csv")
    [result] = run(ASN.read_bytes(), partner="evergreen", mappings=both, name="ASN-0001.csv")
    assert result.ok and result.mapping.endswith("ship_notice.yaml")
    with pytest.raises(ConfigError, match="no json mapping"):
        run(b"{}", fmt="json", partner="evergreen", mappings=EVERGREEN)
