"""A worker's tie to its supervisor: the parent-pid watch that works on every system."""

from __future__ import annotations

import itertools
import threading

import pytest

from gateway.pipeline import lifeline

pytestmark = pytest.mark.unit


def test_when_the_parent_changes_the_worker_stops_then_leaves_after_the_grace() -> None:
    parents = itertools.chain([100, 100, 100], itertools.repeat(1))  # reparented to init
    stopped = threading.Event()
    exits: list[int] = []
    thread = lifeline.tie_to(100, stopped.set, grace=0.01, interval=0.001,
                             getppid=lambda: next(parents), exit=exits.append)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert stopped.is_set() and exits == [lifeline.EXIT_ORPHANED]


def test_while_the_parent_lives_nothing_happens() -> None:
    calls = itertools.count()
    stopped = threading.Event()

    def parent() -> int:
        next(calls)
        return 100

    thread = lifeline.tie_to(100, stopped.set, grace=0.01, interval=0.001, getppid=parent)
    while next(calls) < 50:  # the watch has looked many times
        thread.join(timeout=0.01)
    assert thread.is_alive() and not stopped.is_set()


def test_a_parent_gone_before_the_tie_is_noticed() -> None:
    stopped = threading.Event()
    exits: list[int] = []
    thread = lifeline.tie_to(100, stopped.set, grace=0, interval=0.001, getppid=lambda: 1,
                             exit=exits.append)
    thread.join(timeout=60)
    assert stopped.is_set() and exits == [lifeline.EXIT_ORPHANED]
