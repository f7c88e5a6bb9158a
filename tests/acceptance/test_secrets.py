"""Credentials in an ERP URL never reach a log, the store or the CLI; var/ is private (issue #11, item 4).

The ERP simulator rejects the event (400), so the URL travels through every place an
endpoint or an error goes: httpx's request log, the worker's and the delivery's logs,
the delivery's last error, the dead letter's endpoint, reason and cause chain, the run
summary and `edigw dlq list|show`. The password is a canary searched for in all of them.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from channels.erp_sim import running_simulator
from gateway.cli import app
from tests.pipeline_support import SAMPLES, Site

pytestmark = pytest.mark.acceptance

CANARY = "Canary-Pw-7d41e0c9"


def test_an_erp_password_is_in_no_log_store_or_cli_output(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_simulator() as sim:
        url = sim.events_url.replace("http://", f"http://erp-user:{CANARY}@", 1)
        site = Site(tmp_path, destinations={"erp": {"type": "http", "config": {"url": url}}})
        site.drop("acme", SAMPLES / "acme-850-4010.edi")
        sim.set_fault("400", count=1)
        out = site.run("--workers", "1")
        assert sim.stats()["requests"] == 1  # the URL was used
    [letter] = site.dead_letters()
    assert letter.stage == "deliver"
    assert letter.endpoint is not None and "http://***@127.0.0.1" in letter.endpoint
    assert "HTTP 400" in letter.reason
    assert "http://***@127.0.0.1" in caplog.text  # httpx's request line, redacted
    cli = CliRunner()
    env = {"EDIGW_STORE_URL": site.store_url, "COLUMNS": "300"}
    shown = [out]
    for args in (["dlq", "list"], ["dlq", "list", "-f", "json"],
                 ["dlq", "show", str(letter.id)], ["dlq", "show", str(letter.id), "-f", "json"]):
        result = cli.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        shown.append(result.output)
    assert "***@" in shown[2]  # the endpoint is shown, redacted
    for text in (*shown, caplog.text):
        assert CANARY not in text
    var = tmp_path / "var"
    for f in var.glob("edigw.db*"):
        assert CANARY.encode() not in f.read_bytes(), f


def test_var_the_store_and_archived_files_are_private(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", SAMPLES / "acme-850-4010.edi").chmod(0o644)
    (tmp_path / "var" / "inbox").chmod(0o755)  # made by the test, not by the gateway
    site.run("--workers", "1")

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    store = tmp_path / "var" / "edigw.db"
    files = [store, *(p for p in store.parent.glob("edigw.db-*"))]
    assert [mode(f) for f in files] == [0o600] * len(files)
    done = tmp_path / "var" / "inbox" / "acme" / ".done"
    assert (mode(done), mode(done / "acme-850-4010.edi")) == (0o700, 0o600)
    assert mode(tmp_path / "var" / "erp") == 0o700


def test_var_is_created_private(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.run("--workers", "1")
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var" / "inbox" / "acme").stat().st_mode) == 0o700
