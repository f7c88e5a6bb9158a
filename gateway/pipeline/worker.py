"""A worker: claim an item under a lease, heartbeat while its stage runs, complete or fail it.

A stage that raises is rolled back whole; the worker then records the failure in a new
transaction: a passing failure (TransientError, or a bug) is tried again later, up to
the configured stage retries; a PermanentError is dead-lettered at once with its stage.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
from collections.abc import Sequence

from sqlalchemy import func, select

from canonical.errors import PermanentError
from gateway.pipeline import crash, outbound, parking, stages
from gateway.pipeline.context import KINDS, Context
from gateway.store import claims, db
from gateway.store.models import MessageStatus, WorkItem, WorkStatus
from retry import policy

log = logging.getLogger(__name__)


class Heartbeat:
    """A thread that extends the lease on one item until stopped, and notes if it was lost."""

    def __init__(self, ctx: Context, worker_id: str, item_id: int) -> None:
        self.ctx, self.worker_id, self.item_id = ctx, worker_id, item_id
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{item_id}",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        w = self.ctx.settings.workers
        while not self._stop.wait(w.heartbeat_seconds):
            try:
                with db.transaction(self.ctx.engine) as s:
                    held = claims.heartbeat(s, self.worker_id, [self.item_id], w.lease_seconds)
            except Exception as exc:  # try again at the next beat
                log.warning("heartbeat of item %s failed: %s", self.item_id, exc)
                continue
            if self.item_id not in held:
                # Its completion will fail with LeaseLost and roll the stage back.
                self.lost = True
                log.warning("item %s: lease lost to another worker", self.item_id)
                return


class Worker:
    """Claims and runs work items of some kinds until told to stop (or, once, until idle)."""

    def __init__(self, ctx: Context, worker_id: str | None = None,
                 kinds: Sequence[str] = KINDS) -> None:
        self.ctx = ctx
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{random.randrange(16**6):06x}"
        self.kinds = tuple(kinds)
        self.stopping = threading.Event()
        self.done = 0

    def install_signals(self) -> None:
        """Stop after the current item on SIGTERM or SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())

    def run(self, *, until_idle: bool = False) -> int:
        """Work until stopped (or, with until_idle, until no work is ready or running); items done."""
        idle_sleep = self.ctx.settings.workers.idle_sleep
        while not self.stopping.is_set():
            if self.step():
                continue
            if until_idle and not self.busy():
                break
            self.stopping.wait(min(idle_sleep, 0.1) if until_idle else idle_sleep)
        return self.done

    def busy(self) -> bool:
        """Whether any item is ready now or claimed by someone (and may enqueue more)."""
        with db.transaction(self.ctx.engine, write=False) as s:
            n = s.scalar(select(func.count()).select_from(WorkItem).where(
                WorkItem.kind.in_(self.kinds),
                ((WorkItem.status == WorkStatus.PENDING) & (WorkItem.run_after <= db.utcnow()))
                | (WorkItem.status == WorkStatus.CLAIMED)))
        return bool(n)

    def step(self) -> bool:
        """Claim and run one item; False when none was ready."""
        w = self.ctx.settings.workers
        with db.transaction(self.ctx.engine) as s:
            got = claims.claim(s, self.kinds, self.id, w.lease_seconds, 1,
                               max_claims=w.max_claims)
        if not got:
            return False
        item = got[0]
        crash.point("after_claim")
        with Heartbeat(self.ctx, self.id, item.id):
            try:
                self.run_stage(item)
            except claims.LeaseLost as exc:
                log.warning("%s", exc)  # another worker has it now; our step rolled back
            except Exception as exc:  # every failure is recorded, none kills the loop
                self.failed(item, exc)
        self.done += 1
        return True

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
            current = s.get(WorkItem, item.id)
            assert current is not None
            stage(self.ctx, s, current)
            claims.complete(s, self.id, [item.id])

    def failed(self, item: WorkItem, error: Exception) -> None:
        """Record a stage's failure: retry later, or dead-letter it with its stage."""
        now = db.utcnow()
        rule = policy.RetryPolicy(maximum_redeliveries=self.ctx.settings.workers.stage_retries,
                                  redelivery_delay=1.0, maximum_redelivery_delay=60.0,
                                  max_age=None)
        decision = policy.decide(rule, max(item.attempts, 1), error, now,
                                 item.created_at or now)
        text = f"{type(error).__name__}: {error}"
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
                    stages.mark_message(s, item.message_id, MessageStatus.DEAD)
                claims.fail(s, self.id, item.id, text)
        except claims.LeaseLost as exc:
            log.warning("%s", exc)
        except Exception:  # the lease runs out and the item is taken back
            log.exception("could not record the failure of item %s", item.id)

