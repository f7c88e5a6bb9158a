"""A worker killed after a batch's append to the ERP file and before the store's record
(issue #12 item 4): the next run records the batch without writing any event id twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from canonical import envelope
from gateway.store import db
from gateway.store.models import Delivery
from tests.crash_support import make_850s
from tests.pipeline_support import Site

pytestmark = pytest.mark.acceptance

FILES, SETS = 3, 8


def _run_once(site: Site, env: dict[str, str]) -> int:
    """`edigw run --once` as a process of its own, so that a crash point kills only it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--once", "--config", str(site.config)],
        cwd=site.root, env={**os.environ, **env}, capture_output=True, timeout=300).returncode


def test_a_kill_between_the_append_and_the_record_writes_no_id_twice(tmp_path: Path) -> None:
    site = Site(tmp_path)  # the default destination: var/erp/events.jsonl
    for f in range(FILES):
        site.drop("acme", make_850s(800 + f, SETS), name=f"po-{f}.edi")
    # The first event's receipt: the whole batch is in the file, fsynced, nothing recorded.
    assert _run_once(site, {"EDIGW_CRASH": "after_erp_2xx_before_record:1"}) == -9
    appended = [e["id"] for e in site.events()]
    assert appended  # the kill came after the append
    engine = db.make_engine(site.store_url)
    try:
        with db.transaction(engine, write=False) as s:
            before = {d.event_id: d.status for d in s.scalars(select(Delivery))}
        assert all(before[i] == "pending" for i in appended)  # ... and before the record
        assert _run_once(site, {}) == 0
        with db.transaction(engine, write=False) as s:
            after = {d.event_id: d.status for d in s.scalars(select(Delivery))}
    finally:
        engine.dispose()
    ids = [e["id"] for e in site.events()]
    twice = {i: n for i, n in Counter(ids).items() if n > 1}
    assert not twice, twice
    expected = {envelope.event_id("acme", "purchase_order", {
        "isa13": f"{800 + f:09d}", "gs06": str(800 + f), "st02": f"{n:04d}"})
        for f in range(FILES) for n in range(1, SETS + 1)}
    assert set(ids) == expected and set(after) == expected
    assert set(after.values()) == {"delivered"}
