"""Issue #13's first done-when piece: `edigw orders send` for the globex example partner
writes a valid 850 to its outbox when the gateway runs; a 005010 partner gets a 005010 one.
Both are checked by our validator and by pyx12 with our maps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli import app
from mappings.x12 import validator
from mappings.x12.pyx12_bridge import run_pyx12
from mappings.x12.reader import X12Reader
from tests.conftest import REPO
from tests.pipeline_support import Site, cwd

pytestmark = pytest.mark.acceptance
SAMPLE = REPO / "samples/orders/globex-po.json"


def _edigw(site: Site, *args: str) -> str:
    with cwd(site.root):
        result = CliRunner().invoke(app, [*args, "--config", str(site.config)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def _accepted_by_both(text: bytes) -> None:
    ours = validator.validate(text)
    assert ours.accepted and [s.set_id for s in ours.sets()] == ["850"], ours.to_dict()
    theirs = run_pyx12(text)
    assert theirs.valid and not theirs.envelope_errors
    assert [s.accepted and not s.errors for s in theirs.sets.values()] == [True]


def test_orders_send_for_globex_writes_a_valid_850_to_its_outbox(tmp_path: Path) -> None:
    site = Site(tmp_path)
    said = _edigw(site, "orders", "send", str(SAMPLE), "--partner", "globex")
    assert "PO 4500012345 to globex: document 1, ISA13 000000001 GS06 1 ST02 0001, queued" in said
    outbox = tmp_path / "var/outbox/globex"
    assert not outbox.exists()  # queued, not sent: the workers send
    site.run()
    [sent] = outbox.iterdir()
    assert sent.name == "850_globex_4500012345_000000001.x12"
    _accepted_by_both(sent.read_bytes())
    with X12Reader(sent.read_bytes()) as reader:
        segs = [s.fields for s in reader]
    assert segs[0][6].strip() == "DISTRIBUTOR" and segs[0][8].strip() == "GLOBEX"
    assert segs[0][12] == "00401" and segs[1][8] == "004010"
    assert ["BEG", "00", "SA", "4500012345", "", "20261118"] in segs


def test_a_005010_partner_gets_a_005010_850(tmp_path: Path) -> None:
    partners = tmp_path / "partners"
    shutil.copytree(REPO / "conf/partners", partners)
    (partners / "northwind.yaml").write_text(yaml.safe_dump({
        "id": "northwind", "name": "Northwind Supply",
        "x12": {"isa": [{"qualifier": "01", "id": "123456789"}], "gs": ["NWSUPPLY"]},
        "outbound": {"isa": {"qualifier": "ZZ", "id": "DISTRIBUTOR"}, "gs": "DISTGS",
                     "usage": "T", "mappings": {"850": "base/outbound/850.5010.yaml"}}}))
    site = Site(tmp_path / "site", partners={"folder": str(partners),
                                             "mappings": str(REPO / "mappings")})
    order = json.loads(SAMPLE.read_text())
    order["po_number"] = "NW-77"
    (site.root / "nw.json").write_text(json.dumps(order))
    _edigw(site, "orders", "send", str(site.root / "nw.json"), "--partner", "northwind")
    site.run()
    [sent] = (site.root / "var/outbox/northwind").iterdir()
    _accepted_by_both(sent.read_bytes())
    with X12Reader(sent.read_bytes()) as reader:
        segs = [s.fields for s in reader]
    assert (segs[0][7], segs[0][8].strip(), segs[0][12], segs[0][15]) == (
        "01", "123456789", "00501", "T")
    assert segs[1][2:4] == ["DISTGS", "NWSUPPLY"] and segs[1][8] == "005010"
    assert segs[2] == ["ST", "850", "0001", "005010"]
    assert ["MTX", "", "Deliver to dock 7 between 8 and 16."] in segs


def test_the_run_summary_counts_the_orders_sent(tmp_path: Path) -> None:
    site = Site(tmp_path)
    _edigw(site, "orders", "send", str(SAMPLE), "--partner", "globex")
    said = site.run()
    assert "orders sent 1," in said
    assert f"acknowledgments and purchase orders: {Path('var/outbox')}/<partner>/" in said
