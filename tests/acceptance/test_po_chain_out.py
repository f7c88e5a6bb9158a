"""Our purchase order's chain end to end through `edigw run --once` (issue #13's acceptance
and done-when): `edigw orders send` for globex writes the 850 to var/outbox/globex/; globex's
997 accepts it, its 855 cuts line 2 from 10 to 8 (beyond its 5 %), its 856 ships 8, the
ERP's goods receipt has 6 of them, its 810 bills the ASN's 8: exactly one quantity
exception for the 855 and one three-way-match exception for the invoice reach the ERP.
Then the deadlines: no 997 within globex's 24 hours is one ack-missing exception, by the
workers' injected clock and across restarts; a 997 rejecting the PO is one rejection.

Each runs on SQLite (ERP file) and PostgreSQL (ERP over HTTP, the simulator, and the file),
with the partner's files arriving one at a time (each validated and mapped alone) or
together (one fused batch). The 855, 856, 810 and receipt in samples/orders/ (the README's
walk-through) answer samples/orders/globex-po.json; the 997 is made from the 850 the
gateway wrote.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from channels.erp_sim import SimulatorHandle, running_simulator
from gateway.cli import app
from gateway.pipeline import fused
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from mappings.x12 import validator
from mappings.x12.reader import X12Reader
from tests.conftest import REPO
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures
from tests.pipeline_support import Site, cwd

pytestmark = pytest.mark.acceptance

HERE = REPO / "samples/orders"  # the order and what globex and the ERP send back for it
SAMPLE = HERE / "globex-po.json"
PO = "4500012345"
EXCEPTION = "com.edi-gateway.exception.v1"


class Gateway:
    """A site, its ERP (a file; on PostgreSQL the HTTP simulator as well) and the sizes of
    the fused batches written."""

    def __init__(self, site: Site, sim: SimulatorHandle | None, batches: list[int]) -> None:
        self.site, self.sim, self.batches = site, sim, batches

    def edigw(self, *args: str, expect: int = 0) -> str:
        with cwd(self.site.root):
            result = CliRunner().invoke(app, [*args, "--config", str(self.site.config)])
        assert result.exit_code == expect, (result.output, result.exception)
        return result.output

    def exceptions(self) -> list[dict[str, Any]]:
        """The exception events at the ERP, each checked to have reached it once."""
        events = self.site.events()
        assert len({e["id"] for e in events}) == len(events), "an event reached the ERP twice"
        if self.sim is not None:  # the HTTP ERP applied exactly what the file got, once each
            effects = self.sim.effects()
            assert sorted(e["event_id"] for e in effects) == sorted(e["id"] for e in events)
        return [e for e in events if e["type"] == EXCEPTION]

    def show(self) -> dict[str, Any]:
        return json.loads(self.edigw("chains", "show", PO, "--partner", "globex",
                                     "--format", "json"))

    def sent_850(self) -> bytes:
        [sent] = (self.site.root / "var/outbox/globex").glob("850_*.x12")
        return sent.read_bytes()

    def workers_at(self, now: datetime) -> None:
        """A worker started afresh (its own context and store connections), whose clock says
        now, run until idle: what a restarted `edigw run` finds due by then."""
        with cwd(self.site.root):
            ctx = Context.load(str(self.site.config))
            try:
                worker = Worker(ctx)
                worker.now = lambda: now
                worker.run(until_idle=True)
            finally:
                ctx.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    batches: list[int] = []
    write = fused.write

    def counted(ctx: Any, session: Any, worker_id: str, batch: Any, numbers: Any) -> Any:
        out = write(ctx, session, worker_id, batch, numbers)
        batches.append(len(batch))  # written (a failed write falls back to one by one)
        return out

    monkeypatch.setattr(fused, "write", counted)
    erp_file = str(tmp_path / "var/erp/events.jsonl")
    destinations: dict[str, Any] = {"erp": {"type": "file", "config": {"path": erp_file}}}
    with ExitStack() as stack:
        if request.param == "sqlite":
            sim, store_url = None, None
        else:
            sim = stack.enter_context(running_simulator())
            store_url = request.getfixturevalue("pg_url")
            destinations["erp-http"] = {"type": "http", "config": {"url": sim.events_url}}
        site = Site(tmp_path, store_url=store_url, destinations=destinations,
                    routes=[{"name": "all", "match": {"type": "*", "partner": "*"},
                             "to": sorted(destinations)}])
        yield Gateway(site, sim, batches)


def functional_ack(sent: bytes, code: str = "A") -> bytes:
    """globex's 997 for the 850 we sent: its group and set named by the 850's GS06 and ST02;
    AK5 `code` (R with the reasons a translator gives for a bad unit of measure)."""
    with X12Reader(sent) as reader:
        segs = {s.id: s.fields for s in reader if s.id in ("GS", "ST")}
    gs06, st02 = segs["GS"][6], segs["ST"][2]
    body = [f"AK1*PO*{gs06}", f"AK2*850*{st02}"]
    if code == "R":
        body += ["AK3*PO1*20*PO1*8", "AK4*3*355*7*CS"]
    body += [f"AK5*{code}" + ("*5" if code == "R" else ""),
             f"AK9*{code}*1*1*{1 if code == 'A' else 0}"]
    return "\n".join([
        "ISA*00*          *00*          *ZZ*GLOBEX         *ZZ*DISTRIBUTOR    *261118*1000*U*"
        "00401*000007001*0*P*>~",
        "GS*FA*GLOBEX*DISTRIBUTOR*20261118*1000*7001*X*004010~",
        "ST*997*0001~", *(s + "~" for s in body), f"SE*{len(body) + 2}*0001~",
        "GE*1*7001~", "IEA*1*000007001~", ""]).encode()


def send_the_order(gw: Gateway) -> bytes:
    """`edigw orders send` then `edigw run --once`: the 850 in globex's outbox, valid."""
    said = gw.edigw("orders", "send", str(SAMPLE), "--partner", "globex")
    assert f"PO {PO} to globex: document 1" in said
    gw.site.run()
    sent = gw.sent_850()
    checked = validator.validate(sent)
    assert checked.accepted and [s.set_id for s in checked.sets()] == ["850"]
    return sent


