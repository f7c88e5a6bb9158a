"""Group commit: requests that arrive together are stored by one thread in one transaction.

A commit costs a disk flush (SQLite synchronous=FULL, PostgreSQL's WAL flush), so one
commit per request caps requests at the disk's flush rate. Here each request queues its
item and awaits a future; one thread takes everything queued, stores it in one call (one
transaction) and resolves the futures on the event loop. Under load batches grow instead
of requests waiting in line. The thread ends after a few idle seconds and is started
again by the next request, so an idle app holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from canonical.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
IDLE = 5.0  # seconds without work before the thread ends
# An item, the loop of the request waiting for it, and the future it awaits.
_Queued = tuple[T, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class GroupCommit(Generic[T, R]):
    """store(items) -> results (one per item, in order), called with batches of queued items.

    tops_up: store is called as store(items, more) instead, and may call more() once it
    holds what it waits for (SQLite's write lock): more() takes what was queued since (up
    to max_batch in all), and the results then cover items and what more() gave, in order.
    The requests that came while the lock was busy share the commit instead of the next.
    """

    def __init__(self, store: Callable[..., list[R]], max_batch: int = 256,
                 name: str = "edigw-group-commit", *, tops_up: bool = False) -> None:
        self._store = store
        self.tops_up = tops_up
        self.max_batch = max_batch
        self.name = name
        self._queue: queue.SimpleQueue[_Queued[T]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0  # how many store() calls, for tests and benchmarks
        self.items = 0

    async def submit(self, item: T) -> R:
        """Store item with whatever else is queued; its result, or the exception raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._queue.put((item, loop, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
        return await future

    def _work(self) -> None:
        try:
            self._serve()
        finally:
            with self._lock:  # also after an unexpected error: the next submit starts anew
                if self._thread is threading.current_thread():
                    self._thread = None

    def _serve(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():  # else a request came in just now: go on
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[_Queued[T]], *, top_up: bool = True) -> None:
        extra: list[_Queued[T]] = []

        def more() -> list[T]:
            got = []
            while len(batch) + len(extra) < self.max_batch:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                extra.append(queued)
                got.append(queued[0])
            return got

        try:
            items = [item for item, _, _ in batch]
            if self.tops_up:
                results = self._store(items, more if top_up else list)
            else:
                results = self._store(items)
        except Exception as exc:
            batch = batch + extra
            if len(batch) == 1 or isinstance(exc, TransientError):
                # A store that is busy or down now is so for each alone too: all answered.
                _answer([(loop, future, None, exc) for _, loop, future in batch])
                return
            # One bad item must not fail the others: each alone, with its own answer.
            for one in batch:
                self._run([one], top_up=False)
            return
        batch = batch + extra
        self.batches += 1
        self.items += len(batch)
        _answer([(loop, future, result, None)
                 for (_, loop, future), result in zip(batch, results, strict=True)])


def _answer(answers: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any,
                                BaseException | None]]) -> None:
    """Settle the futures on their loops: one wake-up of each loop for the whole batch
    (one per future would wake it, and hand the GIL over, as many times)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any,
                                                        BaseException | None]]] = {}
    for loop, future, result, error in answers:
        by_loop.setdefault(loop, []).append((future, result, error))
    for loop, settled in by_loop.items():
        # A closed loop (RuntimeError) has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away; the item is stored all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
