"""Purchase orders out, on SQLite and PostgreSQL: control numbers from the store's
sequences across processes, one document per order, refusals that queue nothing, and the
send effect writing its file once even when killed between the write and the record."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway import orders
from gateway import partners as partners_mod
from gateway.store import db
from gateway.store.models import ControlNumber, OutboundDocument, WorkItem
from mappings.x12 import validator
from tests.conftest import REPO
from tests.pipeline_support import Site
from tests.store_support import migrated

pytestmark = pytest.mark.integration
SAMPLE = REPO / "samples/orders/globex-po.json"


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Site:
    # Short leases: a killed worker's send item is taken back within a second or two.
    return Site(tmp_path / "site", store_url=store_url,
                workers={"lease_seconds": 1.0, "heartbeat_seconds": 0.3, "idle_sleep": 0.05})


def po(number: str = "4500012345", **changes: Any) -> dict[str, Any]:
    data = json.loads(SAMPLE.read_text())
    data["po_number"] = number
    data.update(changes)
    return data


def partners() -> partners_mod.Partners:
    return partners_mod.load_all(REPO / "conf/partners", mappings_root=REPO / "mappings")


def cli(site: Site, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    """`edigw ...` as a process of its own (a crash point kills it, not the test)."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config",
                           str(site.config)], cwd=site.root, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def counts(url: str) -> tuple[int, int]:
    engine = db.make_engine(url)
    try:
        with db.transaction(engine, write=False) as s:
            docs = s.scalar(select(func.count()).select_from(OutboundDocument))
            items = s.scalar(select(func.count()).select_from(WorkItem)
                             .where(WorkItem.kind == "send"))
    finally:
        engine.dispose()
    return docs, items


def test_control_numbers_only_grow_across_processes_and_restarts(site: Site,
                                                                 store_url: str) -> None:
    engine = migrated(store_url)
    first = orders.submit(engine, partners(), "globex", po("PO-1"))
    engine.dispose()
    order = site.root / "po2.json"
    order.write_text(json.dumps(po("PO-2")))
    done = cli(site, "orders", "send", str(order), "--partner", "globex", "--format", "json")
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    engine = db.make_engine(store_url)  # a new engine: nothing remembered in memory
    third = orders.submit(engine, partners(), "globex", po("PO-3")).to_dict()
    engine.dispose()
    numbers = [first.to_dict()["control_numbers"], second["control_numbers"],
               third["control_numbers"]]
    for kind in ("isa13", "gs06", "st02"):
        values = [int(n[kind]) for n in numbers]
        assert values == sorted(set(values)), (kind, values)
    assert [n["isa13"] for n in numbers] == ["000000001", "000000002", "000000003"]


def test_the_same_order_twice_is_one_document_with_the_same_numbers(store_url: str) -> None:
    engine = migrated(store_url)
    try:
        a = orders.submit(engine, partners(), "globex", po())
        # The same content with its keys in another order and other spacing.
        again = json.loads(json.dumps(po(), sort_keys=True, indent=4))
        b = orders.submit(engine, partners(), "globex", again)
        assert a.created and not b.created
        assert b.to_dict()["document_id"] == a.to_dict()["document_id"]
        assert b.to_dict()["control_numbers"] == a.to_dict()["control_numbers"]
        with db.transaction(engine, write=False) as s:
            lasts = dict(s.execute(select(ControlNumber.kind, ControlNumber.last)
                                   .where(ControlNumber.scope == "partner:globex")).all())
        assert lasts == {"interchange": 1, "group": 1, "set": 1}
    finally:
        engine.dispose()
    assert counts(store_url) == (1, 1)


def test_other_content_for_a_sent_po_is_refused_unless_it_is_a_revision(
        store_url: str) -> None:
    engine = migrated(store_url)
    try:
        orders.submit(engine, partners(), "globex", po())
        more = po()
        more["lines"][0]["quantity"]["value"] = "30"
        with pytest.raises(orders.OrderConflict, match=r"PO 4500012345 was sent to globex "
                                                       r"already with other content"):
            orders.submit(engine, partners(), "globex", more)
        change = copy.deepcopy(more)
        change["purpose"] = "change"
        made = orders.submit(engine, partners(), "globex", change)
        assert made.created and made.to_dict()["control_numbers"]["isa13"] == "000000002"
        with db.transaction(engine, write=False) as s:
            text = s.get(OutboundDocument, made.document.id)
            assert text is not None and text.purpose == "change"
    finally:
        engine.dispose()
    assert counts(store_url) == (2, 2)


