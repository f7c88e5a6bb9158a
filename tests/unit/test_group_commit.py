"""Group commit: concurrent submissions are stored in shared batches, each answered alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from canonical.errors import TransientError
from gateway.api import group_commit
from gateway.api.group_commit import GroupCommit

pytestmark = pytest.mark.unit


def test_items_arriving_while_a_batch_is_stored_share_the_next_one() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def store(items: list[int]) -> list[int]:
        seen.append(items)
        if len(seen) == 1:
            release.wait(5)  # the first batch holds the store while the rest queue up
        return [i * 10 for i in items]

    commits = GroupCommit(store)

    async def main() -> list[int]:
        first = asyncio.ensure_future(commits.submit(0))
        while not seen:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(commits.submit(i)) for i in range(1, 20)]
        await asyncio.sleep(0.01)
        release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i * 10 for i in range(20)]
    assert seen == [[0], list(range(1, 20))]
    assert (commits.batches, commits.items) == (2, 20)


@pytest.mark.parametrize("tops_up", [False, True])
def test_a_failing_batch_is_stored_again_item_by_item(tops_up: bool) -> None:
    def store(items: list[int], *more: Callable[[], list[int]]) -> list[int]:
        items = items + (more[0]() if more else [])  # a topped-up one takes in what queued
        if 13 in items:
            raise ValueError(f"cannot store {items}")
        return items

    commits = GroupCommit(store, tops_up=tops_up)

    async def main() -> list[object]:
        return await asyncio.gather(*(commits.submit(i) for i in (11, 12, 13, 14)),
                                    return_exceptions=True)

    got = asyncio.run(main())
    assert got[:2] == [11, 12] and got[3] == 14
    assert isinstance(got[2], ValueError) and "[13]" in str(got[2])


def test_the_thread_ends_when_idle_and_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_commit, "IDLE", 0.05)
    commits = GroupCommit(lambda items: items)
    assert asyncio.run(commits.submit(1)) == 1
    thread = commits._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and commits._thread is None
    assert asyncio.run(commits.submit(2)) == 2


def test_a_busy_store_fails_the_whole_batch_at_once() -> None:
    calls: list[list[int]] = []

    def store(items: list[int]) -> list[int]:
        calls.append(items)
        raise TransientError("the store is busy")

    commits = GroupCommit(store)
    release = threading.Event()
    first_call = threading.Event()
    original = commits._store

    def held(items: list[int]) -> list[int]:
        first_call.set()
        release.wait(5)
        return original(items)

    commits._store = held  # type: ignore[method-assign]

    async def main() -> list[object]:
        first = asyncio.ensure_future(commits.submit(0))
        while not first_call.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(commits.submit(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    got = asyncio.run(main())
    assert all(isinstance(g, TransientError) for g in got)
    assert calls == [[0], [1, 2, 3]]  # not tried again one by one


def test_a_batch_wakes_the_waiting_loop_once() -> None:
    release = threading.Event()
    seen: list[list[int]] = []

    def store(items: list[int]) -> list[int]:
        seen.append(items)
        if len(seen) == 1:
            release.wait(5)
        return [i + 100 for i in items]

    commits = GroupCommit(store)
    wakes: list[int] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        plain = loop.call_soon_threadsafe

        def counted(*args: object, **kwargs: object) -> object:
            wakes.append(1)
            return plain(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        first = asyncio.ensure_future(commits.submit(0))
        while not seen:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(commits.submit(i)) for i in range(1, 9)]
        await asyncio.sleep(0.01)
        release.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i + 100 for i in range(9)]
    assert seen == [[0], list(range(1, 9))]
    assert len(wakes) == 2  # one per batch, not one per item


def test_a_store_that_tops_up_takes_in_what_queued_while_it_waited_for_its_lock() -> None:
    lock = threading.Lock()
    seen: list[list[int]] = []

    def store(items: list[int], more: Callable[[], list[int]]) -> list[int]:
        with lock:  # as SQLite's write lock: taken first, then the queue is drained
            items = items + more()
            seen.append(items)
            return [i * 10 for i in items]

    commits = GroupCommit(store, tops_up=True, max_batch=8)

    async def main() -> list[int]:
        lock.acquire()  # another writer holds the lock: the first batch waits for it
        first = asyncio.ensure_future(commits.submit(0))
        while commits._queue.qsize():  # the thread has taken item 0 and waits
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(commits.submit(i)) for i in range(1, 12)]
        while commits._queue.qsize() < 11:
            await asyncio.sleep(0.001)
        lock.release()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i * 10 for i in range(12)]
    # The first commit took what came while it waited, up to max_batch; the rest next.
    assert seen == [list(range(8)), list(range(8, 12))]
    assert (commits.batches, commits.items) == (2, 12)
