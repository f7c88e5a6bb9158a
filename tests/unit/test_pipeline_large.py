"""A large file streams: memory that does not grow with its size, output in many short commits.

Memory is measured with tracemalloc (the Python heap's peak while the file goes through,
against the file's size), never with time. The file is a few megabytes of 100-line
purchase orders: large enough that holding it, its segments or its events at once
shows as many times its size, small enough for CI.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from channels.folder import FolderInput, FolderInputConfig
from gateway import partners, settings, translation
from gateway.pipeline import intake, streaming
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import db, events, payloads, set_verdicts
from gateway.store.models import Acknowledgment, Delivery, Event, Message, WorkItem
from mappings import translate
from mappings.x12 import validator
from tests.conftest import REPO
from tests.store_support import migrated
from tests.unit.test_pipeline_stages import FakeOutput

pytestmark = pytest.mark.unit
LINES = 100  # PO1 lines per purchase order
SETS = 600  # about 6 MB, for the memory tests
SMALLER = 200  # about 2 MB (two parts), for the tests that count commits and crash


def purchase_orders(sets: int, lines: int = LINES, icn: int = 42) -> bytes:
    """One Acme interchange (ISA13 = GS06 = icn) of `sets` 850s of `lines` lines each."""
    out = ["ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTRIBUTOR    *261120*0930*U*"
           f"00401*{icn:09d}*0*P*>", f"GS*PO*ACMERETAIL*DISTRIBUTOR*20261120*0930*{icn}*X*004010"]
    for n in range(1, sets + 1):
        body = [f"BEG*00*SA*PO{n:08d}**20261120", "N1*ST*Acme Store 118*92*0118"]
        for i in range(1, lines + 1):
            body += [f"PO1*{i}*{i % 9 + 1}*EA*{i % 50 + 1}.25**BP*ACME-{i:05d}*VP*W-{n:06d}",
                     f"PID*F****Widget number {i} of purchase order {n}"]
        body.append(f"CTT*{lines}")
        out += [f"ST*850*{n:04d}", *body, f"SE*{len(body) + 2}*{n:04d}"]
    out += [f"GE*{sets}*{icn}", f"IEA*1*{icn:09d}"]
    return ("~\n".join(out) + "~\n").encode("ascii")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("large") / "po.edi"
    path.write_bytes(purchase_orders(SETS, icn=43))
    assert path.stat().st_size > 5 * payloads.PART_BYTES
    return path


@pytest.fixture(scope="module")
def mid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mid") / "po.edi"
    path.write_bytes(purchase_orders(SMALLER))
    assert path.stat().st_size > payloads.PART_BYTES
    return path


def peak_while(run: Callable[[], Any]) -> int:
    """The Python heap's peak growth, in bytes, while run() runs.

    Caches that fill once whatever the size (compiled mappings, X12 maps, schemas) are
    filled first by translating a two-set file, so that only what grows is measured.
    """
    list(translate.translate(purchase_orders(2), partner="acme"))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_translate_holds_one_set_at_a_time(big_file: Path) -> None:
    size = big_file.stat().st_size
    seen: list[str] = []
    registry = partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings")
    peak = peak_while(lambda: translation.translate_path(
        big_file, partner_id=None, registry=registry, root=REPO / "mappings",
        on_event=lambda e: seen.append(e.id)))
    assert len(seen) == SETS
    # Before streaming, the file's segments and all its events were held at once: over
    # 20 times the file's size.
    assert peak < size / 2, f"peak {peak:,} bytes for a file of {size:,}"


def test_translate_yields_as_it_reads(big_file: Path) -> None:
    results = translate.translate(big_file, partner="acme")
    first = next(results)
    assert first.ok and first.x12control == "000000043.43.0001"
    assert sum(1 for _ in results) == SETS - 1


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    engine = migrated(f"sqlite:///{tmp_path / 'store.db'}")
    c = Context(settings.parse({"acks": {"folder": str(tmp_path / "outbox")}}, {}, None),
                partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                engine)
    c.outputs["erp"] = FakeOutput()  # type: ignore[assignment]
    yield c
    engine.dispose()


def _receive(ctx: Context, path: Path, expect: str = "new") -> int:
    """The folder channel and the intake take a large file: its parts first (through the
    descriptor the channel checked), then the message and its item (expect: new, or
    duplicate for a file taken before)."""
    inbox = ctx.settings.outbox_root.parent / "inbox"
    (inbox / "acme").mkdir(parents=True, exist_ok=True)
    os.link(path, inbox / "acme" / path.name)  # the fixture's file stays for the next test
    source = FolderInput(FolderInputConfig(root=str(inbox), stable_for=0),
                         max_bytes=ctx.settings.max_input_bytes, large_bytes=payloads.PART_BYTES)
    [message] = source.read()
    assert message.fd is not None and message.data == b""  # never in memory whole
    [got] = intake.accept(ctx, [message], source)
    assert got.outcome == expect and not (inbox / "acme" / path.name).exists()
    assert got.message_id is not None
    return got.message_id


def _count(engine: Engine, model: type, *where: Any) -> int:
    with db.transaction(engine, write=False) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_the_pipeline_holds_about_a_part_and_a_page(ctx: Context, big_file: Path,
                                                    mid_file: Path) -> None:
    """What the pipeline holds at its peak is a part and a page whatever the file's size:
    the peaks for files of 200 and 600 orders differ by far less than the files do."""
    peaks, message_ids = {}, {}
    for path in (mid_file, big_file):
        def run(path: Path = path) -> None:
            message_ids[path] = _receive(ctx, path)
            Worker(ctx, "w1").run(until_idle=True)
        peaks[path] = peak_while(run)
    with db.transaction(ctx.engine, write=False) as s:
        digest = s.get_one(Message, message_ids[big_file]).payload_sha256
        assert payloads.stored_parts(s, digest) == big_file.stat().st_size // payloads.PART_BYTES
        assert payloads.read_all(s, digest) == big_file.read_bytes()
        acks = [payloads.read_all(s, a.payload_sha256).decode("ascii")
                for a in s.scalars(select(Acknowledgment).order_by(Acknowledgment.id))]
    assert len(ctx.outputs["erp"].written) == SMALLER + SETS  # type: ignore[attr-defined]
    assert [a.count("AK9*A*") for a in acks] == [1, 1]
    assert f"AK9*A*{SETS}*{SETS}*{SETS}~" in acks[1]
    assert _count(ctx.engine, WorkItem, WorkItem.status != "done") == 0
    grown = peaks[big_file] - peaks[mid_file]
    more = big_file.stat().st_size - mid_file.stat().st_size
    # Before streaming, the payload, its segments, every event and every result were held
    # at once: the peak grew by many times the file's growth.
    assert grown < more / 4, f"peaks {peaks[mid_file]:,} and {peaks[big_file]:,} bytes"


def _write_commits(engine: Engine) -> list[int]:
    """A growing list with one entry per committed write transaction on the engine."""
    commits: list[int] = []

    def on_commit(conn: Connection) -> None:
        if conn.get_execution_options().get("edigw_write", True):
            commits.append(1)

    sa_event.listen(engine, "commit", on_commit)
    return commits


def test_each_stage_of_a_large_file_commits_page_by_page(
        ctx: Context, mid_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "PAGE_EVENTS", 50)
    monkeypatch.setattr(streaming, "ROUTE_PAGE", 100)
    commits = _write_commits(ctx.engine)
    by_stage: dict[str, int] = {}
    for kind, stage in list(streaming.STREAMED.items()):
        def counted(c: Context, item: WorkItem, worker: str, stage: Any = stage,
                    kind: str = kind) -> None:
            before = len(commits)
            stage(c, item, worker)
            by_stage[kind] = len(commits) - before
        monkeypatch.setitem(streaming.STREAMED, kind, counted)
    _receive(ctx, mid_file)
    Worker(ctx, "w1").run(until_idle=True)
    # The 997's three control numbers, each committed before the text is built, then the
    # interchange, the 997 and the map item together.
    assert by_stage["validate"] == 3 + 1
    assert by_stage["map"] >= SMALLER // 50  # a page of 50 events per commit
    assert by_stage["route"] >= SMALLER // 100 + 1  # 100 events routed per commit, then the last
    assert _count(ctx.engine, Event) == SMALLER and _count(ctx.engine, Delivery) == SMALLER


def test_the_inbox_stores_a_large_file_one_part_per_commit(ctx: Context, mid_file: Path) -> None:
    commits = _write_commits(ctx.engine)
    _receive(ctx, mid_file)
    parts = mid_file.stat().st_size // payloads.PART_BYTES + 1
    assert len(commits) == parts  # parts 2.. one commit each, then part 1 with the message


def test_a_crash_between_pages_neither_loses_nor_doubles(
        ctx: Context, mid_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "PAGE_EVENTS", 100)
    monkeypatch.setattr(streaming, "ROUTE_PAGE", 50)
    real_events, real_deliveries = events.add_events, events.add_deliveries
    calls = {"events": 0, "deliveries": 0}

    def dying(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            if calls[name] == 3:  # the third page, once: the first two are committed
                raise RuntimeError(f"killed while writing {name}")
            return real(*args, **kwargs)
        return run

    monkeypatch.setattr(events, "add_events", dying("events", real_events))
    monkeypatch.setattr(events, "add_deliveries", dying("deliveries", real_deliveries))
    _receive(ctx, mid_file)
    worker = Worker(ctx, "w1")
    # The failed stage is tried again a second later (the stage retry delay); a bound on
    # the wait only, nothing is asserted on time.
    waiting = WorkItem.status.in_(("pending", "claimed"))
    deadline = time.monotonic() + 600
    while _count(ctx.engine, WorkItem, waiting) and time.monotonic() < deadline:
        worker.step() or time.sleep(0.1)
    # Both stages failed at their third page and ran again from the start.
    assert calls["events"] > SMALLER // 100 + 2 and calls["deliveries"] > SMALLER // 50 + 2
    assert _count(ctx.engine, Event) == SMALLER and _count(ctx.engine, Delivery) == SMALLER
    assert _count(ctx.engine, WorkItem, WorkItem.kind == "deliver") == SMALLER
    assert len(ctx.outputs["erp"].written) == SMALLER  # type: ignore[attr-defined]
    assert len(set(ctx.outputs["erp"].written)) == SMALLER  # type: ignore[attr-defined]


def test_a_large_file_is_validated_once_its_map_stage_reads_the_kept_verdicts(
        ctx: Context, mid_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    validations: list[str] = []
    real = validator.validate

    def counted(*args: Any, **kwargs: Any) -> Any:
        validations.append(kwargs.get("path", ""))
        return real(*args, **kwargs)

    monkeypatch.setattr(validator, "validate", counted)
    # The map stage runs in another process's context (nothing of validate's in memory).
    other = Context(ctx.settings, ctx.partners, ctx.engine, outputs=ctx.outputs)
    real_map = streaming.STREAMED["map"]
    monkeypatch.setitem(streaming.STREAMED, "map",
                        lambda c, item, worker: real_map(other, item, worker))
    message_id = _receive(ctx, mid_file)
    Worker(ctx, "w1").run(until_idle=True)
    assert validations == [mid_file.name]  # the validate stage's, not the map stage's
    assert _count(ctx.engine, Event) == SMALLER
    with db.transaction(ctx.engine, write=False) as s:
        assert set_verdicts.recorded(s, message_id)
