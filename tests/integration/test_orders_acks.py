"""A partner's 997/999 coming back marks the purchase order it answers, on SQLite and
PostgreSQL: accepted, or rejected with the AK3/AK4/AK5 reasons as text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import orders
from gateway import partners as partners_mod
from gateway.chains import views
from gateway.pipeline import returns
from gateway.store import db, receive
from gateway.store.models import Message, OutboundDocument
from mappings.x12 import acks, validator
from mappings.x12.control_numbers import MemoryControlNumbers
from tests.conftest import REPO
from tests.pipeline_support import Site
from tests.store_support import migrated

pytestmark = pytest.mark.integration
SAMPLE = REPO / "samples/orders/globex-po.json"


def _partners() -> partners_mod.Partners:
    return partners_mod.load_all(REPO / "conf/partners", mappings_root=REPO / "mappings")


def _send(site: Site, store_url: str, po_number: str) -> OutboundDocument:
    engine = migrated(store_url)
    try:
        data = json.loads(SAMPLE.read_text())
        data["po_number"] = po_number
        made = orders.submit(engine, _partners(), "globex", data)
    finally:
        engine.dispose()
    site.run()
    return made.document


def _partner_ack(text: bytes, kind: str = "997") -> bytes:
    """The 997/999 a partner's translator would send for our 850: our own validator and
    ack builder, run as them (the ack's ISA swaps the 850's parties)."""
    [ic] = validator.validate(text).interchanges
    batch = acks.build_acknowledgments(ic, MemoryControlNumbers(start=5001),
                                       datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    [ack] = [a for a in batch.acks if a.kind == kind]
    return ack.text.encode()


def _rejecting_997(gs06: int, st02: int) -> bytes:
    return "\n".join([
        "ISA*00*          *00*          *ZZ*GLOBEX         *ZZ*DISTRIBUTOR    *261130*0800*U*"
        "00401*000005002*0*P*>~",
        "GS*FA*GLOBEX*DISTRIBUTOR*20261130*0800*5002*X*004010~",
        "ST*997*0001~",
        f"AK1*PO*{gs06}~",
        f"AK2*850*{st02:04d}~",
        "AK3*PO1*18*PO1*8~",
        "AK4*3*355*7*CS~",
        "AK5*R*5~",
        "AK9*R*1*1*0~",
        "SE*8*0001~",
        "GE*1*5002~",
        "IEA*1*000005002~", ""]).encode()


def _doc(store_url: str, doc_id: int) -> OutboundDocument:
    engine = db.make_engine(store_url)
    try:
        with db.transaction(engine, write=False) as s:
            doc = s.get(OutboundDocument, doc_id)
            assert doc is not None
            return doc
    finally:
        engine.dispose()


def test_a_997_accepting_our_850_marks_it_accepted(tmp_path: Path, store_url: str) -> None:
    site = Site(tmp_path / "site", store_url=store_url)
    doc = _send(site, store_url, "PO-ACK-1")
    [sent] = (site.root / "var/outbox/globex").glob("850_*.x12")
    site.drop("globex", _partner_ack(sent.read_bytes()), "997-in.x12")
    site.run()
    got = _doc(store_url, doc.id)
    assert (got.status, got.reason) == ("accepted", None)
    assert got.acknowledged_at is not None and got.ack_message_id is not None
    assert site.dead_letters() == []
    # Called again on the stored message (a replay of validate): the same outcome.
    engine = db.make_engine(store_url)
    try:
        with db.transaction(engine) as s:
            msg = s.get(Message, got.ack_message_id)
            assert msg is not None
            [ic] = validator.validate(receive.payload(s, msg.payload_sha256)).interchanges
            [outcome] = returns.settle_returned_acks(s, msg, _partners().get("globex"), ic)
        with db.transaction(engine, write=False) as s:
            shown = views.chain(s, "PO-ACK-1", "globex")
    finally:
        engine.dispose()
    assert (outcome.partner, outcome.po_number, outcome.status, outcome.document_id,
            outcome.reason) == ("globex", "PO-ACK-1", "accepted", doc.id, None)
    # Its time is the 997's arrival, so the replay is the same document of the chain.
    assert outcome.acknowledged_at == got.acknowledged_at
    assert [d["type"] for d in shown["documents"]] == ["purchase_order", "functional_ack"]


def test_a_997_rejecting_our_850_marks_it_rejected_with_the_reasons(
        tmp_path: Path, store_url: str) -> None:
    site = Site(tmp_path / "site", store_url=store_url)
    other = _send(site, store_url, "PO-ACK-2")
    doc = _send(site, store_url, "PO-ACK-3")
    site.drop("globex", _rejecting_997(doc.gs06, doc.st02), "997-reject.x12")
    site.run()
    got = _doc(store_url, doc.id)
    assert got.status == "rejected"
    assert got.reason is not None
    assert got.reason.startswith("997 AK5 R: ")
    assert "AK3: segment PO1 at position 18 in loop PO1: 8 (segment has element errors)" \
        in got.reason
    assert "AK4: element 3 (355): 7 (invalid code value), value 'CS'" in got.reason
    assert "AK5: 5 (segment errors)" in got.reason
    assert _doc(store_url, other.id).status == "sent"  # the other order is not touched
    engine = db.make_engine(store_url)
    try:
        with db.transaction(engine, write=False) as s:
            assert [d.status for d in s.scalars(select(OutboundDocument)
                                                .order_by(OutboundDocument.id))] == [
                "sent", "rejected"]
    finally:
        engine.dispose()


def test_a_999_rejecting_a_005010_order_keeps_the_ik_reasons(tmp_path: Path,
                                                              store_url: str) -> None:
    import shutil

    import yaml

    partners = tmp_path / "partners"
    shutil.copytree(REPO / "conf/partners", partners)
    (partners / "northwind.yaml").write_text(yaml.safe_dump({
        "id": "northwind", "name": "Northwind Supply",
        "x12": {"isa": [{"qualifier": "ZZ", "id": "NORTHWIND"}], "gs": ["NORTHWIND"]},
        "outbound": {"isa": {"qualifier": "ZZ", "id": "DISTRIBUTOR"},
                     "mappings": {"850": "base/outbound/850.5010.yaml"}}}))
    site = Site(tmp_path / "site", store_url=store_url,
                partners={"folder": str(partners), "mappings": str(REPO / "mappings")})
    engine = migrated(store_url)
    try:
        data = json.loads(SAMPLE.read_text())
        data["po_number"] = "NW-5010"
        known = partners_mod.load_all(partners, mappings_root=REPO / "mappings")
        doc = orders.submit(engine, known, "northwind", data).document
    finally:
        engine.dispose()
    site.run()
    [sent] = (site.root / "var/outbox/northwind").glob("850_*.x12")
    # What Northwind's translator saw: a unit of measure three characters long.
    seen = sent.read_bytes().replace(b"PO1*2*10*CA*", b"PO1*2*10*CAS*")
    ack = _partner_ack(seen, "999")
    assert b"IK5*R" in ack
    site.drop("northwind", ack, "999-in.x12")
    site.run()
    got = _doc(store_url, doc.id)
    assert got.status == "rejected" and got.reason is not None
    assert got.reason.startswith("999 IK5 R: "), got.reason
    assert "IK3: segment PO1" in got.reason and "IK4: element 3 (355): 5 (too long)" in got.reason

