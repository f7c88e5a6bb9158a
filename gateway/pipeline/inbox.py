"""The inbound folder channel: var/inbox/<partner>/ polled, each file received once, then archived.

A file is taken once its size and times have not changed for `stable_for` seconds across
polls and no process has it open for writing (where the system can tell): the partner may
still be writing it. Only regular files are read, never through a symbolic link; anything
else is refused unread (see channels.local_files). Its bytes are stored and its validate
item enqueued in one transaction (with those of the other files of the same poll, up to
inbound.folder.batch); only after that commit is the file moved to .done/, and only if it
is still what was read: a file written to after it was read stays, and its new content
is taken as a new message. A file over a megabyte has its further parts stored first,
one short transaction each (gateway/store/payloads.py), so that the commit holds a
megabyte at most. A crash in between leaves the file in place, and reading it
again finds the same message (same partner, same bytes): no second message, no second
effect. The partner is the folder's name; the validate stage checks the ISA sender
against it.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from channels import local_files
from channels.local_files import Signature
from gateway import private
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


@dataclass
class _Read:
    """A file read and not yet archived: its open descriptor and what it looked like."""

    partner: str
    path: Path
    fd: int
    seen: Signature
    data: bytes | payloads.Stored  # a large file's parts are committed already


class FolderInbox:
    """Polls <root>/<partner>/ for every partner folder under root."""

    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.root = ctx.settings.inbox_root
        self.stability = local_files.Stability(ctx.settings.stable_for, clock)
        self._linked_folders: set[Path] = set()  # warned about once

    def prepare(self) -> None:
        """Create the folder of every configured partner, so operators see where files go."""
        for p in self.ctx.partners:
            private.make_dirs(self.root / p.id)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        """(partner, entry) for every entry waiting in a partner folder, oldest name first.

        Entries of every kind, so that a link or a FIFO is refused rather than left there.
        """
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or not self._partner_folder(folder):
                continue
            for f in sorted(folder.iterdir()):
                if not f.name.startswith(".") and not f.name.endswith(_PARTIAL):
                    yield folder.name, f

    def _partner_folder(self, folder: Path) -> bool:
        """Whether folder is a real folder: a link to one would let its files in unchecked."""
        try:
            mode = folder.lstat().st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(mode) and folder not in self._linked_folders:
            self._linked_folders.add(folder)
            log.warning("%s: a symbolic link, not a partner folder; its files are not taken",
                        folder)
        return stat.S_ISDIR(mode)

    def waiting(self) -> int:
        """How many files are in the folders (stable or not)."""
        return sum(1 for _ in self.candidates())

    def poll(self) -> list[Taken]:
        """Take every stable file once: their messages in one commit per batch of files."""
        out: list[Taken] = []
        ready: list[tuple[str, Path, os.stat_result]] = []
        seen: list[Path] = []
        for partner, f in self.candidates():
            try:
                st = f.lstat()
            except FileNotFoundError:
                continue  # moved away by another poller
            seen.append(f)
            if not stat.S_ISREG(st.st_mode):
                out.append(self.refuse(partner, f, f"not a regular file: {f.name} is "
                                       f"{local_files.kind(st.st_mode)}"))
            elif not self.stability.ready(f, st):
                continue  # still being written, perhaps (and a growing file is not refused)
            elif st.st_size > self.ctx.settings.max_input_bytes:
                out.append(self.refuse(partner, f, f"too large: {f.name} has {st.st_size} "
                                       f"bytes, the limit is {self.ctx.settings.max_input_bytes}"))
            else:
                ready.append((partner, f, st))
        self.stability.keep_only(seen)
        batch: list[tuple[str, Path, Signature]] = []
        for partner, f, sig in self._not_being_written(ready):
            batch.append((partner, f, sig))
            if len(batch) >= self.ctx.settings.receive_batch:
                out += self.take_many(batch)
                batch = []
        if batch:
            out += self.take_many(batch)
        return out

    def _not_being_written(self, ready: list[tuple[str, Path, os.stat_result]],
                           ) -> list[tuple[str, Path, Signature]]:
        """The stable files that no process has open for writing (as far as we can see)."""
        sigs = [(partner, f, Signature.of(st)) for partner, f, st in ready]
        busy = local_files.open_for_writing(sig.file for _, _, sig in sigs)
        for _, f, sig in sigs:
            if sig.file in busy:
                log.debug("%s: still open for writing; waiting", f)
        return [t for t in sigs if t[2].file not in busy]

    def refuse(self, partner: str, path: Path, reason: str) -> Taken:
        """A file refused unread (too large, or not a regular file): moved to .rejected/, dead-lettered."""
        # The bytes are not kept, so the dead letter points at the file.
        target = _archive(path, REJECTED)
        with db.transaction(self.ctx.engine) as s:
            parking.park(s, stage="validate", endpoint=self._channel(partner),
                         reason=f"{reason}; moved to {target}", chain=[])
        log.warning("%s: refused unread (%s), moved to %s", path, reason, target)
        self.stability.forget(path)
        return Taken(path, "refused")

    def take_many(self, files: list[tuple[str, Path, Signature]]) -> list[Taken]:
        """Receive files: store each and enqueue its validate in one commit, then archive them."""
        out: list[Taken] = []
        read: list[_Read] = []
        try:
            for partner, path, seen in files:
                got = self._read(partner, path, seen)
                if isinstance(got, Taken):
                    out.append(got)
                elif got is not None:
                    read.append(got)
            crash.point("after_download_before_commit")
            # A writer that went on since the read: the file waits for its next polls.
            read = [r for r in read if self._still_as_read(r)]
            taken = []
            with db.transaction(self.ctx.engine) as s:
                for r in read:
                    got = receive.receive(s, partner=r.partner, channel=self._channel(r.partner),
                                          source_name=r.path.name, data=r.data)
                    if got.new:
                        claims.enqueue(s, "validate", message_id=got.message.id)
                    taken.append((r, Taken(r.path, "new" if got.new else "duplicate",
                                           got.message.id)))
            for r, t in taken:
                crash.point("after_commit_before_archive")
                self._archive_taken(r, t)
            return out + [t for _, t in taken]
        finally:
            for r in read:
                os.close(r.fd)

    def _read(self, partner: str, path: Path, seen: Signature) -> _Read | Taken | None:
        """The file's bytes if it is still the regular file seen; Taken if refused; None if not now."""
        try:
            fd, _ = local_files.open_regular(path)
        except FileNotFoundError:
            return None  # moved away by another poller
        except local_files.Refused as exc:  # swapped for a link or a FIFO since the poll
            return self.refuse(partner, path, f"not a regular file: {exc}")
        try:
            return _Read(partner, path, fd, seen, self._contents(fd, seen))
        except (local_files.Changed, payloads.ChangedWhileRead):
            os.close(fd)
            self.stability.forget(path)
            log.info("%s: changed while it was read; waiting for it to settle", path)
            return None
        except BaseException:
            os.close(fd)
            raise

    def _contents(self, fd: int, seen: Signature) -> bytes | payloads.Stored:
        """A small file's bytes; a large one stored part by part (its parts committed already):
        one short transaction per part, so that a large file neither waits in memory nor
        holds SQLite's write lock while it is written; the message commits it later."""
        if seen.size <= payloads.PART_BYTES:
            return local_files.read_exactly(fd, seen)
        if Signature.of(os.fstat(fd)) != seen:
            raise local_files.Changed()
        stored = payloads.store_file(self.ctx.engine, fd)
        if stored.size != seen.size or Signature.of(os.fstat(fd)) != seen:
            raise local_files.Changed()
        return stored

    def _still_as_read(self, r: _Read) -> bool:
        if local_files.unchanged(r.fd, r.path, r.seen):
            return True
        self.stability.forget(r.path)
        log.info("%s: changed after it was read; waiting for it to settle", r.path)
        return False

    def _archive_taken(self, r: _Read, t: Taken) -> None:
        """Move a received file to .done/, unless it changed since it was read."""
        if not local_files.unchanged(r.fd, r.path, r.seen):
            # Its new content is another message, taken once it settles; what was read
            # stays received.
            self.stability.forget(r.path)
            log.warning("%s: written to after it was received as message %s; the new content"
                        " will be taken as a new message", r.path, t.message_id)
            return
        try:
            os.fchmod(r.fd, private.FILE_MODE)  # kept for the record: ours alone
        except PermissionError:
            log.debug("%s: not its owner, its mode is left as it is", r.path)
        _archive(r.path, DONE)
        self.stability.forget(r.path)
        log.info("%s: %s message %s", r.path, "new" if t.outcome == "new" else "repeat of",
                 t.message_id)

    def _channel(self, partner: str) -> str:
        return f"folder:{self.root / partner}"


def _archive(path: Path, folder: str) -> Path:
    """Move a file into a sibling folder (a real one, not a link), never over another file."""
    target_dir = path.parent / folder
    fd = local_files.open_folder(target_dir, private.make_dirs)
    try:
        return local_files.move_into(path, fd, target_dir)
    except FileNotFoundError:
        return target_dir / path.name  # moved away by another poller
    finally:
        os.close(fd)
