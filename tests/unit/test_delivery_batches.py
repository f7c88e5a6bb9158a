"""Batched delivery (issue #12 item 4): a batch's events go out together, each keeps its own
outcome, the record is a fixed few statements, the file output fsyncs once a batch, the HTTP
output never has more than max_in_flight requests out, and receipts outlive a killed worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Engine

from canonical import envelope, errors
from channels import base, erp_file, registry
from channels.base import DeliveryReceipt
from channels.erp_sim import SimulatorHandle, running_simulator
from gateway import partners, settings
from gateway.pipeline import outbound, receipts
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import claims, db, receive
from gateway.store.models import DeadLetter, Delivery, WorkItem
from tests.conftest import REPO
from tests.crash_support import make_850s
from tests.store_support import migrated

pytestmark = pytest.mark.unit

WHEN = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}


def event(n: int) -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=WHEN)


def set_id(isa13: int, n: int) -> str:
    """The event id of set n of make_850s(isa13, ...)."""
    return envelope.event_id("acme", "purchase_order",
                             {"isa13": f"{isa13:09d}", "gs06": str(isa13), "st02": f"{n:04d}"})


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator() as handle:
        yield handle


@pytest.fixture
def erp(sim: SimulatorHandle) -> Iterator[SimulatorHandle]:
    sim.state.reset()
    yield sim
    sim.state.reset()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated(f"sqlite:///{tmp_path / 'store.db'}")


def _context(tmp_path: Path, engine: Engine, dest: dict[str, Any]) -> Context:
    conf = {"acks": {"folder": str(tmp_path / "outbox")},
            "destinations": {"erp": {**dest, "retry": {"maximum_redeliveries": 3, "jitter": 0}}}}
    return Context(settings.parse(conf, {}, None),
                   partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                   engine)


def _receive(ctx: Context, isa13: int, sets: int) -> None:
    with db.transaction(ctx.engine) as s:
        got = receive.receive(s, partner="acme", channel="test", source_name=f"{isa13}.edi",
                              data=make_850s(isa13, sets))
        claims.enqueue(s, "validate", message_id=got.message.id)


def _deliveries(ctx: Context) -> dict[str, Delivery]:
    with db.transaction(ctx.engine, write=False) as s:
        return {d.event_id: d for d in s.scalars(select(Delivery))}


def _deliver_items(ctx: Context) -> dict[int, WorkItem]:
    with db.transaction(ctx.engine, write=False) as s:
        return {i.delivery_id: i for i in s.scalars(select(WorkItem).where(
            WorkItem.kind == "deliver"))}


def test_one_failing_event_of_a_batch_keeps_its_own_outcome(
        tmp_path: Path, engine: Engine, erp: SimulatorHandle,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, engine, {"type": "http", "config": {"url": erp.events_url}})
    batches: list[int] = []
    real = outbound.deliver_many
    monkeypatch.setitem(outbound.BATCHED, "deliver",
                        lambda c, items: (batches.append(len(items)), real(c, items)))
    unavailable, rejected = set_id(700, 2), set_id(700, 4)
    erp.set_fault("503", keys=[unavailable])
    _receive(ctx, 700, 5)
    Worker(ctx, "w1").run(until_idle=True)
    erp.set_fault("400", keys=[rejected])  # the 503 switch is off again after this
    assert batches == [5]  # the five went out as one batch
    got = _deliveries(ctx)
    items = _deliver_items(ctx)
    assert {e: d.status for e, d in got.items()} == {
        set_id(700, n): "pending" if n == 2 else "delivered" for n in range(1, 6)}
    assert got[unavailable].last_status_code == 503 and got[unavailable].attempts == 1
    retried = items[got[unavailable].id]
    assert retried.status == "pending" and retried.run_after > db.utcnow()
    assert {items[d.id].status for e, d in got.items() if e != unavailable} == {"done"}
    assert {e["key"] for e in erp.effects()} == {set_id(700, n) for n in (1, 3, 4, 5)}
    ctx.close()


def test_a_rejected_event_is_dead_lettered_and_the_rest_of_its_batch_delivered(
        tmp_path: Path, engine: Engine, erp: SimulatorHandle) -> None:
    ctx = _context(tmp_path, engine, {"type": "http", "config": {"url": erp.events_url}})
    rejected = set_id(701, 3)
    erp.set_fault("400", keys=[rejected])
    _receive(ctx, 701, 4)
    Worker(ctx, "w1").run(until_idle=True)
    got = _deliveries(ctx)
    assert got[rejected].status == "dead" and got[rejected].last_status_code == 400
    assert [d.status for e, d in got.items() if e != rejected] == ["delivered"] * 3
    with db.transaction(ctx.engine, write=False) as s:
        [letter] = s.scalars(select(DeadLetter)).all()
    assert (letter.stage, letter.delivery_id, letter.attempts) == ("deliver", got[rejected].id, 1)
    assert letter.endpoint.startswith("erp (erp:http ")
    ctx.close()


def test_the_record_of_a_batch_is_a_fixed_number_of_statements(
        tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, engine, {"type": "file",
                                      "config": {"path": str(tmp_path / "erp.jsonl")}})
    counts: list[tuple[int, int]] = []
    statements = [0]
    real = outbound.deliver_many

    def counted(c: Context, items: Any) -> None:
        statements[0] = 0
        real(c, items)
        counts.append((len(items), statements[0]))

    sa_event.listen(engine, "before_cursor_execute",
                    lambda *_: statements.__setitem__(0, statements[0] + 1))
    monkeypatch.setitem(outbound.BATCHED, "deliver", counted)
    for isa13, sets in ((702, 3), (703, 12)):
        _receive(ctx, isa13, sets)
        Worker(ctx, "w1").run(until_idle=True)
    assert [n for n, _ in counts] == [3, 12]
    print("statements per batch of deliveries:", counts)
    assert counts[0][1] == counts[1][1], counts  # as many for 12 deliveries as for 3
    assert counts[0][1] <= 8, counts
    assert {d.status for d in _deliveries(ctx).values()} == {"delivered"}
    ctx.close()


def test_an_item_taken_by_another_worker_meanwhile_is_left_to_it_the_rest_recorded(
        tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # The record of an all-delivered batch is two statements; should another worker hold
    # one of its items by then, the record is made again the careful way: the rest
    # delivered and done, each attempt counted once, the taken item left as it is.
    ctx = _context(tmp_path, engine, {"type": "file",
                                      "config": {"path": str(tmp_path / "erp.jsonl")}})
    real = outbound.deliver_many
    taken: list[int] = []

    def steal_one(c: Context, items: Any) -> None:
        taken.append(items[0].id)
        with db.transaction(c.engine) as s:
            s.execute(sa.update(WorkItem).where(WorkItem.id == items[0].id)
                      .values(lease_owner="w2"))
        real(c, items)

    monkeypatch.setitem(outbound.BATCHED, "deliver", steal_one)
    _receive(ctx, 705, 3)
    worker = Worker(ctx, "w1")
    while worker.step():
        pass
    items = {i.id: i for i in _deliver_items(ctx).values()}
    assert len(taken) == 1 and items[taken[0]].status == "claimed"
    assert items[taken[0]].lease_owner == "w2"
    assert sorted(i.status for i in items.values()) == ["claimed", "done", "done"]
    by_item = {items[i].delivery_id: i for i in items}
    got = {d.id: d for d in _deliveries(ctx).values()}
    for delivery_id, d in got.items():
        if by_item[delivery_id] == taken[0]:
            assert (d.status, d.attempts) == ("pending", 0)
        else:
            assert (d.status, d.attempts) == ("delivered", 1)
    ctx.close()


def test_a_replayed_delivery_that_is_done_already_is_only_completed(
        tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "erp.jsonl"
    ctx = _context(tmp_path, engine, {"type": "file", "config": {"path": str(path)}})
    _receive(ctx, 704, 3)
    Worker(ctx, "w1").run(until_idle=True)
    before = path.read_bytes()
    with db.transaction(ctx.engine) as s:
        for d in s.scalars(select(Delivery)):
            claims.enqueue(s, "deliver", delivery_id=d.id)  # what a replay of a done one does
    Worker(ctx, "w1").run(until_idle=True)
    assert path.read_bytes() == before
    assert [d.attempts for d in _deliveries(ctx).values()] == [1, 1, 1]
    with db.transaction(ctx.engine, write=False) as s:
        assert {i.status for i in s.scalars(select(WorkItem))} == {"done"}
    ctx.close()


# ---- the file output: one fsync a batch ----------------------------------------------------

def test_the_file_output_fsyncs_once_a_batch_and_skips_ids_it_has(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "erp.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(erp_file.os, "fsync", fsync)
    out = registry.build_output("file", {"path": str(path)})
    told: list[int] = []
    first = base.write_many(out, [event(n) for n in range(1, 11)],
                            lambda n, _: told.append(n))
    assert len(synced) == 1 and told == list(range(10))
    assert [r.duplicate for r in first if isinstance(r, DeliveryReceipt)] == [False] * 10
    second = base.write_many(out, [event(n) for n in (5, 11, 6, 12, 11)])
    assert len(synced) == 2
    assert [r.duplicate for r in second if isinstance(r, DeliveryReceipt)] == [
        True, False, True, False, True]  # an id twice in one batch is written once
    out.close()
    lines = [json.loads(x)["id"] for x in path.read_bytes().splitlines()]
    assert lines == [event(n).id for n in range(1, 13)]


def test_a_batch_the_file_cannot_take_fails_every_event_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "erp.jsonl"
    out = registry.build_output("file", {"path": str(path)})
    out.write(event(1))

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(erp_file.os, "fsync", full)
    got = base.write_many(out, [event(1), event(2), event(3)])
    assert isinstance(got[0], DeliveryReceipt) and got[0].duplicate
    assert all(isinstance(g, errors.DeliveryUnavailable) for g in got[1:])
    out.close()


def test_an_output_without_write_many_is_written_event_by_event() -> None:
    class OneByOne:
        endpoint = "erp:test"

        def __init__(self) -> None:
            self.written: list[str] = []

        def connect(self) -> None:
            pass

        def write(self, ev: envelope.Event) -> DeliveryReceipt:
            if ev.id == event(2).id:
                raise errors.DeliveryRejected("no")
            self.written.append(ev.id)
            return DeliveryReceipt(ev.id, self.endpoint)

        def close(self) -> None:
            pass

    out = OneByOne()
    got = base.write_many(out, [event(1), event(2), event(3)])  # type: ignore[arg-type]
    assert [type(g).__name__ for g in got] == ["DeliveryReceipt", "DeliveryRejected",
                                               "DeliveryReceipt"]
    assert out.written == [event(1).id, event(3).id]


# ---- the HTTP output: at most max_in_flight requests at once, kept connections ------------

class CountingErp:
    """A real HTTP server that counts requests in flight at once and the connections used.

    Each request waits until `gate` requests are in flight (or every expected one has
    started), so that a client able to send several at once is seen doing it.
    """

    def __init__(self, gate: int, fail_key: str | None = None, hold: float = 30.0) -> None:
        self.gate, self.fail_key, self.hold = gate, fail_key, hold
        self.active = self.peak = self.started = 0
        self.expected = 0
        self.connections: set[tuple[str, int]] = set()
        self.cond = threading.Condition()
        erp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as an ERP would

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                with erp.cond:
                    erp.connections.add(self.client_address)
                    erp.active += 1
                    erp.started += 1
                    erp.peak = max(erp.peak, erp.active)
                    erp.cond.notify_all()
                    # A bound on the wait only so that a broken client cannot hang the test.
                    erp.cond.wait_for(lambda: erp.active >= erp.gate
                                      or erp.started >= erp.expected, timeout=erp.hold)
                    erp.active -= 1
                status = 500 if key == erp.fail_key else 201
                body = b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CountingErp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_http_never_has_more_than_max_in_flight_requests_out_and_reuses_connections() -> None:
    failing = event(4).id
    with CountingErp(gate=3, fail_key=failing) as erp:
        out = registry.build_output("http", {"url": erp.url, "max_in_flight": 3})
        erp.expected = 10
        first = base.write_many(out, [event(n) for n in range(1, 11)])
        erp.expected = 20
        second = base.write_many(out, [event(n) for n in range(11, 21)])
        out.close()
    assert erp.peak == 3  # several at once, never more than three
    assert len(erp.connections) <= 3  # the second batch went over the first one's connections
    assert isinstance(first[3], errors.DeliveryUnavailable) and first[3].status == 500
    assert [g.event_id for g in first if isinstance(g, DeliveryReceipt)] == [
        event(n).id for n in range(1, 11) if n != 4]
    assert all(isinstance(g, DeliveryReceipt) and g.status == 201 for g in second)


def test_http_with_one_in_flight_sends_one_after_the_other() -> None:
    # Each request waits a moment for a second one: one that came would show in peak.
    with CountingErp(gate=2, hold=0.3) as erp:
        erp.expected = 4
        out = registry.build_output("http", {"url": erp.url})  # max_in_flight: 1
        got = base.write_many(out, [event(n) for n in range(1, 5)])
        out.close()
    assert erp.started == 4 and erp.peak == 1
    assert all(isinstance(g, DeliveryReceipt) for g in got)


# ---- receipts outlive a killed worker ------------------------------------------------------

NOTE_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from channels.base import DeliveryReceipt
    from gateway.pipeline.receipts import Journal
    j = Journal(Path(sys.argv[1]))
    j.note(7, DeliveryReceipt("ev-7", "erp:test", status=201))
    j.note(8, DeliveryReceipt("ev-8", "erp:test", duplicate=True, status=200))
    print("noted", flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.stdin.read()  # alive, holding its file, until told
""")


