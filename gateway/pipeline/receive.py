"""The inbound folder channel: var/inbox/<partner>/ polled, each file received once, then archived.

A file is taken once it has not changed for `stable_for` seconds (the partner may still
be writing it). Its bytes are stored and its validate item enqueued in one transaction
(with those of the other files of the same poll, up to inbound.folder.batch); only after
that commit is the file moved to .done/. A file over a megabyte has its further parts
stored first, one short transaction each (gateway/store/payloads.py), so that the
commit holds a megabyte at most. A crash in between leaves the file
in place, and reading it again finds the same message (same partner, same bytes): no
second message, no second effect. The partner is the folder's name; the validate stage
checks the ISA sender against it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.pipeline import crash, parking
from gateway.pipeline.context import Context
from gateway.store import claims, db, payloads, receive

log = logging.getLogger(__name__)

DONE, REJECTED = ".done", ".rejected"
# Names a writer uses while a file is incomplete; never taken.
_PARTIAL = (".tmp", ".part", ".partial", ".filepart")


@dataclass(frozen=True)
class Taken:
    """What became of one file: a new message, a repeat of a known one, or refused."""

    path: Path
    outcome: str  # new, duplicate, refused
    message_id: int | None = None


class FolderInbox:
    """Polls <root>/<partner>/ for every partner folder under root."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.root = ctx.settings.inbox_root

    def prepare(self) -> None:
        """Create the folder of every configured partner, so operators see where files go."""
        for p in self.ctx.partners:
            (self.root / p.id).mkdir(parents=True, exist_ok=True)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        """(partner, file) for every file waiting in a partner folder, oldest name first."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            for f in sorted(folder.iterdir()):
                if f.is_file() and not f.name.startswith(".") and not f.name.endswith(_PARTIAL):
                    yield folder.name, f

    def waiting(self) -> int:
        """How many files are in the folders (stable or not)."""
        return sum(1 for _ in self.candidates())

    def poll(self) -> list[Taken]:
        """Take every stable file once: their messages in one commit per batch of files."""
        out: list[Taken] = []
        batch: list[tuple[str, Path]] = []
        now = time.time()
        for partner, f in self.candidates():
            try:
                st = f.stat()
            except FileNotFoundError:
                continue  # moved away by another poller
            if now - st.st_mtime < self.ctx.settings.stable_for:
                continue  # still being written, perhaps
            if st.st_size > self.ctx.settings.max_input_bytes:
                out.append(self.refuse(partner, f, st.st_size))
                continue
            batch.append((partner, f))
            if len(batch) >= self.ctx.settings.receive_batch:
                out += self.take_many(batch)
                batch = []
        if batch:
            out += self.take_many(batch)
        return out

    def refuse(self, partner: str, path: Path, size: int) -> Taken:
        """A file over the size limit, refused unread: moved to .rejected/ and dead-lettered."""
        # The bytes are not kept, so the dead letter points at the file.
        limit = self.ctx.settings.max_input_bytes
        target = _archive(path, REJECTED)
        with db.transaction(self.ctx.engine) as s:
            parking.park(s, stage="validate", endpoint=self._channel(partner),
                         reason=f"too large: {path.name} has {size} bytes, the limit is "
                                f"{limit}; moved to {target}", chain=[])
        log.warning("%s: too large (%d bytes > %d), moved to %s", path, size, limit, target)
        return Taken(path, "refused")

    def take_many(self, files: list[tuple[str, Path]]) -> list[Taken]:
        """Receive files: store each and enqueue its validate in one commit, then archive them."""
        read: list[tuple[str, Path, bytes | payloads.Stored]] = []
        for partner, path in files:
            try:
                read.append((partner, path, _read(self.ctx, path)))
            except FileNotFoundError:
                continue  # moved away by another poller
            except payloads.ChangedWhileRead as exc:
                log.warning("%s; taken at a later poll", exc)
        crash.point("after_download_before_commit")
        taken = []
        with db.transaction(self.ctx.engine) as s:
            for partner, path, data in read:
                got = receive.receive(s, partner=partner, channel=self._channel(partner),
                                      source_name=path.name, data=data)
                if got.new:
                    claims.enqueue(s, "validate", message_id=got.message.id)
                taken.append(Taken(path, "new" if got.new else "duplicate", got.message.id))
        for t in taken:
            crash.point("after_commit_before_archive")
            _archive(t.path, DONE)
            log.info("%s: %s message %s", t.path, "new" if t.outcome == "new" else "repeat of",
                     t.message_id)
        return taken

    def _channel(self, partner: str) -> str:
        return f"folder:{self.root / partner}"


def _read(ctx: Context, path: Path) -> bytes | payloads.Stored:
    """A small file's bytes; a large one stored part by part (its parts committed already)."""
    if path.stat().st_size <= payloads.PART_BYTES:
        return path.read_bytes()
    # One short transaction per part, so that a large file neither waits in memory nor
    # holds SQLite's write lock while it is written; the message commits it below.
    return payloads.store_file(ctx.engine, path)


def _archive(path: Path, folder: str) -> Path:
    """Move a file into a sibling folder, never over another file of the same name."""
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    with contextlib.suppress(FileNotFoundError):
        path.replace(target)
    return target
