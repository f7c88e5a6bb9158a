"""The stages with an outside effect: deliver (an event to a destination) and ack (a file to a partner).

Each is `(ctx, item) -> None` and spans two transactions around the effect: read what to
send, send it with no transaction open (an ERP call may take seconds, and on SQLite an
open write transaction would stop every other worker), then record the outcome and finish
the item in one commit. A crash between the effect and the record repeats the effect
once: the event id makes the ERP drop it, and the ack file has a fixed name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from canonical import envelope
from canonical.errors import GatewayError, PermanentError
from canonical.redact import redact
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


def load_deliveries(ctx: Context, items: Sequence[WorkItem]) -> dict[int, Loaded]:
    """What the deliver items of a batch are to send, read in one transaction, by item id."""
    by_delivery = {i.delivery_id: i.id for i in items if i.delivery_id is not None}
    with db.transaction(ctx.engine, write=False) as s:
        found = deliveries.to_send(s, list(by_delivery))
    return {by_delivery[d]: loaded for d, loaded in found.items()}


def deliver(ctx: Context, item: WorkItem, loaded: Loaded | None = None) -> None:
    """Write one event to one destination; record delivered, retry later, or dead-letter."""
    worker = item.lease_owner or ""
    if loaded is None:
        if item.delivery_id is not None:
            with db.transaction(ctx.engine, write=False) as s:
                loaded = deliveries.to_send(s, [item.delivery_id]).get(item.delivery_id)
        if loaded is None:
            raise MissingDelivery(f"work item {item.id}: no delivery {item.delivery_id}")
    status, destination, body = loaded
    if status != DeliveryStatus.PENDING:
        with db.transaction(ctx.engine) as s:
            claims.complete(s, worker, [item.id])  # delivered already: a replay of a done item
        return
    event = envelope.from_json(json.dumps(body), check_data=False)
    receipt: DeliveryReceipt | None = None
    error: BaseException | None = None
    try:
        receipt = ctx.output(destination).write(event)
    except GatewayError as exc:
        error = exc
    except Exception as exc:  # an output's bug is retried, then parked
        error = exc
    # Retry-After counts from the answer, not from when the request left.
    answered = db.utcnow()
    if error is None:
        crash.point("after_erp_2xx_before_record")
    # Not durable: should a power cut undo this record, the delivery is simply made again,
    # and the ERP drops the repeat by its event id (module docstring). A killed process
    # loses nothing committed here.
    with db.transaction(ctx.engine, durable=False) as s:
        assert item.delivery_id is not None
        counted = deliveries.count_attempt(s, item.delivery_id)
        assert counted is not None
        attempts, made_at = counted
        if receipt is not None:
            deliveries.delivered(s, item.delivery_id, receipt.status)
            claims.complete(s, worker, [item.id])
            return
        assert error is not None
        text = parking.describe(error)
        code = getattr(error, "status", None)
        dest = ctx.settings.destinations.get(destination)
        rule = dest.retry if dest else policy.RetryPolicy()
        decision = policy.decide(rule, attempts, error, answered, made_at)
        if isinstance(decision, policy.Retry):
            log.warning("delivery %s to %s, attempt %d: %s; next at %s", item.delivery_id,
                        destination, attempts, text, decision.at.isoformat())
            deliveries.failed(s, item.delivery_id, text, code, retry_at=decision.at)
            claims.fail(s, worker, item.id, text, run_after=decision.at)
            return
        deliveries.failed(s, item.delivery_id, text, code, retry_at=None)
        log.error("delivery %s to %s dead-lettered: %s", item.delivery_id, destination,
                  redact(decision.reason))
        endpoint = getattr(ctx.outputs.get(destination), "endpoint", None)
        parking.park(s, stage="deliver", reason=decision.reason, message_id=item.message_id,
                     delivery_id=item.delivery_id, work_item_id=item.id,
                     endpoint=f"{destination} ({endpoint})" if endpoint else destination,
                     error=error, attempts=attempts)
        claims.fail(s, worker, item.id, text)


def ack(ctx: Context, item: WorkItem) -> None:
    """Put the message's acknowledgments in the partner's outbox, then record them.

    The outbox is the partner's remote one (its SFTP channel's `outbox`) if it has one,
    else the local folder <acks.folder>/<partner>/.
    """
    ack_many(ctx, [item])


def ack_many(ctx: Context, items: Sequence[WorkItem]) -> None:
    """The acknowledgments of several messages: each file written and synced, one commit."""
    worker = items[0].lease_owner or ""
    with db.transaction(ctx.engine, write=False) as s:
        files = acknowledgments.files_of(s, [i.message_id for i in items])
    # Every one, sent or not: a replay rewrites the same files under the same names.
    folders = set()
    for _, partner, name, data in files:
        remote = ctx.remote_outbox(partner)
        if remote is not None:
            crash.point("during_ack_write")
            # Uploaded as name.part, then renamed: the partner never sees half of it. A
            # network failure is a TransientError: the item is tried again later.
            remote.put(name, data)
            continue
        target = ctx.settings.outbox_root / partner / name
        write_atomically(target, data, sync_folder=False)
        folders.add(target.parent)
    for folder in sorted(folders):  # the renames, once per folder
        _sync_folder(folder)
    with db.transaction(ctx.engine) as s:
        acknowledgments.mark_sent(s, [f[0] for f in files])
        claims.complete(s, worker, [i.id for i in items])


def write_atomically(target: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write a whole file or nothing under its name: temp file, fsync, rename, fsync the folder.

    sync_folder=False leaves the folder's fsync (which makes the rename last) to the caller,
    who writes several files into it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A dot name, so a partner's pick-up job never takes a half-written file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            crash.point("during_ack_write")
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if sync_folder:
        _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _send(ctx: Context, item: WorkItem) -> None:
    from gateway.pipeline import send  # it writes files with write_atomically, above

    send.send(ctx, item)


EFFECTS: dict[str, Effect] = {"deliver": deliver, "ack": ack, "send": _send}
# Effects that can take a batch of items at once (all or nothing; the worker runs the
# items one by one when a batch fails).
BATCHED: dict[str, Callable[[Context, Sequence[WorkItem]], None]] = {"ack": ack_many}
