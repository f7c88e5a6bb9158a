"""Crashes and outages (issue #4; RELIABILITY.md R1, R2, R5), on SQLite and PostgreSQL.

`edigw run` runs as a subprocess (serve mode: the runner starts a dead worker again) with
short leases (3 s, heartbeat 1 s; R2 1.5 s and 0.4 s); the ERP is the simulator over HTTP. After each run the
store and the simulator must agree: every input delivered or dead-lettered, each event id
applied once, extra requests no more than the kills, no work item left, one 997 per group.

With EDIGW_FULL_RELIABILITY=1 (CI sets it) R1 runs at the size RELIABILITY.md and issue #4
state, 2,000 sets and 50 kills, and R5's outage lasts a minute; without it (a developer's
quick run) R1 has 500 sets and 15 kills and the outage 20 s (EDIGW_R5_OUTAGE overrides).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canonical import envelope
from channels.erp_sim import SimulatorHandle, running_simulator
from tests.crash_support import Gateway, Store, crash_site, inbox_files, make_850s
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures
from tests.pipeline_support import Site

pytestmark = pytest.mark.acceptance

FIRST_ISA13 = 500
FULL = os.environ.get("EDIGW_FULL_RELIABILITY") == "1"
R5_OUTAGE = float(os.environ.get("EDIGW_R5_OUTAGE", "60" if FULL else "20"))
# R1: files of 100 sets, and kills.
R1_FILES, R1_KILLS = (20, 50) if FULL else (5, 15)


@dataclass
class Run:
    """One scenario's inputs and what happened to them."""

    site: Site
    files: int
    sets_per_file: int
    kills: int = 0
    seconds: float = 0.0
    notes: dict[str, object] = field(default_factory=dict)

    @property
    def sets(self) -> int:
        return self.files * self.sets_per_file

    def expected_ids(self) -> set[str]:
        return {envelope.event_id("acme", "purchase_order", {
            "isa13": f"{FIRST_ISA13 + f:09d}", "gs06": str(FIRST_ISA13 + f), "st02": f"{n:04d}"})
            for f in range(self.files) for n in range(1, self.sets_per_file + 1)}


def _drop(site: Site, files: int, sets: int) -> None:
    for f in range(files):
        site.drop("acme", make_850s(FIRST_ISA13 + f, sets), name=f"po-{f:03d}.edi")


def _drained(run: Run, store: Store) -> bool:
    if inbox_files(run.site):
        return False
    c = store.counts()
    return (c["messages"] >= run.files and c["waiting"] == 0 and c["acks_unsent"] == 0)


def _wait_drained(run: Run, gw: Gateway, store: Store, timeout: float) -> None:
    """Keep the runner up until the store is quiet twice in a row (or fail after timeout)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        gw.keep_alive()
        quiet = quiet + 1 if _drained(run, store) else 0
        if quiet >= 2:
            return
        time.sleep(0.5)
    pytest.fail(f"not drained after {timeout:.0f} s: {store.counts()}; items "
                f"{[i for i in store.items() if i[1] in ('pending', 'claimed')][:20]}")


def _start(site: Site, workers: int, env: dict[str, str] | None = None,
           ) -> tuple[Gateway, Store, float]:
    """Start `edigw run` on the site; the gateway, its store once migrated, and when it began."""
    gw = Gateway(site, workers, env=env)
    started = time.monotonic()
    gw.start()
    return gw, _open_store(site.store_url, gw), started


def _open_store(url: str, gw: Gateway) -> Store:
    # The runner migrates the store; wait for its tables.
    deadline = time.monotonic() + 60
    while True:
        store = Store(url)
        try:
            store.counts()
            return store
        except Exception:
            store.close()
            if time.monotonic() > deadline:
                raise
            gw.keep_alive()
            time.sleep(0.2)


def _check(run: Run, sim: SimulatorHandle, store: Store, *, extra_allowed: int) -> None:
    """R1's targets: 0 lost, 1 effect per event id, extra requests <= kills, nothing stuck."""
    c = store.counts()
    stats = sim.stats()
    effects = sim.effects()
    ids = [e["event_id"] for e in effects]
    where = f"{c}; simulator {stats}; kills {run.kills}; notes {run.notes}"
    assert c["messages"] == run.files, where  # a re-read file is the same message
    assert c["waiting"] == 0, where
    assert c["deliveries"] == run.sets, where
    assert c["delivered"] + c["dead_deliveries"] == run.sets, where
    assert store.dead_letters() == [], where  # nothing here deserves one
    assert len(ids) == len(set(ids)) == run.sets, where
    assert set(ids) == run.expected_ids(), where
    assert set(store.attempts()) == set(ids), where
    assert stats["requests"] - stats["effects"] <= extra_allowed, where
    acks = sorted((run.site.root / "var" / "outbox" / "acme").glob("997_*.x12"))
    assert len(acks) == run.files, [a.name for a in acks]  # one group per file
    for a in acks:
        assert "AK9*A*1*1*1~" in a.read_text("ascii") or "AK9*A*" in a.read_text("ascii")


