"""Crash points for the reliability tests: EDIGW_CRASH_AT names where the process kills itself.

EDIGW_CRASH_AT=after_claim,during_ack_write:0.1 kills the process (SIGKILL, no clean-up)
every time at after_claim and one time in ten at during_ack_write.
"""

from __future__ import annotations

import functools
import os
import random
import signal

POINTS = ("after_claim", "after_download_before_commit", "after_commit_before_archive",
          "after_erp_2xx_before_record", "during_ack_write")


@functools.cache
def _armed() -> dict[str, float]:
    out: dict[str, float] = {}
    for part in os.environ.get("EDIGW_CRASH_AT", "").split(","):
        name, _, chance = part.strip().partition(":")
        if not name:
            continue
        if name not in POINTS:
            raise ValueError(f"EDIGW_CRASH_AT: unknown crash point {name!r} (known: "
                             f"{', '.join(POINTS)})")
        out[name] = float(chance) if chance else 1.0
    return out


def point(name: str) -> None:
    """Die here, without any clean-up, if EDIGW_CRASH_AT arms this point (and the dice say so)."""
    chance = _armed().get(name)
    if chance is not None and random.random() < chance:
        os.kill(os.getpid(), signal.SIGKILL)
