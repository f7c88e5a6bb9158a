"""CSV and JSON through the same pipeline as X12: `edigw run --once` on files dropped into
the partners' inbox folders, delivered to var/erp/events.jsonl, or dead-lettered with the
row and column (CSV) or JSON path of what is wrong, fixed and replayed (issue #8)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from canonical import envelope
from gateway.cli import app
from tests.conftest import REPO
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures
from tests.pipeline_support import Site, cwd

pytestmark = pytest.mark.acceptance

EXAMPLES = REPO / "mappings" / "partners"
ASN_CSV = EXAMPLES / "evergreen" / "examples" / "asn-EG-55012.csv"
INVOICE_JSON = EXAMPLES / "brightline" / "examples" / "invoice-BL-20417.json"
ASN_856 = EXAMPLES / "pinnacle" / "examples" / "856-sopi-PS-90311.edi"
TYPE = "com.edi-gateway.{}.v1"


def _site(tmp_path: Path, store_url: str | None = None) -> tuple[Site, Path]:
    """A site with its own copy of the partner files and mappings, for an operator to edit."""
    partners, mappings = tmp_path / "partners", tmp_path / "mappings"
    shutil.copytree(REPO / "conf" / "partners", partners)
    for part in ("base", "partners"):
        shutil.copytree(REPO / "mappings" / part, mappings / part)
    return Site(tmp_path, store_url=store_url,
                partners={"folder": str(partners), "mappings": str(mappings)}), mappings


def _document_id(partner: str, event_type: str, key: str, data: bytes) -> str:
    """A CSV/JSON document's id: its business key and the file's digest."""
    digest = hashlib.sha256(data).hexdigest()[:32]
    return envelope.event_id(partner, event_type, {"document": key, "sha256": digest})


def _dlq(site: Site, *args: str) -> str:
    with cwd(site.root):
        result = CliRunner().invoke(app, ["dlq", *args, "--store", site.store_url])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_csv_ship_notice_and_a_json_invoice_reach_the_erp_like_x12(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    site.drop("evergreen", ASN_CSV)
    site.drop("brightline", INVOICE_JSON)
    site.drop("pinnacle", ASN_856)
    out = site.run()
    assert site.dead_letters() == [], out
    events = {(e["partner"], e["type"]): e for e in site.events()}
    assert sorted(events) == [("brightline", TYPE.format("invoice")),
                              ("evergreen", TYPE.format("ship_notice")),
                              ("pinnacle", TYPE.format("ship_notice"))]
    for e in events.values():
        envelope.from_json(json.dumps(e))  # the envelope and the data against their schemas

    csv_asn = events[("evergreen", TYPE.format("ship_notice"))]
    assert csv_asn["data"] == json.loads(
        ASN_CSV.with_name("asn-EG-55012.expected.json").read_text("utf-8"))
    assert csv_asn["id"] == _document_id("evergreen", "ship_notice", "EG-55012",
                                         ASN_CSV.read_bytes())
    assert csv_asn["subject"] == "EG-55012"
    # The same canonical shape as the ship notice that came as X12: one schema, and the
    # shipment -> order -> pack -> item tree in the same places.
    x12_asn = events[("pinnacle", TYPE.format("ship_notice"))]
    assert csv_asn["dataschema"] == x12_asn["dataschema"]
    for data in (csv_asn["data"], x12_asn["data"]):
        item = data["orders"][0]["packs"][0]["items"][0]
        assert {"shipment_id", "orders"} <= set(data)
        assert {"item_ids", "quantity"} <= set(item) and {"value", "unit"} <= set(item["quantity"])

    invoice = events[("brightline", TYPE.format("invoice"))]
    assert invoice["data"] == json.loads(
        INVOICE_JSON.with_name("invoice-BL-20417.expected.json").read_text("utf-8"))
    assert invoice["id"] == _document_id("brightline", "invoice", "BL-20417",
                                         INVOICE_JSON.read_bytes())
    # No 997 for a CSV or JSON document: acknowledgments answer X12 only.
    assert site.acks("evergreen") == [] and site.acks("brightline") == []
    assert [a.name[:4] for a in site.acks("pinnacle")] == ["997_"]

    # The same files again (renamed): the same message, nothing new.
    site.drop("evergreen", ASN_CSV, name="again.csv")
    site.drop("brightline", INVOICE_JSON, name="again.json")
    site.run()
    assert len(site.events()) == 3


def test_a_bad_csv_row_is_dead_lettered_with_its_row_and_column_fixed_and_replayed(
        tmp_path: Path) -> None:
    site, mappings = _site(tmp_path)
    # Evergreen's new export writes best-before dates US style, which the mapping passes
    # through as if ISO: the schema refuses them.
    us_dates = ASN_CSV.read_bytes().replace(b"2028-05-31", b"05/31/2028").replace(
        b"2029-01-15", b"01/15/2029")
    site.drop("evergreen", us_dates, name="asn-EG-55012.csv")
    site.run()
    assert site.events() == []
    [letter] = site.dead_letters()
    assert letter.stage == "validate", letter.reason
    assert letter.reason.startswith("rejected by validation: ")
    assert "document 1 (shipment_id EG-55012) rows 2-5" in letter.reason
    assert "expiration_date from asn-EG-55012.csv row 2 column 15 (best_before)" in letter.reason
    assert "'05/31/2028' is not a 'date'" in letter.reason
    assert site.acks("evergreen") == []

    # The dry run shows what today's mapping makes of the stored file: still the failure.
    dry = json.loads(_dlq(site, "replay", str(letter.id), "--dry-run", "--format", "json"))
    [report] = dry
    assert report["result"] == "would-replay" and report["dry_run"]["events"] == []
    assert "row 3 column 15 (best_before)" in report["dry_run"]["mapping_failures"][0]

    # The analyst changes the mapping as the export now is; the dry run shows the event.
    mapping = mappings / "partners" / "evergreen" / "ship_notice.yaml"
    text = mapping.read_text("utf-8")
    assert "expiration_date: best_before" in text
    mapping.write_text(text.replace("expiration_date: best_before",
                                    "expiration_date: {column: best_before, date: MM/DD/CCYY}"),
                       encoding="utf-8")
    [report] = json.loads(_dlq(site, "replay", str(letter.id), "--dry-run", "--format", "json"))
    assert report["dry_run"]["mapping_failures"] == []
    [today] = report["dry_run"]["events"]
    assert today["stored"] is False
    assert today["event"]["id"] == _document_id("evergreen", "ship_notice", "EG-55012", us_dates)

    _dlq(site, "replay", str(letter.id), "--reason", "mapping reads US dates now")
    site.run()
    site.run()  # and again: nothing more happens
    [event] = site.events()
    assert event["id"] == today["event"]["id"]
    items = event["data"]["orders"][0]["packs"][0]["items"]
    assert [i.get("expiration_date") for i in items] == ["2028-05-31", "2029-01-15"]
    [letter] = site.dead_letters()
    assert letter.status == "replayed"


def test_a_json_schema_error_is_dead_lettered_with_its_json_path(tmp_path: Path) -> None:
    site, _ = _site(tmp_path)
    body = json.loads(INVOICE_JSON.read_text("utf-8"))
    body["data"]["invoice"]["issued_on"] = "24.11.2026"
    site.drop("brightline", json.dumps(body).encode(), name="invoice.json")
    site.drop("brightline", b'{"data": {"invoice": ', name="cut-short.json")
    site.run()
    assert site.events() == []
    letters = {d.reason.split(":")[0]: d for d in site.dead_letters()}
    schema = letters["rejected by validation"]
    assert schema.stage == "validate"
    assert "invoice_date from JSON path /data/invoice/issued_on" in schema.reason
    assert "'24.11.2026' is not a 'date'" in schema.reason
    unreadable = letters["cut-short.json"]
    assert "cannot be read as JSON" in unreadable.reason and "char 21" in unreadable.reason


@pytest.mark.integration
def test_on_postgresql_with_two_workers_each_document_once(
        tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    site, _ = _site(tmp_path, store_url=pg_url)
    site.drop("evergreen", ASN_CSV)
    site.drop("brightline", INVOICE_JSON)
    bad = ASN_CSV.read_bytes().replace(b",6,EA,", b",six,EA,")
    site.drop("evergreen", bad, name="bad.csv")
    out = site.run("--workers", "2")
    site.drop("evergreen", ASN_CSV, name="again.csv")
    site.run("--workers", "2")
    assert sorted((e["partner"], e["subject"]) for e in site.events()) == [
        ("brightline", "BL-20417"), ("evergreen", "EG-55012")], out
    [letter] = site.dead_letters()
    assert "'six' is not a number at bad.csv row 3 column 12 (qty)" in letter.reason