def test_receipts_of_a_killed_worker_are_read_and_a_live_ones_are_not(tmp_path: Path) -> None:
    folder = tmp_path / "receipts"
    alive = subprocess.Popen([sys.executable, "-c", NOTE_AND_DIE, str(folder), "live"],
                             cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert alive.stdout is not None and alive.stdout.readline() == b"noted\n"
        mine = receipts.Journal(folder)
        assert mine.known({7, 8}) == {}  # its process lives and records them itself
    finally:
        alive.communicate(b"")
    killed = subprocess.run([sys.executable, "-c", NOTE_AND_DIE, str(folder), "kill"],
                            cwd=REPO, capture_output=True)
    assert killed.returncode == -9
    known = mine.known({7, 8, 9})
    assert known == {7: DeliveryReceipt("ev-7", "erp:test", status=201),
                     8: DeliveryReceipt("ev-8", "erp:test", duplicate=True, status=200)}
    files = sorted(folder.glob("*.jsonl"))
    mine.prune(pending={8})  # the killed one's file stays while one of its deliveries waits
    assert sorted(folder.glob("*.jsonl")) == files
    mine.prune(pending=set())
    assert [p for p in folder.glob("*.jsonl") if p.stat().st_size] == []
    mine.note(9, DeliveryReceipt("ev-9", "erp:test"))
    mine.note(10, DeliveryReceipt("ev-10", "erp:test"))
    assert mine.known({9, 10}) == {9: DeliveryReceipt("ev-9", "erp:test"),
                                   10: DeliveryReceipt("ev-10", "erp:test")}
    mine.recorded({9})
    assert mine.known({9, 10}) == {10: DeliveryReceipt("ev-10", "erp:test")}
    assert mine.path is not None and b'"ev-9"' not in mine.path.read_bytes()
    mine.recorded({10})
    assert mine.known({9, 10}) == {} and mine.path.stat().st_size == 0
    mine.close()
    assert not mine.path.exists()  # nothing left to record: no file left behind


# ---- the SQL output: one transaction a batch -------------------------------------------------

def test_the_sql_output_inserts_a_batch_in_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    out = registry.build_output("sql", {"url": url, "create_table": True})
    out.write(event(2))
    began: list[int] = []
    out.connect()
    sa_event.listen(out._engine, "begin", lambda *_: began.append(1))  # type: ignore[attr-defined]
    got = base.write_many(out, [event(1), event(2), event(3), event(1)])
    assert len(began) == 1
    assert [g.duplicate for g in got if isinstance(g, DeliveryReceipt)] == [
        False, True, False, True]
    out.close()
    engine = sa.create_engine(url)
    with engine.connect() as c:
        staged = set(c.scalars(sa.text("SELECT event_id FROM edigw_staging")))
    engine.dispose()
    assert staged == {event(n).id for n in (1, 2, 3)}


EMPTIED_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from channels.base import DeliveryReceipt
    from gateway.pipeline.receipts import Journal
    j = Journal(Path(sys.argv[1]))
    j.note(7, DeliveryReceipt("ev-7", "erp:test", status=201))
    j.recorded({7})  # the store has it: the file is empty when the worker dies
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_killed_workers_empty_receipt_file_is_removed(tmp_path: Path) -> None:
    folder = tmp_path / "receipts"
    killed = subprocess.run([sys.executable, "-c", EMPTIED_AND_DIE, str(folder)], cwd=REPO,
                            capture_output=True)
    assert killed.returncode == -9
    [left] = folder.glob("*.jsonl")
    mine = receipts.Journal(folder)
    assert mine.known({7}) == {} and mine.orphans and mine.orphaned() == set()
    mine.prune(pending=set())
    assert not left.exists() and not mine.orphans


def test_a_batch_of_acks_syncs_their_folder_once(
        tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _context(tmp_path, engine, {"type": "file",
                                      "config": {"path": str(tmp_path / "erp.jsonl")}})
    folders: list[str] = []
    files: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # os is one module: the ERP file's fsyncs come here too
        path = os.readlink(f"/proc/self/fd/{fd}")
        (folders if stat.S_ISDIR(os.fstat(fd).st_mode) else files).append(path)
        real_fsync(fd)

    monkeypatch.setattr(outbound.os, "fsync", fsync)
    for isa13 in (710, 711, 712):
        _receive(ctx, isa13, 2)
    Worker(ctx, "w1").run(until_idle=True)
    written = sorted((tmp_path / "outbox" / "acme").iterdir())
    assert len(written) == 3  # a 997 each (no TA1 asked)
    assert len([f for f in files if "/outbox/" in f]) == 3  # each file synced
    assert files.count(str(tmp_path / "erp.jsonl")) == 1  # the three events: one fsync
    assert folders == [str(tmp_path / "outbox" / "acme")]  # their renames: one folder fsync
    ctx.close()


def test_an_output_that_cannot_connect_fails_each_delivery_under_its_destinations_policy(
        tmp_path: Path, engine: Engine) -> None:
    folder = tmp_path / "not-a-file"
    folder.mkdir()
    ctx = _context(tmp_path, engine, {"type": "file", "config": {"path": str(folder)}})
    _receive(ctx, 720, 3)
    Worker(ctx, "w1").run(until_idle=True)
    got = _deliveries(ctx)
    assert {(d.status, d.attempts) for d in got.values()} == {("pending", 1)}
    assert all("DeliveryUnavailable: opening erp:file" in (d.last_error or "")
               for d in got.values())
    assert {i.status for i in _deliver_items(ctx).values()} == {"pending"}
    ctx.close()