def test_an_order_our_validator_rejects_is_refused_naming_segment_and_element(
        site: Site, store_url: str) -> None:
    engine = migrated(store_url)
    long_po = po("PO-" + "9" * 25)  # BEG03 holds at most 22 characters
    try:
        with pytest.raises(orders.OrderRefused) as caught:
            orders.submit(engine, partners(), "globex", long_po)
        assert "segment BEG, element BEG03" in str(caught.value)
        with pytest.raises(orders.OrderRefused, match=r"lines\[0\].quantity: 'unit' is "
                                                      r"a required property|lines\[0\]"
                                                      r".quantity.unit"):
            bad = po()
            del bad["lines"][0]["quantity"]["unit"]
            orders.submit(engine, partners(), "globex", bad)
        with db.transaction(engine, write=False) as s:
            assert s.scalar(select(func.count()).select_from(ControlNumber)
                            .where(ControlNumber.last > 0)) == 0  # numbers given back
    finally:
        engine.dispose()
    order = site.root / "long.json"
    order.write_text(json.dumps(long_po))
    done = cli(site, "orders", "send", str(order), "--partner", "globex")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("edigw orders send: ") and "element BEG03" in line
    assert counts(store_url) == (0, 0)


def test_a_send_killed_between_write_and_record_writes_the_same_file_once(
        site: Site, store_url: str) -> None:
    order = site.root / "po.json"
    order.write_text(json.dumps(po()))
    done = cli(site, "orders", "send", str(order), "--partner", "globex", "--format", "json")
    assert done.returncode == 0, done.stderr
    name = json.loads(done.stdout)["filename"]
    outbox = site.root / "var/outbox/globex"
    crashed = cli(site, "run", "--once", env={"EDIGW_CRASH": "after_send_before_record"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert sorted(p.name for p in outbox.iterdir()) == [name]  # written, not recorded
    written = (outbox / name).read_bytes()
    engine = db.make_engine(store_url)
    try:
        with db.transaction(engine, write=False) as s:
            doc = s.scalars(select(OutboundDocument)).one()
            assert (doc.status, doc.sent_at) == ("queued", None)
        again = cli(site, "run", "--once")
        assert again.returncode == 0, again.stderr[-2000:]
        with db.transaction(engine, write=False) as s:
            doc = s.scalars(select(OutboundDocument)).one()
            assert doc.status == "sent" and doc.sent_at is not None
            [item] = s.scalars(select(WorkItem).where(WorkItem.kind == "send")).all()
            assert item.status == "done"
    finally:
        engine.dispose()
    assert sorted(p.name for p in outbox.iterdir()) == [name]  # the same name, once
    assert (outbox / name).read_bytes() == written
    assert validator.validate(written).accepted
    assert cli(site, "run", "--once").returncode == 0  # nothing more to do, nothing rewritten
    assert sorted(p.name for p in outbox.iterdir()) == [name]


def test_a_send_that_fails_for_good_is_dead_lettered_and_replayed_to_the_same_file(
        site: Site, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from canonical.errors import PermanentError
    from gateway import deadletters
    from gateway.pipeline import send

    engine = migrated(store_url)
    try:
        made = orders.submit(engine, partners(), "globex", po())
        real = send.outbound.write_atomically

        def refused(*args: Any, **kwargs: Any) -> None:
            raise PermanentError("the outbox refuses the file")

        monkeypatch.setattr(send.outbound, "write_atomically", refused)
        site.run()
        [dl] = site.dead_letters()
        assert (dl.stage, dl.reason) == ("send", "the outbox refuses the file")
        outbox = site.root / "var/outbox/globex"
        assert not outbox.exists() or list(outbox.iterdir()) == []
        monkeypatch.setattr(send.outbound, "write_atomically", real)
        [done] = deadletters.replay(engine, [dl.id], actor="test", reason="outbox fixed")
        assert done.result == "replayed", done
        site.run()
        assert [p.name for p in outbox.iterdir()] == [made.document.filename]
        with db.transaction(engine, write=False) as s:
            doc = s.get(OutboundDocument, made.document.id)
            assert doc is not None and doc.status == "sent"
    finally:
        engine.dispose()


def test_the_same_order_sent_twice_at_once_is_one_document(store_url: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    engine = migrated(store_url)
    barrier = threading.Barrier(2)
    known = partners()

    def submit(_: int) -> dict[str, Any]:
        barrier.wait()
        return orders.submit(engine, known, "globex", po("PO-RACE")).to_dict()

    try:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(submit, [1, 2])
        assert sorted([a["created"], b["created"]]) == [False, True]
        assert a["document_id"] == b["document_id"]
        assert a["control_numbers"] == b["control_numbers"]
        with db.transaction(engine, write=False) as s:
            # The loser's numbers, if it took any, went back with its rollback.
            assert s.scalar(select(ControlNumber.last).where(
                ControlNumber.scope == "partner:globex",
                ControlNumber.kind == "interchange")) == 1
    finally:
        engine.dispose()
    assert counts(store_url) == (1, 1)
