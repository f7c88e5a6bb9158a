"""The pieces of the SFTP channel's fast path that need no server: grouping and the watchdog."""

from __future__ import annotations

import threading

import pytest

from channels import sftp_batch
from channels.sftp_link import Watchdog

pytestmark = pytest.mark.unit


def test_groups_hold_at_most_so_many_files_and_bytes_in_order() -> None:
    files = [(f"/in/{n}", 1000) for n in range(150)]
    groups = sftp_batch.groups(files)
    assert [len(g) for g in groups] == [64, 64, 22]
    assert [f for g in groups for f in g] == files
    big = [("/in/a", 600_000), ("/in/b", 600_000), ("/in/c", 10)]
    assert sftp_batch.groups(big) == [[("/in/a", 600_000)], [("/in/b", 600_000), ("/in/c", 10)]]
    assert sftp_batch.groups([]) == []


def test_a_file_over_the_group_bytes_is_a_group_of_its_own() -> None:
    one = [("/in/x", sftp_batch.GROUP_BYTES * 2)]
    assert sftp_batch.groups(one) == [one]


def test_only_paramikos_client_takes_the_pipelined_path() -> None:
    assert not sftp_batch.supported(object())


def test_watchdogs_fire_each_on_its_own_deadline_and_not_after_their_block() -> None:
    fired = {name: threading.Event() for name in ("long", "short", "done")}
    # One thread serves them all: a later, shorter watchdog must wake it earlier.
    with Watchdog(30, fired["long"].set) as long_dog:
        with Watchdog(0.05, fired["short"].set) as short_dog:
            assert fired["short"].wait(10)
        with Watchdog(0.2, fired["done"].set) as done_dog:
            pass  # finished in time: disarmed
        assert not fired["done"].wait(0.5)
    assert (short_dog.fired, done_dog.fired, long_dog.fired) == (True, False, False)
    assert not fired["long"].is_set()


def test_many_watchdogs_in_a_row_start_no_thread_each() -> None:
    with Watchdog(30, lambda: None):
        pass
    before = threading.active_count()
    for _ in range(200):
        with Watchdog(30, lambda: None):
            pass
    assert threading.active_count() == before
