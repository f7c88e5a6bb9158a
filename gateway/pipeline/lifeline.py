"""A worker process dies with the `edigw run` supervisor that started it.

Should the supervisor be killed outright (SIGKILL, the OOM killer), nothing stops its
workers: they would go on claiming beside the workers of a restarted supervisor, and
no later SIGTERM to the new one would reach them. So a worker asks Linux to send it
SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), and on every system a thread
also watches its parent pid, since an orphan is handed to another parent. Either way the
worker stops as on SIGTERM (after its current item); one still running `grace` seconds
later leaves at once, its claimed items coming back when their leases run out.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
EXIT_ORPHANED = 70


def set_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send sig when the parent dies (Linux); whether it took."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def tie_to(parent_pid: int, on_gone: Callable[[], None], *, grace: float,
           interval: float = 1.0, getppid: Callable[[], int] = os.getppid,
           exit: Callable[[int], object] = os._exit) -> threading.Thread:
    """Call on_gone once parent_pid is no longer this process's parent, then exit after grace.

    Returns the watching thread (a daemon). The parent may have died before this call,
    in which case on_gone is called within one interval.
    """
    set_death_signal(signal.SIGTERM)
    thread = threading.Thread(target=_watch, name="parent-watch", daemon=True,
                              args=(parent_pid, on_gone, grace, interval, getppid, exit))
    thread.start()
    return thread


def _watch(parent_pid: int, on_gone: Callable[[], None], grace: float, interval: float,
           getppid: Callable[[], int], exit: Callable[[int], object]) -> None:
    wait = threading.Event().wait  # a sleep that a test's tiny interval keeps short
    while getppid() == parent_pid:
        wait(interval)
    log.warning("the supervisor (pid %d) is gone; this worker stops", parent_pid)
    on_gone()
    wait(grace)
    log.error("still running %.0f s after the supervisor died; leaving now", grace)
    exit(EXIT_ORPHANED)