# ---- R1: SIGKILL a worker at random moments while the sets flow ---------------------------

def _r1(root: Path, *, files: int, sets: int, kills: int, workers: int,
        store_url: str | None = None, seed: int = 4) -> Run:
    rng = random.Random(seed)
    with running_simulator() as sim:
        site = crash_site(root, sim.events_url, store_url=store_url, max_claims=10)
        run = Run(site, files, sets)
        _drop(site, files, sets)
        gw, store, started = _start(site, workers)
        try:
            while run.kills < kills and not _drained(run, store):
                time.sleep(rng.uniform(0.2, 1.2))
                if gw.kill_worker(rng.choice) is not None:
                    run.kills += 1
            run.notes["killed_during_flow"] = run.kills
            _wait_drained(run, gw, store, timeout=300)
            run.seconds = time.monotonic() - started
            run.notes["stats"] = sim.stats()
            print(f"R1 {workers} worker(s) {run.sets} sets: {run.kills} kills, "
                  f"{sim.stats()['requests']} requests, {len(sim.effects())} effects, "
                  f"{run.seconds:.1f} s")
            assert run.kills == kills, "the sets were through before all the kills"
            _check(run, sim, store, extra_allowed=run.kills)
        finally:
            gw.stop()
            store.close()
    return run


def test_r1_kill_the_worker_at_random_moments(tmp_path: Path) -> None:
    _r1(tmp_path, files=R1_FILES, sets=100, kills=R1_KILLS, workers=1)


