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