def arrive(gw: Gateway, files: list[tuple[str, bytes]], together: bool) -> None:
    """The partner's files into its inbox: together (one run, one fused batch) or one run
    each (each file validated and mapped alone)."""
    for name, data in files:
        gw.site.drop("globex", data, name)
        if not together:
            gw.site.run()
    if together:
        gw.site.run()


def line(e: dict[str, Any]) -> tuple[Any, ...]:
    d = e["data"]
    return (d["kind"], d["po_number"], d["line_number"], d["expected"], d["actual"])


@pytest.mark.parametrize("together", [False, True], ids=["one_by_one", "together"])
def test_po_out_997_855_856_receipt_810_give_one_quantity_and_one_three_way_exception(
        gateway: Gateway, together: bool) -> None:
    gw = gateway
    sent = send_the_order(gw)
    # Named so that the inbox takes them in this order when they come together.
    arrive(gw, [("1-997.x12", functional_ack(sent)),
                ("2-855.edi", (HERE / "globex-855-cut.edi").read_bytes()),
                ("3-856.edi", (HERE / "globex-856.edi").read_bytes())], together)
    assert gw.batches == ([3] if together else [])
    [cut] = gw.exceptions()
    assert line(cut) == ("acknowledged_quantity", PO, "2", "10", "8")
    assert cut["data"]["documents"][-1]["type"] == "po_acknowledgment"
    said = gw.edigw("receipts", "send", str(HERE / "globex-receipt.json"))
    assert f"joined PO {PO} of globex: 0 exception(s)" in said
    gw.site.drop("globex", HERE / "globex-810.edi")
    gw.site.run()

    found = gw.exceptions()
    assert [line(e) for e in found] == [("acknowledged_quantity", PO, "2", "10", "8"),
                                        ("three_way_quantity", PO, "2", "6", "8")]
    assert found[1]["data"]["severity"] == "error"
    assert {d["type"] for d in found[1]["data"]["documents"]} >= {"invoice", "goods_receipt"}
    types = [e["type"].rsplit(".", 2)[-2] for e in gw.site.events()]
    assert sorted(types) == sorted(["po_acknowledgment", "ship_notice", "exception",
                                    "invoice", "exception"])
    assert gw.site.dead_letters() == []

    shown = gw.show()
    assert (shown["state"], shown["direction"]) == ("matched", "outbound")
    assert [d["type"] for d in shown["documents"]] == [
        "purchase_order", "functional_ack", "po_acknowledgment", "ship_notice",
        "goods_receipt", "invoice"], [(d["type"], d["at"]) for d in shown["documents"]]
    assert [(ln["line_number"], ln["ordered"], ln["acknowledged"], ln["shipped"],
             ln["invoiced"], ln["received"]) for ln in shown["lines"]] == [
        ("1", "24", "24", "24", "24", "24"), ("2", "10", "8", "8", "8", "6"),
        ("3", "5", "5", "5", "5", "5")]
    assert [(e["kind"], e["event_id"]) for e in shown["exceptions"]] == [
        (e["data"]["kind"], e["id"]) for e in found]
    assert {d["kind"]: d["state"] for d in shown["deadlines"]} == {"ack": "met", "po_ack": "met"}
    text = gw.edigw("chains", "show", PO, "--partner", "globex")
    assert f"PO {PO} of globex: matched (outbound)" in text
    assert "acknowledged 8 CA against 10 ordered" in text
    assert "invoiced 8 CA against 6 received" in text

    # Everything again (the receipt posted twice, the files dropped twice, another run):
    # nothing new reaches the ERP.
    gw.edigw("receipts", "send", str(HERE / "globex-receipt.json"))
    for name in ("globex-855-cut.edi", "globex-856.edi", "globex-810.edi"):
        gw.site.drop("globex", HERE / name, "again-" + name)
    gw.site.run()
    assert [line(e) for e in gw.exceptions()] == [line(e) for e in found]
    assert len(gw.site.events()) == 5


