"""A PO's chain end to end through `edigw run --once` (issue #13): globex's 850, its 855
cutting line 2 from 10 to 8 (beyond its 5 %), its 856, a goods receipt short of the ASN
(6 of 8), its 810 billing the ASN's 8 give exactly one quantity exception and one
three-way-match exception at the ERP file; on SQLite and on PostgreSQL.

The files beside this test (tests/acceptance/chains/) are derived from samples/x12/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures
from tests.pipeline_support import Site, cwd

pytestmark = pytest.mark.acceptance

HERE = Path(__file__).parent / "chains"
PO = "4500012345"


def edigw(site: Site, *args: str, expect: int = 0) -> str:
    with cwd(site.root):
        result = CliRunner().invoke(app, [*args, "--config", str(site.config)])
    assert result.exit_code == expect, (result.output, result.exception)
    return result.output


def exceptions(site: Site) -> list[dict]:
    return [e for e in site.events() if e["type"] == "com.edi-gateway.exception.v1"]


def story(site: Site) -> None:
    for name in ("globex-850-4010.edi", "globex-855-4010-cut.edi", "globex-856-4010.edi"):
        site.drop("globex", HERE / name)
        site.run()
    out = edigw(site, "receipts", "send", str(HERE / "receipt-GR-2026-0412.json"))
    assert f"joined PO {PO} of globex" in out
    site.drop("globex", HERE / "globex-810-5010.edi")
    site.run()


def check(site: Site) -> None:
    found = exceptions(site)
    assert [(e["data"]["kind"], e["data"]["line_number"], e["data"]["expected"],
             e["data"]["actual"]) for e in found] == [
        ("acknowledged_quantity", "2", "10", "8"), ("three_way_quantity", "2", "6", "8")]
    assert all(e["data"]["po_number"] == PO and e["ponumber"] == PO for e in found)
    assert len({e["id"] for e in site.events()}) == len(site.events()) == 4 + 2
    assert site.dead_letters() == []
    shown = json.loads(edigw(site, "chains", "show", PO, "--format", "json"))
    assert [d["type"] for d in shown["documents"]] == [
        "purchase_order", "po_acknowledgment", "ship_notice", "goods_receipt", "invoice"]
    assert [(ln["line_number"], ln["ordered"], ln["acknowledged"], ln["shipped"], ln["invoiced"],
             ln["received"]) for ln in shown["lines"]] == [
        ("1", "24", "24", "24", "24", "24"), ("2", "10", "8", "8", "8", "6")]
    assert [e["kind"] for e in shown["exceptions"]] == ["acknowledged_quantity",
                                                        "three_way_quantity"]
    assert shown["state"] == "matched"
    assert "acknowledged 8 CA against 10 ordered" in edigw(site, "chains", "show", PO)
    # Running again and sending the receipt again change nothing.
    edigw(site, "receipts", "send", str(HERE / "receipt-GR-2026-0412.json"))
    site.run()
    assert len(exceptions(site)) == 2


def test_the_chain_story_on_sqlite(tmp_path: Path) -> None:
    site = Site(tmp_path)
    story(site)
    check(site)
    assert edigw(site, "chains", "list", "--open").strip() == ""
    assert "no chain for PO 'NOPE'" in edigw(site, "chains", "show", "NOPE", expect=2)
    # CLI errors are one line and exit 2.
    for args in (("receipts", "send", str(tmp_path / "none.json")),
                 ("receipts", "send", str(HERE / "globex-810-5010.edi")),
                 ("receipts", "send", str(HERE / "receipt-GR-2026-0412.json"), "--partner", "nobody"),
                 ("chains", "show", PO, "--format", "xml")):
        out = edigw(site, *args, expect=2)
        assert out.startswith("edigw ") and len(out.strip().splitlines()) == 1, out


@pytest.mark.integration
def test_the_chain_story_on_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    site = Site(tmp_path, store_url=pg_url)
    edigw(site, "db", "upgrade")
    story(site)
    check(site)
