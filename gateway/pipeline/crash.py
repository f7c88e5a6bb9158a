"""Crash points for the reliability tests: EDIGW_CRASH names where, and on which pass, a process kills itself.

EDIGW_CRASH=after_claim:10,during_ack_write:2 kills the process (SIGKILL, no clean-up) the
10th time it passes after_claim and the 2nd time it passes during_ack_write; a bare name
means the first pass. Passes are counted per process, so a restarted process dies again
after as many more: over W passes of a point a test sees about W/N deaths, every run the
same (no dice, so a test asserting a number of deaths cannot fail by chance).
"""

from __future__ import annotations

import collections
import functools
import os
import signal

POINTS = ("after_claim", "after_download_before_commit", "after_commit_before_archive",
          "after_erp_2xx_before_record", "during_ack_write", "after_commit_before_answer",
          "after_send_before_record")
VARIABLE = "EDIGW_CRASH"

_passes: collections.Counter[str] = collections.Counter()


@functools.cache
def _armed() -> dict[str, int]:
    """The armed points and the pass on which each fires, from the environment."""
    out: dict[str, int] = {}
    for part in os.environ.get(VARIABLE, "").split(","):
        name, _, nth = part.strip().partition(":")
        if not name:
            continue
        if name not in POINTS:
            raise ValueError(f"{VARIABLE}: unknown crash point {name!r} (known: "
                             f"{', '.join(POINTS)})")
        if nth and not (nth.isascii() and nth.isdigit() and int(nth) >= 1):
            raise ValueError(f"{VARIABLE}: {part.strip()!r}: the pass must be a whole "
                             f"number from 1")
        out[name] = int(nth) if nth else 1
    return out


def point(name: str) -> None:
    """Die here, without any clean-up, if EDIGW_CRASH arms this point and this is its pass."""
    nth = _armed().get(name)
    if nth is None:
        return
    _passes[name] += 1
    if _passes[name] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
