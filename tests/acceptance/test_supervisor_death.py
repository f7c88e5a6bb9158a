"""Workers die with their supervisor (issue #11, item 2).

`edigw run --workers 2` is started as a real process; its supervisor is SIGKILLed (no
clean-up, as the OOM killer would). Its workers must then exit on their own, rather than
go on claiming beside the workers of a restarted supervisor.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.crash_support import Gateway
from tests.pipeline_support import Site

pytestmark = pytest.mark.acceptance

# Generous bounds for a loaded machine: they catch workers that never exit, not slow ones.
START_WAIT, EXIT_WAIT = 120.0, 60.0


def _dead(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_exit_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    site = Site(tmp_path, workers={"lease_seconds": 5, "heartbeat_seconds": 1,
                                   "idle_sleep": 0.2})
    gw = Gateway(site, workers=2)
    gw.start()
    try:
        deadline = time.monotonic() + START_WAIT
        while len(gw.worker_pids()) < 2:
            assert gw.alive(), gw.log_text()
            assert time.monotonic() < deadline, f"workers did not start: {gw.log_text()}"
            time.sleep(0.1)
        assert gw.proc is not None
        workers = [psutil.Process(pid) for pid in gw.worker_pids()]
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait()
        deadline = time.monotonic() + EXIT_WAIT
        while not all(_dead(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p.pid for p in workers if not _dead(p)]
        assert left == [], f"workers {left} outlived their supervisor"
    finally:
        gw.stop()