def due(gw: Gateway, kind: str) -> datetime:
    [at] = [datetime.fromisoformat(d["due_at"]) for d in gw.show()["deadlines"]
            if d["kind"] == kind]
    return at


def test_no_997_within_the_partners_hours_is_one_ack_missing_exception(
        gateway: Gateway) -> None:
    gw = gateway
    send_the_order(gw)
    ack_due = due(gw, "ack")
    assert ack_due - due(gw, "po_ack") == timedelta(hours=24 - 48)  # globex: 24 and 48 hours
    gw.workers_at(ack_due - timedelta(minutes=1))
    assert gw.exceptions() == []
    gw.workers_at(ack_due + timedelta(minutes=1))  # a restarted worker, past the due time
    [missing] = gw.exceptions()
    assert (missing["data"]["kind"], missing["data"]["po_number"]) == ("ack_missing", PO)
    assert missing["data"]["tolerance"] == {"hours": 24}
    assert missing["time"].startswith(ack_due.strftime("%Y-%m-%dT%H:%M"))
    for later in (2, 3):  # more restarts, later still: nothing again
        gw.workers_at(ack_due + timedelta(hours=later))
    gw.site.run()
    assert gw.exceptions() == [missing]
    shown = gw.show()
    assert {d["kind"]: d["state"] for d in shown["deadlines"]} == {
        "ack": "fired", "po_ack": "pending"}
    assert [e["kind"] for e in shown["exceptions"]] == ["ack_missing"]


def test_a_997_rejecting_the_po_is_one_rejection_exception(gateway: Gateway) -> None:
    gw = gateway
    sent = send_the_order(gw)
    gw.site.drop("globex", functional_ack(sent, "R"), "997-reject.x12")
    gw.site.run()
    [rejected] = gw.exceptions()
    assert (rejected["data"]["kind"], rejected["data"]["po_number"],
            rejected["data"]["severity"]) == ("ack_rejected", PO, "error")
    assert "AK4: element 3 (355): 7 (invalid code value), value 'CS'" in \
        rejected["data"]["message"]
    # The 997 came in time: its deadline is met, and no tick finds it missing; no 855
    # follows a rejected 850, so none is missed either.
    gw.workers_at(due(gw, "ack") + timedelta(hours=1))
    gw.workers_at(due(gw, "po_ack") + timedelta(hours=1))
    gw.site.run()
    assert gw.exceptions() == [rejected]
    shown = gw.show()
    assert {d["kind"]: d["state"] for d in shown["deadlines"]} == {
        "ack": "met", "po_ack": "cancelled"}
    assert [(d["type"], d.get("accepted")) for d in shown["documents"]] == [
        ("purchase_order", None), ("functional_ack", False)]
    assert [e["kind"] for e in shown["exceptions"]] == ["ack_rejected"]

    # The buyer sends the order again, replaced: its own 997 is awaited, and missed.
    first_due = due(gw, "ack")
    corrected = json.loads(SAMPLE.read_text("utf-8"))
    corrected["purpose"], corrected["notes"] = "replace", ["Deliver to dock 8."]
    (gw.site.root / "corrected.json").write_text(json.dumps(corrected), "utf-8")
    assert "document 2, ISA13 000000002" in gw.edigw(
        "orders", "send", str(gw.site.root / "corrected.json"), "--partner", "globex")
    gw.site.run()
    assert len(list((gw.site.root / "var/outbox/globex").glob("850_*"))) == 2
    again = {d["kind"]: d["state"] for d in gw.show()["deadlines"]}
    assert again == {"ack": "pending", "po_ack": "pending"} and due(gw, "ack") > first_due
    gw.workers_at(due(gw, "ack") + timedelta(minutes=1))
    assert [e["data"]["kind"] for e in gw.exceptions()] == ["ack_rejected", "ack_missing"]
