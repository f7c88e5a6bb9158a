"""The stages with an outside effect: deliver (events to destinations) and ack (files to a partner).

Each takes a batch of items (or one) and spans two transactions around the effect: read
what to send, send it with no transaction open (an ERP call may take seconds, and on
SQLite an open write transaction would stop every other worker), then record every
outcome and finish the items in one commit. A destination's events go to its output at
once (Output.write_many: one fsync for the file, several requests in flight for HTTP).
Each receipt is noted in the process's receipt journal as it arrives (see receipts), so a
crash between the effects and the record does not send the delivered events again; one
still in flight is sent again, and the event id makes the ERP drop it. An ack file has a
fixed name: a repeat rewrites it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from canonical import envelope
from canonical.errors import PermanentError
from canonical.redact import redact
from channels import base
from channels.base import DeliveryReceipt
from gateway.pipeline import crash, parking
from gateway.pipeline.context import Context
from gateway.store import acknowledgments, claims, db, deliveries
from gateway.store.models import DeliveryStatus, WorkItem
from retry import policy

log = logging.getLogger(__name__)
Effect = Callable[[Context, WorkItem], None]


class MissingDelivery(PermanentError):
    """The work item names a delivery that is not in the store."""


Loaded = deliveries.Loaded  # a delivery's status, its destination, the event's envelope


def deliver(ctx: Context, item: WorkItem, loaded: Loaded | None = None) -> None:
    """Write one event to one destination; record delivered, retry later, or dead-letter."""
    _deliver(ctx, [item], {item.id: loaded} if loaded is not None else None)


def deliver_many(ctx: Context, items: Sequence[WorkItem]) -> None:
    """Deliver a batch: each destination's events handed to its output at once, every
    outcome recorded in one commit of a few statements (see _record)."""
    _deliver(ctx, items, None)


@dataclass
class _Attempt:
    """One pending delivery of the batch: what goes where, and how it went."""

    item: WorkItem
    destination: str
    event: envelope.Event | None = None
    receipt: DeliveryReceipt | None = None
    error: Exception | None = None
    answered: datetime | None = None  # when the answer came: Retry-After counts from it


def _deliver(ctx: Context, items: Sequence[WorkItem], loaded: dict[int, Loaded] | None) -> None:
    journal = ctx.receipts
    noted = journal.known({i.delivery_id for i in items if i.delivery_id is not None})
    if loaded is None or journal.orphans:
        with db.transaction(ctx.engine, write=False) as s:
            if loaded is None:
                by_delivery = {i.delivery_id: i.id for i in items if i.delivery_id is not None}
                found = deliveries.to_send(s, list(by_delivery))
                loaded = {by_delivery[d]: row for d, row in found.items()}
            if journal.orphans:  # after a crash: one more query, until they are all recorded
                journal.prune(deliveries.pending_among(s, journal.orphaned()))
    missing = [i for i in items if i.id not in loaded]
    done = [i for i in items if i.id in loaded and loaded[i.id][0] != DeliveryStatus.PENDING]
    attempts: list[_Attempt] = []
    for item in items:
        if item.id in loaded and loaded[item.id][0] == DeliveryStatus.PENDING:
            _status, destination, body = loaded[item.id]
            a = _Attempt(item, destination)
            try:
                a.event = envelope.from_dict(body, check_data=False)
            except Exception as exc:  # a stored envelope that no longer reads: retried, then parked
                a.error, a.answered = exc, db.utcnow()
            attempts.append(a)
    for destination in sorted({a.destination for a in attempts}):
        group = [a for a in attempts if a.destination == destination and a.event is not None]
        _send(ctx, destination, group, noted)
    _record(ctx, items[0].lease_owner or "", attempts, done, missing)
    journal.recorded({i.delivery_id for i in items if i.delivery_id is not None})


def _send(ctx: Context, destination: str, group: list[_Attempt],
          noted: dict[int, DeliveryReceipt]) -> None:
    """Hand a destination's events to its output at once; each receipt noted as it comes."""
    todo = []
    for a in group:
        known = noted.get(a.item.delivery_id) if a.item.delivery_id is not None else None
        if known is not None and known.event_id == a.event.id:  # type: ignore[union-attr]
            # Taken before a crash, never recorded: the destination has it already.
            a.receipt, a.answered = known, db.utcnow()
        else:
            todo.append(a)
    if not todo:
        return
    journal = ctx.receipts

    def on_outcome(n: int, outcome: base.Outcome) -> None:
        a = todo[n]
        a.answered = db.utcnow()
        if isinstance(outcome, DeliveryReceipt):
            assert a.item.delivery_id is not None
            # Before the note: a kill here sends this one event again.
            crash.point("after_erp_2xx_before_record")
            journal.note(a.item.delivery_id, outcome)
            a.receipt = outcome
        else:
            a.error = outcome

    try:
        output = ctx.output(destination)
        base.write_many(output, [a.event for a in todo if a.event is not None], on_outcome)
    except Exception as exc:  # no such destination, it cannot connect, or a bug: each item's
        for a in todo:
            if a.receipt is None and a.error is None:
                a.error, a.answered = exc, db.utcnow()


