"""`edigw translate` and `edigw mapping check|test|new|coverage` as an analyst uses them.

Each test works in its own folder laid out like the repository (mappings/base,
mappings/partners, conf/partners), with the trimmed test 850 as the base mapping, so the
tests do not move when the real base mappings do.
"""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import REPO

pytestmark = pytest.mark.unit
runner = CliRunner()
DATA = REPO / "tests" / "data" / "mapping"
SAMPLE = REPO / "samples" / "x12" / "acme-850-4010.edi"
BROKEN = REPO / "samples" / "x12" / "broken" / "acme-850-4010-errors.edi"
ACME = """id: acme
name: Acme Retail
x12:
  isa:
    - {qualifier: ZZ, id: ACMERETAIL}
mappings:
  "850": partners/acme/850.yaml
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    base = tmp_path / "mappings" / "base"
    base.mkdir(parents=True)
    # The test base calls VN a "vendor", a role the canonical schema does not have.
    text = (DATA / "850-base.yaml").read_text().replace("VN: vendor}", "VN: supplier}")
    (base / "850.4010.yaml").write_text(text)
    (tmp_path / "conf" / "partners").mkdir(parents=True)
    shutil.copy(SAMPLE, tmp_path / "acme-850.edi")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    return runner.invoke(app, list(args))


def add_acme(work, mapping: str = "extends: ../../base/850.4010.yaml\nname: acme-850\n"):
    (work / "mappings" / "partners" / "acme").mkdir(parents=True, exist_ok=True)
    (work / "mappings" / "partners" / "acme" / "850.yaml").write_text(mapping)
    (work / "conf" / "partners" / "acme.yaml").write_text(ACME)


# -- translate ------------------------------------------------------------------------


def test_translate_unknown_sender_uses_the_base(work):
    r = run("translate", "acme-850.edi")
    assert r.exit_code == 0, r.output
    (event,) = json.loads(r.stdout)
    assert event["type"] == "com.edi-gateway.purchase_order.v1"
    assert event["partner"] == "ACMERETAIL"  # mappings.translate names it by ISA06
    assert event["x12control"] == "000001001.1001.1001001"
    assert event["data"]["po_number"] == "4500012345"


def test_translate_finds_the_partner_by_its_isa_sender(work):
    add_acme(work, "extends: ../../base/850.4010.yaml\nfields:\n  order_type: {const: XX}\n")
    r = run("translate", "acme-850.edi", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["partner"] == "acme" and event["source"] == "edigw://partners/acme"
    assert event["data"]["order_type"] == "XX"  # the partner's mapping, not the base


def test_translate_ids_are_stable(work):
    first = json.loads(run("translate", "acme-850.edi").stdout)[0]["id"]
    assert json.loads(run("translate", "acme-850.edi").stdout)[0]["id"] == first


def test_translate_rejected_by_validation_exits_1_saying_where(work):
    r = run("translate", str(BROKEN))
    assert r.exit_code == 1
    assert "validation failed" in r.stderr
    assert "ST at line 3" in r.stderr and "BEG (line 4)" in r.stderr


def test_translate_mapping_failure_exits_1(work):
    add_acme(work, "extends: ../../base/850.4010.yaml\ntables:\n  uom: {EA: null}\n")
    r = run("translate", "acme-850.edi")
    assert r.exit_code == 1
    assert "mapping failed" in r.stderr
    assert "code 'EA' is not in table uom" in r.stderr
    assert "PO1" in r.stderr  # where in the input


def test_translate_schema_failure_exits_1(work):
    add_acme(work, "extends: ../../base/850.4010.yaml\nfields:\n  lines: null\n")
    r = run("translate", "acme-850.edi")
    assert r.exit_code == 1
    assert "schema failed" in r.stderr and "lines: is required" in r.stderr


def test_translate_unreadable_exits_2(work):
    (work / "notes.edi").write_text("hello, not EDI")
    r = run("translate", "notes.edi")
    assert r.exit_code == 2 and "cannot be read as X12" in r.stderr
    r = run("translate", "missing.edi")
    assert r.exit_code == 2 and "no such file" in r.stderr


def test_translate_json_needs_a_partner(work):
    (work / "body.json").write_text('{"a": 1}')
    r = run("translate", "body.json")
    assert r.exit_code == 2 and "--partner" in r.stderr


def test_translate_json_and_csv_with_their_partners():
    # The shipped partners, from the repository root.
    for partner, path, kind in [
        ("brightline", "mappings/partners/brightline/examples/invoice-BL-20417.json", "invoice"),
        ("evergreen", "mappings/partners/evergreen/examples/asn-EG-55012.csv", "ship_notice"),
    ]:
        r = runner.invoke(app, ["translate", str(REPO / path), "--partner", partner,
                                "--mappings-dir", str(REPO / "mappings"),
                                "--partners-dir", str(REPO / "conf" / "partners")])
        assert r.exit_code == 0, r.output
        (event,) = json.loads(r.stdout)
        assert event["type"] == f"com.edi-gateway.{kind}.v1"
        assert event["partner"] == partner


def test_translate_bad_partner_config_exits_2(work):
    (work / "conf" / "partners" / "acme.yaml").write_text(ACME.replace("name:", "nmae:"))
    r = run("translate", "acme-850.edi")
    assert r.exit_code == 2 and "conf/partners/acme.yaml:2: nmae: unknown key" in r.stderr


# -- mapping check ---------------------------------------------------------------------


def test_check_passes_a_good_mapping(work):
    add_acme(work)
    r = run("mapping", "check", "mappings/partners/acme/850.yaml")
    assert r.exit_code == 0, r.output
    assert "mappings/partners/acme/850.yaml: ok" in r.stdout


@pytest.mark.parametrize(("body", "says"), [
    ("fields:\n  x: BEG99\n", "850.yaml:3: fields.x: 'BEG99': BEG99: BEG has 12 elements"),
    ("fields:\n  x: ZZZ01\n", "segment ZZZ is not in the 850 004010 specification"),
    ("fields:\n  x: {each: XYZ, value: XYZ01}\n", "fields.x.each: 'XYZ': segment XYZ"),
    ("fields:\n  x: PO103-2\n", "is a simple element, not a composite"),
    ("fields:\n  x: {const: a, when: {select: N199, exists: true}}\n", "fields.x.when"),
    ("tables:\n  party_role: {ZZ: boss}\n",
     "tables.party_role.ZZ: 'boss' is not one of the purchase_order schema's parties[].role"),
    ("tables:\n  uom: {PC: PIECE}\n", "'PIECE' is not one of our units of measure"),
    ("fields:\n  po_number: {selct: BEG03}\n", "unknown key 'selct'"),
])
def test_check_reports_file_line_and_key(work, body, says):
    add_acme(work, "extends: ../../base/850.4010.yaml\n" + body)
    r = run("mapping", "check", "mappings/partners/acme/850.yaml")
    assert r.exit_code == 1, r.output
    assert says in r.stdout
    assert "mappings/partners/acme/850.yaml:" in r.stdout


def test_check_reports_a_missing_extends_target(work):
    add_acme(work, "extends: ../../base/999.4010.yaml\n")
    r = run("mapping", "check", "mappings/partners/acme/850.yaml")
    assert r.exit_code == 1
    assert "mappings/partners/acme/850.yaml:1: extends: ../../base/999.4010.yaml not found" in r.stdout


def test_check_reports_missing_example_files(work):
    add_acme(work, "extends: ../../base/850.4010.yaml\nexamples:\n"
                   "  - {input: in.edi, expected: out.json}\n")
    r = run("mapping", "check", "mappings/partners/acme/850.yaml")
    assert r.exit_code == 1 and "850.yaml:3: examples: input file" in r.stdout


# -- mapping new, test, coverage ---------------------------------------------------------


def test_new_writes_a_starter_that_tests_green(work):
    r = run("mapping", "new", "--partner", "acme", "--from", "acme-850.edi")
    assert r.exit_code == 0, r.output
    text = (work / "mappings" / "partners" / "acme" / "850.yaml").read_text()
    assert "extends: ../../base/850.4010.yaml" in text
    assert "input: examples/acme-850.edi" in text
    assert "#   PER02" in text and "'Jane Buyer'" in text  # the base reads no PER
    assert "N104 (N101=ST)" in text  # repeated segments told apart by their qualifier
    assert (work / "mappings" / "partners" / "acme" / "examples" / "acme-850.edi").is_file()
    r = run("mapping", "test", "acme")
    assert r.exit_code == 0, r.output
    assert "1 passed, 0 failed" in r.stdout
    r = run("mapping", "new", "--partner", "acme", "--from", "acme-850.edi")
    assert r.exit_code == 2 and "exists; use --force" in r.stderr


def test_new_needs_a_base_for_the_set(work):
    (work / "mappings" / "base" / "850.4010.yaml").unlink()
    r = run("mapping", "new", "--partner", "acme", "--from", "acme-850.edi")
    assert r.exit_code == 2 and "no base mapping for 850 004010" in r.stderr


def test_new_refuses_a_rejected_sample_and_leaves_nothing_behind(work):
    shutil.copy(BROKEN, work / "broken.edi")
    r = run("mapping", "new", "--partner", "zenith", "--from", "broken.edi")
    assert r.exit_code == 2 and "validation rejects it" in r.stderr and "[AK403-1]" in r.stderr
    assert "Traceback" not in r.output
    assert not (work / "mappings" / "partners" / "zenith").exists()


@pytest.mark.parametrize("partner", ["../../../x", "Zenith", "a/b", ""])
def test_new_refuses_a_partner_id_that_is_not_one(work, partner):
    r = run("mapping", "new", "--partner", partner, "--from", "acme-850.edi")
    assert r.exit_code == 2 and "partner id" in r.stderr, r.output
    assert not (work / "x").exists() and not (work.parent / "x").exists()
    assert not (work / "mappings" / "partners").exists()


def test_commands_outside_the_project_folder_say_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(SAMPLE, tmp_path / "acme-850.edi")
    r = run("translate", "acme-850.edi")
    assert r.exit_code == 2 and "mappings does not exist" in r.stderr
    assert "run edigw from the project folder" in r.stderr
    r = run("partners", "list")
    assert r.exit_code == 2 and "conf/partners does not exist" in r.stderr
    r = runner.invoke(app, ["dlq", "list"], env={"EDIGW_STORE_URL": ""})
    assert r.exit_code == 2 and "no store at var/edigw.db" in r.stderr
    assert not (tmp_path / "var").exists()  # no empty database left behind


def test_test_shows_a_diff_and_exits_1_then_update_accepts(work):
    run("mapping", "new", "--partner", "acme", "--from", "acme-850.edi")
    m = work / "mappings" / "partners" / "acme" / "850.yaml"
    m.write_text(m.read_text() + "fields:\n  order_type: {const: RUSH}\n")
    r = run("mapping", "test", "acme")
    assert r.exit_code == 1
    assert "FAIL mappings/partners/acme/850.yaml" in r.stdout
    assert '-  "order_type": "SA",' in r.stdout and '+  "order_type": "RUSH",' in r.stdout
    assert "0 passed, 1 failed" in r.stdout
    r = run("mapping", "test", "acme", "--update")
    assert r.exit_code == 0 and "wrote " in r.stdout
    assert run("mapping", "test").exit_code == 0  # base (no examples) and every partner


def test_test_unknown_partner_exits_2(work):
    r = run("mapping", "test", "nobody")
    assert r.exit_code == 2 and "no mappings for 'nobody'" in r.stderr


def test_coverage_lists_what_the_mapping_drops(work):
    add_acme(work)
    r = run("mapping", "coverage", "acme-850.edi", "--partner", "acme")
    assert r.exit_code == 0, r.output
    assert "dropped PER02 = 'Jane Buyer' at segment 5 (PER, line 7)" in r.stdout
    assert "dropped BEG03" not in r.stdout
    r = run("mapping", "coverage", "acme-850.edi", "--partner", "acme", "--fail-on-drop")
    assert r.exit_code == 1


def test_coverage_shrinks_when_the_mapping_reads_more(work):
    add_acme(work, "extends: ../../base/850.4010.yaml\nfields:\n  extensions:\n    fields:\n"
                   "      buyer_contact: PER02\n")
    r = run("mapping", "coverage", "acme-850.edi", "--partner", "acme")
    assert "PER02" not in r.stdout and "PER04" in r.stdout
