"""A worker: claim a batch of items under a lease, heartbeat while their stages run, complete or fail each.

A batch's validate items of small messages (a payload in one part) are fused (see fused):
read with the claim, validated, mapped and routed in memory with no transaction open,
then written in one short transaction of a fixed number of set-based statements that also
completes them; no map or route items in between. A message whose computation raises is
failed on its own; should the write fail, the items run again one at a time through the
stages. A lone validate item, and the map and route items of replays, go through the
one-by-one stages (stages.TRANSACTIONAL): the items of one stage in a batch run in one
transaction, each in its own savepoint, and are completed in its one commit. An item
whose stage raises is rolled back to its savepoint alone; the worker then records the
failure in a new transaction: a passing failure (TransientError, or a bug) is tried again
later, up to the configured stage retries; a PermanentError is dead-lettered at once with
its stage. Should the batch's transaction itself fail, its items are run again one at a
time. Outbound items (deliver, ack) run one by one, each recording its own outcome (see
outbound). The validate, map and route items of a large message (a payload kept in
several parts) run one by one too, each in short transactions of its own (see streaming).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from canonical.errors import PermanentError
from gateway.chains import deadlines as chain_deadlines
from gateway.pipeline import crash, fused, outbound, parking, stages, streaming
from gateway.pipeline.context import KINDS, Context
from gateway.store import claims, db, messages, payloads
from gateway.store.models import MessageStatus, WorkItem
from retry import policy

log = logging.getLogger(__name__)
# How long one transaction of a batch may run before the rest goes on in the next.
# An ack goes to the partner (its SFTP outbox, or a folder it collects from), whose server
# may be down for a while, as an ERP may: retried as patiently as a delivery by default
# (10 times over about a quarter of an hour), then dead-lettered at the ack stage.
ACK_RETRY = policy.RetryPolicy()
BATCH_SECONDS = 1.0


class Heartbeat:
    """A thread that extends the leases on a batch's items until stopped, and notes lost ones."""

    def __init__(self, ctx: Context, worker_id: str, item_ids: Sequence[int]) -> None:
        self.ctx, self.worker_id = ctx, worker_id
        self.open = set(item_ids)  # claimed and not yet finished
        self.lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{min(item_ids)}",
                                        daemon=True)

    def finished(self, ids: Sequence[int]) -> None:
        """These items are done or failed: no more beats for them."""
        with self._lock:
            self.open.difference_update(ids)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        w = self.ctx.settings.workers
        while not self._stop.wait(w.heartbeat_seconds):
            with self._lock:
                ids = sorted(self.open)
            if not ids:
                continue
            try:
                with db.transaction(self.ctx.engine) as s:
                    held = claims.heartbeat(s, self.worker_id, ids, w.lease_seconds)
            except Exception as exc:  # try again at the next beat
                log.warning("heartbeat of items %s failed: %s", ids, exc)
                continue
            with self._lock:
                gone = self.open.intersection(ids) - held
            if gone:
                # Their completion will fail with LeaseLost and roll their stage back.
                self.lost = True
                log.warning("items %s: lease lost to another worker", sorted(gone))