def _record(ctx: Context, worker: str, attempts: list[_Attempt], done: list[WorkItem],
            missing: list[WorkItem]) -> None:
    """Every outcome of a batch in one commit: the items this worker still holds (one
    statement), one more attempt each (one), the delivered (one executemany), the failed
    (one or two executemany, then per failed item its retry or its dead letter), and the
    items finished (one). A batch all delivered, the common case, is recorded in two (the
    delivered with their attempt counted, the items finished), unless complete() finds
    that another worker holds some of them now.

    Not durable: should a power cut undo this record, the deliveries are simply made again,
    and the destination drops the repeats by event id (module docstring). A killed process
    loses nothing committed here.
    """
    if not done and not missing and all(a.receipt is not None and a.item.delivery_id is not None
                                        for a in attempts):
        # All delivered, the common case: two statements. Should another worker hold some
        # of the items now, complete() says so and the careful record below runs instead.
        try:
            with db.transaction(ctx.engine, durable=False) as s:
                deliveries.delivered_many(s, [(a.item.delivery_id, a.receipt.status)  # type: ignore[misc,union-attr]
                                              for a in attempts], count_attempt=True)
                claims.complete(s, worker, [a.item.id for a in attempts])
            return
        except claims.LeaseLost:
            pass
    ids = [a.item.id for a in attempts] + [i.id for i in (*done, *missing)]
    with db.transaction(ctx.engine, durable=False) as s:
        held = claims.heartbeat(s, worker, ids, ctx.settings.workers.lease_seconds)
        if len(held) < len(ids):
            # Another worker has them now and makes them again; the destination drops the
            # repeat by event id. The rest is recorded.
            log.warning("items %s: lease lost to another worker before their record",
                        sorted(set(ids) - held))
        attempts = [a for a in attempts if a.item.id in held]
        counted = deliveries.count_attempts(
            s, [a.item.delivery_id for a in attempts if a.item.delivery_id is not None])
        deliveries.delivered_many(s, [(a.item.delivery_id, a.receipt.status) for a in attempts
                                      if a.receipt is not None and a.item.delivery_id is not None])
        failures = []
        finished = [a.item.id for a in attempts if a.receipt is not None]
        finished += [i.id for i in done if i.id in held]  # delivered already: a replay
        for a in attempts:
            if a.receipt is None:
                assert a.item.delivery_id is not None and a.error is not None
                failures.append((a, *counted[a.item.delivery_id]))
        decided = [(a, n, _decide(ctx, a, n, made_at)) for a, n, made_at in failures]
        deliveries.failed_many(s, [
            (a.item.delivery_id, parking.describe(a.error), getattr(a.error, "status", None),
             d.at if isinstance(d, policy.Retry) else None)
            for a, _, d in decided])  # type: ignore[misc]
        for a, n, decision in decided:
            _failed(ctx, s, worker, a, n, decision)
        for item in (i for i in missing if i.id in held):
            error = MissingDelivery(f"work item {item.id}: no delivery {item.delivery_id}")
            log.error("%s", error)
            parking.park(s, stage="deliver", reason=str(error), message_id=item.message_id,
                         delivery_id=item.delivery_id, work_item_id=item.id, error=error,
                         attempts=item.attempts)
            claims.fail(s, worker, item.id, parking.describe(error))
        claims.complete(s, worker, finished)


def _decide(ctx: Context, a: _Attempt, attempts: int, made_at: datetime) -> policy.Decision:
    dest = ctx.settings.destinations.get(a.destination)
    rule = dest.retry if dest else policy.RetryPolicy()
    assert a.error is not None and a.answered is not None
    return policy.decide(rule, attempts, a.error, a.answered, made_at)