@pytest.mark.integration
def test_r1_on_postgresql_two_workers(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    _r1(tmp_path, files=R1_FILES, sets=100, kills=R1_KILLS, workers=2, store_url=pg_url)


# ---- R2: the named crash points, each firing several times --------------------------------

# Probabilities chosen so that each point fires 5+ times over 200 sets (see _r2).
CRASH_POINTS = {
    "after_claim": 0.1,  # 120+ claims in batches of R2_BATCH (a died-on item alone): ~12
    "after_download_before_commit": 0.3,  # in the runner's poll: the runner dies
    "after_commit_before_archive": 0.3,  # the file stays and is read again
    "after_erp_2xx_before_record": 0.05,  # 200 deliveries
    "during_ack_write": 0.5,  # one 997 file per message
}
RUNNER_POINTS = ("after_download_before_commit", "after_commit_before_archive")
# Claims of 2 items, not the default 50, and files received one per commit, not 100, so
# that a run has enough claims and receive commits for each point to fire 5+ times at a
# low chance (R1 runs with the defaults). (At 5 items and 0.12, CI once saw 1 fire.)
R2_BATCH = 2


def _r2(root: Path, point: str, *, workers: int, store_url: str | None = None) -> Run:
    # The runner's points fire per file, each file until it gets through (a geometric
    # count): 40 files of 5 sets keep the total near 17 and rarely under 5.
    files, sets = (40, 5) if point in RUNNER_POINTS else (10, 20)
    with running_simulator() as sim:
        # max_claims high: R4 (an item that kills every worker) is another test.
        site = crash_site(root, sim.events_url, store_url=store_url, max_claims=40,
                          batch=R2_BATCH, receive_batch=1, lease=1.5, heartbeat=0.4)
        run = Run(site, files, sets)
        _drop(site, files, sets)
        gw, store, started = _start(site, workers,
                                    env={"EDIGW_CRASH_AT": f"{point}:{CRASH_POINTS[point]}"})
        try:
            _wait_drained(run, gw, store, timeout=240)
            run.seconds = time.monotonic() - started
            fired = gw.runner_deaths if point in RUNNER_POINTS else gw.worker_deaths()
            # A runner that dies takes its workers with it (we kill its group): kills too.
            run.kills = gw.worker_deaths() + gw.runner_deaths * workers
            run.notes.update(fired=fired, runner_deaths=gw.runner_deaths)
            print(f"R2 {point} {workers} worker(s): fired {fired}, {sim.stats()['requests']} "
                  f"requests, {len(sim.effects())} effects, {run.seconds:.1f} s")
            assert fired >= 5, f"{point} fired {fired} times"
            _check(run, sim, store, extra_allowed=run.kills)
            if point == "after_commit_before_archive":
                # Read again after the commit: recognised as the message already received.
                assert gw.log_text().count(": repeat of message") >= 1
            if point == "after_erp_2xx_before_record":
                assert sim.stats()["replays"] >= 1  # the repeat was answered as a replay
        finally:
            gw.stop()
            store.close()
    return run


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_r2_crash_point(tmp_path: Path, point: str) -> None:
    _r2(tmp_path, point, workers=1)


@pytest.mark.integration
@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_r2_crash_point_on_postgresql(tmp_path: Path, pg_url: str, point: str) -> None:  # noqa: F811
    _r2(tmp_path, point, workers=2, store_url=pg_url)


# ---- R5: the ERP answers 503 for a while; a worker is killed meanwhile ----------------------

R5_RETRY = {"maximum_redeliveries": 40, "redelivery_delay": 0.5, "back_off_multiplier": 2.0,
            "maximum_redelivery_delay": 4.0, "max_age": 3600, "jitter": 0.5}
RETRY_AFTER = 1


def _r5(root: Path, outage: float, *, workers: int, store_url: str | None = None) -> Run:
    files, sets = 4, 25
    with running_simulator() as sim:
        site = crash_site(root, sim.events_url, store_url=store_url, retry=R5_RETRY)
        run = Run(site, files, sets)
        sim.set_fault("503", retry_after=RETRY_AFTER, seconds=outage)
        outage_ends = time.monotonic() + outage
        _drop(site, files, sets)
        gw, store, started = _start(site, workers)
        try:
            time.sleep(max(0.0, outage_ends - time.monotonic()) / 2)
            before = store.attempts()
            assert gw.kill_worker(random.Random(5).choice) is not None
            run.kills = 1
            time.sleep(max(0.0, outage_ends - time.monotonic() - 0.5))
            during = store.attempts()
            assert sim.stats()["effects"] == 0, "an effect during the outage"
            _wait_drained(run, gw, store, timeout=outage + 120)
            after_outage = time.monotonic() - outage_ends
            run.seconds = time.monotonic() - started
            after = store.attempts()
            stats = sim.stats()
            run.notes.update(recovered_in=round(after_outage, 1), max_attempts=max(after.values()),
                             stats=stats)
            print(f"R5 {workers} worker(s), outage {outage:.0f} s: drained "
                  f"{after_outage:.1f} s after it, {stats['requests']} requests, "
                  f"{stats['effects']} effects, attempts max {max(after.values())} "
                  f"(before the kill {max(before.values(), default=0)}), {run.seconds:.1f} s")
            _check(run, sim, store, extra_allowed=stats["by_status"].get("503", 0) + 1)
            assert stats["requests"] - stats["effects"] - stats["by_status"].get("503", 0) <= 1
            # Delivered soon after: the longest back-off plus the time to deliver them all.
            assert after_outage < R5_RETRY["maximum_redelivery_delay"] + 30, run.notes
            # Bounded by the policy, and kept across the kill (never reset).
            assert max(after.values()) <= R5_RETRY["maximum_redeliveries"] + 1
            for key, n in before.items():
                assert during[key] >= n and after[key] >= during[key], key
            assert sum(during.values()) > sum(before.values())  # the new worker went on trying
            # Each attempt the store counts reached the ERP (a kill may hide one more).
            per_key: dict[str, list] = defaultdict(list)
            for r in sim.state.request_list():
                per_key[r["key"]].append(r)
            for key, n in after.items():
                assert n <= len(per_key[key]) <= n + 1, (key, n, per_key[key])
            # Retry-After honoured: nothing for a key sooner than that after its 503.
            for key, reqs in per_key.items():
                reqs.sort(key=lambda r: r["at"])
                for a, b in itertools.pairwise(reqs):
                    if a["status"] == 503:
                        assert b["at"] - a["at"] >= RETRY_AFTER, (key, a, b)
        finally:
            gw.stop()
            store.close()
    return run


def test_r5_erp_503_for_a_while_with_a_kill(tmp_path: Path) -> None:
    _r5(tmp_path, R5_OUTAGE, workers=1)


@pytest.mark.integration
def test_r5_on_postgresql(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    _r5(tmp_path, R5_OUTAGE, workers=2, store_url=pg_url)
