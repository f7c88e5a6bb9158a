"""`edigw validate` and `edigw inspect` as an analyst uses them: exit codes, text, JSON, acks."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import REPO, X12_CORPUS

pytestmark = pytest.mark.unit
runner = CliRunner()
SAMPLES = REPO / "samples" / "x12"


def run(*args: str):
    return runner.invoke(app, list(args))


def test_samples_are_accepted_exit_0():
    r = run("validate", str(SAMPLES / "acme-850-4010.edi"))
    assert r.exit_code == 0, r.output
    assert "accepted" in r.output


def test_rejected_file_exits_1_with_positions():
    r = run("validate", str(SAMPLES / "broken" / "acme-850-4010-errors.edi"))
    assert r.exit_code == 1, r.output
    assert "REJECTED" in r.output
    assert "BEG" in r.output and "segment 2" in r.output


def test_not_x12_exits_2_with_the_reason(tmp_path):
    p = tmp_path / "notes.edi"
    p.write_text("hello, this is not EDI")
    r = run("validate", str(p))
    assert r.exit_code == 2
    assert "does not start with an ISA" in r.output


def test_missing_file_exits_2(tmp_path):
    r = run("validate", str(tmp_path / "nope.edi"))
    assert r.exit_code == 2


def test_json_shape_is_documented(tmp_path):
    r = run("validate", "--format", "json", str(SAMPLES / "broken" / "acme-850-4010-errors.edi"),
            str(SAMPLES / "acme-850-4010.edi"))
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["schema"] == "edigw.validation.v1"
    assert doc["summary"]["transaction_sets"] == 2 and doc["summary"]["rejected"] == 1
    ts = doc["files"][0]["interchanges"][0]["groups"][0]["transaction_sets"][0]
    assert ts["accepted"] is False
    for err in ts["errors"]:
        assert {"code", "segment_position", "segment_id", "element_position", "message"} <= set(err)
    beg = [e for e in ts["errors"] if e["segment_id"] == "BEG"]
    assert beg and beg[0]["segment_position"] == 2 and beg[0]["element_position"] == 3


def test_folder_argument_finds_the_files():
    r = run("validate", "--format", "json", str(SAMPLES))
    doc = json.loads(r.stdout)
    assert doc["summary"]["files"] >= 5


def test_ack_dir_gets_one_ack_per_group(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLES / "acme-850-4010.edi", src)
    shutil.copy(SAMPLES / "globex-810-5010.edi", src)
    acks = tmp_path / "acks"
    r = run("validate", str(src), "--ack-dir", str(acks))
    assert r.exit_code == 0, r.output
    texts = [p.read_text() for p in acks.iterdir() if not p.name.startswith(".")]
    assert any("ST*997" in t for t in texts)
    assert any("ST*999" in t for t in texts)
    # ISA14 = 1 in the samples: a TA1 is asked for
    assert any("TA1*" in t for t in texts)


def test_inbound_acks_are_never_acknowledged(tmp_path):
    r = run("validate", str(X12_CORPUS / "997" / "bots-4010-ack-of-850.edi"), "--ack-dir",
            str(tmp_path))
    assert r.exit_code == 0, r.output
    assert not [p for p in tmp_path.iterdir() if "ST*997" in p.read_text()]


def test_inspect_shows_the_envelope():
    r = run("inspect", str(X12_CORPUS / "810" / "staedi-two-groups-3010-4010-810-850.edi"))
    assert r.exit_code == 0
    assert "000000020" in r.output and "003010" in r.output and "810 x2" in r.output


def test_inspect_of_not_x12_exits_2(tmp_path):
    p = tmp_path / "x.edi"
    p.write_text("nothing")
    assert run("inspect", str(p)).exit_code == 2


def test_help_lists_the_commands():
    r = run("--help")
    assert "validate" in r.output and "inspect" in r.output


def test_a_folder_run_says_what_it_skipped_and_why(tmp_path):
    shutil.copy(SAMPLES / "acme-850-4010.edi", tmp_path / "po.edi")
    for name in ("notes.json", "rows.csv", ".po.edi.swp"):
        (tmp_path / name).write_text("x")
    r = run("validate", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "1 file(s), 1 transaction set(s): 1 accepted" in r.stdout
    assert ("skipped 3 file(s) in the folder(s): 2 not named like X12 (.csv x1, .json x1;"
            in r.stderr)
    assert "1 hidden (name starts with a dot)" in r.stderr
    r = run("inspect", str(tmp_path))
    assert r.exit_code == 0 and "ACMERETAIL" in r.stdout and "skipped 3 file(s)" in r.stderr


def test_warnings_are_labelled_as_warnings_and_counted(tmp_path):
    text = (SAMPLES / "acme-850-4010.edi").read_text()
    p = tmp_path / "po-4060.edi"
    p.write_text(text.replace("*00401*", "*00406*").replace("*004010~", "*004060~"))
    r = run("validate", str(p))
    assert r.exit_code == 0, r.output
    assert "[warning] ST line 3: version 004060 has no 850 map of its own" in r.stdout
    assert "[warning TA105-016] ISA line 1" in r.stdout
    assert "1 accepted, 0 rejected, 2 warning(s)" in r.stdout


def test_max_bytes_refuses_each_file_over_it_and_goes_on(tmp_path):
    r = run("validate", "--max-bytes", "600", str(SAMPLES))
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "is 688 bytes, over the limit of 600 (--max-bytes)" in r.stdout
    assert "globex-855-4010.edi: accepted" in r.stdout  # 444 bytes: still validated


LONG_PID = "PID*F****" + "Widget, blue, with a description longer than PID05 allows " * 2 + "~"


def test_partner_leniency_accepts_with_errors_noted(tmp_path):
    src = tmp_path / "acme-long-pid.edi"
    src.write_text((SAMPLES / "acme-850-4010.edi").read_text().replace(
        "PID*F****Widget, blue~", LONG_PID))
    partners = tmp_path / "partners"
    partners.mkdir()
    (partners / "acme.yaml").write_text(
        "id: acme\nname: Acme Retail\nx12:\n  isa:\n    - {qualifier: ZZ, id: ACMERETAIL}\n"
        "validation:\n  accept_with_errors: [AK403-5, AK304-8]\n")
    strict = run("validate", str(src), "--ack-dir", str(tmp_path / "strict"))
    assert strict.exit_code == 1, strict.output
    assert "AK5*R*5" in _the_997(tmp_path / "strict")
    acks = tmp_path / "acks"
    r = run("validate", str(src), "--partner", "acme", "--partners-dir", str(partners),
            "--ack-dir", str(acks))
    assert r.exit_code == 0, r.output
    assert "accepted with errors noted (AK5 E)" in r.output and "[AK403-5]" in r.output
    text = _the_997(acks)
    assert "AK3*PID*15*PID*8~" in text and "AK4*5*352*5*" in text  # the errors still noted
    assert "AK5*E*5~" in text and "AK9*E*1*1*1~" in text


def _the_997(folder) -> str:
    (text,) = [p.read_text() for p in folder.iterdir() if "ST*997" in p.read_text()]
    return text


def test_an_unknown_partner_exits_2(tmp_path):
    r = run("validate", str(SAMPLES / "acme-850-4010.edi"), "--partner", "nobody",
            "--partners-dir", str(tmp_path))
    assert r.exit_code == 2 and "nobody" in r.output