def _failed(ctx: Context, s: Session, worker: str, a: _Attempt, attempts: int,
            decision: policy.Decision) -> None:
    """A failed attempt's retry, or its dead letter (its delivery row is written already)."""
    assert a.error is not None
    text = parking.describe(a.error)
    if isinstance(decision, policy.Retry):
        log.warning("delivery %s to %s, attempt %d: %s; next at %s", a.item.delivery_id,
                    a.destination, attempts, text, decision.at.isoformat())
        claims.fail(s, worker, a.item.id, text, run_after=decision.at)
        return
    log.error("delivery %s to %s dead-lettered: %s", a.item.delivery_id, a.destination,
              redact(decision.reason))
    endpoint = getattr(ctx.outputs.get(a.destination), "endpoint", None)
    parking.park(s, stage="deliver", reason=decision.reason, message_id=a.item.message_id,
                 delivery_id=a.item.delivery_id, work_item_id=a.item.id,
                 endpoint=f"{a.destination} ({endpoint})" if endpoint else a.destination,
                 error=a.error, attempts=attempts)
    claims.fail(s, worker, a.item.id, text)


def ack(ctx: Context, item: WorkItem) -> None:
    """Put the message's acknowledgments in the partner's outbox, then record them.

    The outbox is the partner's remote one (its SFTP channel's `outbox`) if it has one,
    else the local folder <acks.folder>/<partner>/.
    """
    ack_many(ctx, [item])


def ack_many(ctx: Context, items: Sequence[WorkItem]) -> None:
    """The acknowledgments of several messages: their files written, synced and renamed
    in passes (write_all_atomically), then one commit."""
    worker = items[0].lease_owner or ""
    with db.transaction(ctx.engine, write=False) as s:
        files = acknowledgments.files_of(s, [i.message_id for i in items])
    # Every one, sent or not: a replay rewrites the same files under the same names.
    local = []
    for _, partner, name, data in files:
        remote = ctx.remote_outbox(partner)
        if remote is not None:
            crash.point("during_ack_write")
            # Uploaded as name.part, then renamed: the partner never sees half of it. A
            # network failure is a TransientError: the item is tried again later.
            remote.put(name, data)
            continue
        local.append((ctx.settings.outbox_root / partner / name, data))
    write_all_atomically(local)
    with db.transaction(ctx.engine) as s:
        acknowledgments.mark_sent(s, [f[0] for f in files])
        claims.complete(s, worker, [i.id for i in items])


def write_atomically(target: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write a whole file or nothing under its name: temp file, fsync, rename, fsync the folder.

    sync_folder=False leaves the folder's fsync (which makes the rename last) to the caller,
    who writes several files into it.
    """
    write_all_atomically([(target, data)], sync_folders=sync_folder)


# How many files write_all_atomically keeps open at once.
OPEN_FILES = 64


def write_all_atomically(files: Sequence[tuple[Path, bytes]], *,
                         sync_folders: bool = True) -> None:
    """write_atomically for several files, in passes: every temp file written, then each
    one synced, then the renames, then one fsync per folder. Each file is still whole or
    absent under its name (its temp file is synced before its rename, the renames before
    the folder's sync); the disk is asked to flush back to back rather than between writes.
    """
    folders: set[Path] = set()
    for start in range(0, len(files), OPEN_FILES):
        group = files[start:start + OPEN_FILES]
        opened: list[tuple[int, Path, Path]] = []  # (descriptor, temp file, target)
        try:
            for target, data in group:
                if target.parent not in folders:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    folders.add(target.parent)
                # A dot name, so a partner's pick-up job never takes a half-written file.
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                opened.append((fd, tmp, target))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                crash.point("during_ack_write")
            for fd, _, _ in opened:
                os.fsync(fd)
            while opened:
                fd, tmp, target = opened.pop(0)
                os.close(fd)
                try:
                    os.replace(tmp, target)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
                    raise
        except BaseException:
            for fd, tmp, _ in opened:
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            raise
    if sync_folders:
        for folder in sorted(folders):  # the renames, once per folder
            _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _send_order(ctx: Context, item: WorkItem) -> None:
    from gateway.pipeline import send  # it writes files with write_atomically, above

    send.send(ctx, item)


EFFECTS: dict[str, Effect] = {"deliver": deliver, "ack": ack, "send": _send_order}
# Effects that can take a batch of items at once (all or nothing; the worker runs the
# items one by one when a batch fails).
BATCHED: dict[str, Callable[[Context, Sequence[WorkItem]], None]] = {
    "ack": ack_many, "deliver": deliver_many}
