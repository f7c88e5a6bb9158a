"""SQLite with several processes: no lock error reaches a caller (R8), leases survive kills (R3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.store_support import hammer, migrated, r3_scenario, spawn

pytestmark = pytest.mark.unit

# ~10 s keeps the PR suite quick; a longer soak: EDIGW_R8_SECONDS=600.
R8_SECONDS = float(os.environ.get("EDIGW_R8_SECONDS", "10"))


def test_r8_two_processes_writing_sqlite_never_see_a_lock_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrated(url).dispose()
    with spawn().Pool(2) as pool:
        results = pool.starmap(hammer, [(url, R8_SECONDS, "web"), (url, R8_SECONDS, "worker")])
    for steps, errors in results:
        assert errors == []
        assert steps > 50  # both really ran, rather than one starving


def test_r3_a_killed_workers_item_is_taken_back_and_a_live_one_never(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrated(url).dispose()
    lease = 1.0
    got = r3_scenario(url, str(tmp_path), lease=lease, heartbeat_every=lease / 4)
    assert got["live_id"] not in got["taken"]
    assert got["live_exit"] == 0 and got["live_status"] == "done"
    assert got["live_owner"] == "live"
    # Not before its lease ran out (heartbeats every lease/4 until the kill), and soon after
    # (polling and a loaded machine's slack).
    assert lease * 0.5 <= got["taken"][got["dead_id"]] <= lease + 2.0