def _stage_order(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _large(session: Session, items: Sequence[WorkItem]) -> set[int]:
    """The ids of the transactional items whose message is large: those stream."""
    mine = [i for i in items if i.kind in streaming.STREAMED and i.message_id is not None]
    if not mine:
        return set()
    large = payloads.large_messages(session, list({i.message_id for i in mine}))
    return {i.id for i in mine if i.message_id in large}


def _load_fused(session: Session, items: Sequence[WorkItem]
                ) -> tuple[dict[int, Any], dict[str, fused.Handed]] | None:
    """The fused batch's messages, or None (then they go one by one) should reading them
    fail: in a savepoint, so that the rest of the read goes on."""
    try:
        with session.begin_nested():
            return fused.load(session, items)
    except Exception as exc:
        log.warning("loading %d messages for a fused batch failed (%s: %s); they go one "
                    "by one", len(items), type(exc).__name__, exc)
        return None


class Worker:
    """Claims and runs work items of some kinds until told to stop (or, once, until idle)."""

    def __init__(self, ctx: Context, worker_id: str | None = None,
                 kinds: Sequence[str] = KINDS) -> None:
        self.ctx = ctx
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"
        self.kinds = tuple(kinds)
        self.stopping = threading.Event()
        self.done = 0
        # What BATCH_SECONDS is measured with; tests put in a clock of their own.
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], datetime] = db.utcnow  # the wall clock deadlines are due by

    def install_signals(self) -> None:
        """Stop after the current item on SIGTERM or SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(self, *, until_idle: bool = False) -> int:
        """Work until stopped (or, with until_idle, until no work is ready or running); items done."""
        idle_sleep = self.ctx.settings.workers.idle_sleep
        while not self.stopping.is_set():
            chain_deadlines.fire_due(self.ctx, self.now(), every=1.0)  # PO chains' missed deadlines
            if self.step():
                continue
            if until_idle and not self.busy():
                break
            self.stopping.wait(min(idle_sleep, 0.1) if until_idle else idle_sleep)
        return self.done

    def busy(self) -> bool:
        """Whether any item is ready now or claimed by someone (and may enqueue more)."""
        with db.transaction(self.ctx.engine, write=False) as s:
            return claims.busy(s, self.kinds)

    def step(self) -> bool:
        """Claim and run a batch of items; False when none was ready."""
        w = self.ctx.settings.workers
        with db.transaction(self.ctx.engine) as s:
            got = claims.claim(s, self.kinds, self.id, w.lease_seconds, w.batch,
                               max_claims=w.max_claims)
        if not got:
            return False
        crash.point("after_claim")
        large: set[int] = set()
        loaded = None
        try:
            # Read once the claim is committed, in a read transaction: on SQLite the one
            # write lock (which the webhook intake waits for) is held for the claim only.
            if any(i.kind in streaming.STREAMED for i in got):
                with db.transaction(self.ctx.engine, write=False) as s:
                    large = _large(s, got)
                    fusing = [i for i in got if i.kind == "validate" and i.id not in large]
                    loaded = _load_fused(s, fusing) if len(fusing) > 1 else None
        except Exception as exc:  # the store failed just now: each item is tried again later
            for item in got:
                self.failed(item, exc)
            return True
        with Heartbeat(self.ctx, self.id, [i.id for i in got]) as beat:
            # In pipeline order, so a batch's validate items come before its deliveries.
            for kind in sorted({i.kind for i in got}, key=_stage_order):
                items = [i for i in got if i.kind == kind]
                stage = stages.TRANSACTIONAL.get(kind)
                for item in (i for i in items if i.id in large):
                    self.run_streamed(item)
                    beat.finished([item.id])
                items = [i for i in items if i.id not in large]
                if not items:
                    continue
                if kind == "validate" and loaded is not None:
                    self.run_fused(items, *loaded)
                elif stage is not None and len(items) > 1:
                    self.run_batch(stage, items)
                elif kind in outbound.BATCHED and len(items) > 1:
                    # deliver and ack: the batch's effects together, one record.
                    self.run_effects(outbound.BATCHED[kind], items)
                else:
                    for item in items:
                        self.run_one(item)
                beat.finished([i.id for i in items])
        self.done += len(got)
        return True

    def run_streamed(self, item: WorkItem) -> None:
        """A large message's stage, in short transactions of its own (see streaming)."""
        try:
            streaming.STREAMED[item.kind](self.ctx, item, self.id)
        except claims.LeaseLost as exc:
            log.warning("%s", exc)  # another worker has it now; it runs the stage again
        except Exception as exc:
            self.failed(item, exc)

    def run_one(self, item: WorkItem, loaded: outbound.Loaded | None = None) -> None:
        """Run one item's stage and record how it ended (a delivery may come loaded)."""
        try:
            if loaded is not None:
                outbound.deliver(self.ctx, item, loaded)
            else:
                self.run_stage(item)
        except claims.LeaseLost as exc:
            log.warning("%s", exc)  # another worker has it now; our step rolled back
        except Exception as exc:  # every failure is recorded, none kills the loop
            self.failed(item, exc)

    def run_fused(self, items: Sequence[WorkItem], rows: dict[int, Any],
                  numbers: dict[str, fused.Handed]) -> None:
        """Small messages' validate items (their messages loaded with the claim: rows, and
        their partners' next control numbers), validated, mapped and routed in memory,
        then written a chunk at a time, each chunk in one short transaction (see fused).

        A message whose computation raises fails on its own; a chunk whose write fails
        runs again one item at a time, by the one-by-one stages.
        """
        failures: list[tuple[WorkItem, Exception]] = []
        chunk: list[fused.Computed] = []
        size = 0
        for n, item in enumerate(items):
            row = rows.get(item.message_id) if item.message_id is not None else None
            try:
                if row is None:
                    raise stages.MissingInput(f"work item {item.id} ({item.kind}): no message "
                                              f"{item.message_id}")
                chunk.append(fused.compute(self.ctx, item, row, numbers))
                size += len(row.data)
            except Exception as exc:  # this message fails alone, the others go on
                failures.append((item, exc))
            if chunk and (size >= fused.CHUNK_BYTES or n == len(items) - 1):
                self._write_fused(chunk, numbers)
                chunk, size = [], 0
        for item, exc in failures:
            self.failed(item, exc)

    def _write_fused(self, chunk: list[fused.Computed], numbers: dict[str, fused.Handed]) -> None:
        failure: Exception | None = None
        try:
            with db.transaction(self.ctx.engine) as s:
                fused.write(self.ctx, s, self.id, chunk, numbers)
        except Exception as exc:
            failure = exc
        if failure is not None:  # out of the except: the items' own errors carry no trace of it
            self._batch_failed([c.item for c in chunk], failure)

    def run_batch(self, stage: stages.Stage, items: Sequence[WorkItem]) -> None:
        """Items of one transactional stage in one transaction, a savepoint each, one commit.

        A transaction is closed after BATCH_SECONDS and the rest of the items go on in the
        next: on SQLite a writer holds the only write lock, and a batch of large files must
        not keep the API and the other workers waiting past their busy timeout.
        """
        todo = list(items)
        while todo:
            todo = self._run_some(stage, todo)

    def _run_some(self, stage: stages.Stage, items: list[WorkItem]) -> list[WorkItem]:
        """Run items in one transaction until time is up; the items left for the next."""
        failures: list[tuple[WorkItem, Exception]] = []
        started = self.clock()
        taken = items
        try:
            with db.transaction(self.ctx.engine) as s:
                done = []
                for n, item in enumerate(items):
                    if n and self.clock() - started > BATCH_SECONDS:
                        taken = items[:n]
                        break
                    current = claims.load(s, item.id)
                    try:
                        with s.begin_nested():
                            stage(self.ctx, s, current)
                    except Exception as exc:  # this item's work is undone, the others stand
                        failures.append((item, exc))
                        continue
                    done.append(item.id)
                claims.complete(s, self.id, done)
        except Exception as exc:
            batch_error = exc
        else:
            batch_error = None
        if batch_error is not None:  # out of the except: see _write_fused
            self._batch_failed(taken, batch_error)
        else:
            for item, exc in failures:
                self.failed(item, exc)
        return items[len(taken):]

    def run_effects(self, effect: Callable[[Context, Sequence[WorkItem]], None],
                    items: Sequence[WorkItem]) -> None:
        """Outbound items done together; should that fail, each on its own."""
        try:
            effect(self.ctx, items)
        except Exception as exc:
            self._batch_failed(items, exc)

    def _batch_failed(self, items: Sequence[WorkItem], exc: Exception) -> None:
        """A batch failed as a whole: lost to another worker, or each item on its own, once more."""
        if isinstance(exc, claims.LeaseLost):
            log.warning("%s; the batch rolled back", exc)
            return
        log.warning("a batch of %d %s items failed (%s: %s); running them one by one",
                    len(items), items[0].kind, type(exc).__name__, exc)
        for item in items:
            self.run_one(item)

    def run_stage(self, item: WorkItem) -> None:
        """Run the item's stage: in one transaction with its completion, or as an outbound effect."""
        effect = outbound.EFFECTS.get(item.kind)
        if effect is not None:
            effect(self.ctx, item)
            return
        stage = stages.TRANSACTIONAL.get(item.kind)
        if stage is None:
            raise PermanentError(f"work item {item.id}: no stage {item.kind!r}")
        with db.transaction(self.ctx.engine) as s:
            current = claims.load(s, item.id)
            stage(self.ctx, s, current)
            claims.complete(s, self.id, [item.id])

    def failed(self, item: WorkItem, error: Exception) -> None:
        """Record a stage's failure: retry later, or dead-letter it with its stage."""
        now = db.utcnow()
        # A purchase order goes to the partner's outbox as an ack does: as patiently.
        rule = ACK_RETRY if item.kind in ("ack", "send") else policy.RetryPolicy(
            maximum_redeliveries=self.ctx.settings.workers.stage_retries,
            redelivery_delay=1.0, maximum_redelivery_delay=60.0, max_age=None)
        decision = policy.decide(rule, max(item.attempts, 1), error, now,
                                 item.created_at or now)
        text = parking.describe(error)
        log.log(logging.WARNING if isinstance(decision, policy.Retry) else logging.ERROR,
                "%s item %s: %s", item.kind, item.id, text, exc_info=not isinstance(
                    error, PermanentError))
        try:
            with db.transaction(self.ctx.engine) as s:
                if isinstance(decision, policy.Retry):
                    claims.fail(s, self.id, item.id, text, run_after=decision.at)
                    return
                parking.park(s, stage=item.kind, reason=str(error) or text,
                             message_id=item.message_id, delivery_id=item.delivery_id,
                             work_item_id=item.id, error=error, attempts=item.attempts)
                if item.kind in ("validate", "map", "route"):
                    messages.set_status(s, item.message_id, MessageStatus.DEAD)
                claims.fail(s, self.id, item.id, text)
        except claims.LeaseLost as exc:
            log.warning("%s", exc)
        except Exception:  # the lease runs out and the item is taken back
            log.exception("could not record the failure of item %s", item.id)

