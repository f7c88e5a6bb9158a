"""The inbound folder channel: <root>/<partner>/ polled, stable regular files handed over, archived on ack.

A file is handed over once its size and times have not changed for `stable_for` seconds
across polls and no process has it open for writing (where the system can tell): the
partner may still be writing it. Only regular files are read, never through a symbolic
link; anything else (and a file over the size limit) is handed over refused, unread, and
its ack moves it to .rejected/. A small file comes as its bytes, a large one as the open
descriptor it was checked through (never the path again), so it never has to be in
memory whole. Before the caller commits, `unchanged()` tells whether the file is still
what was read; after the commit `ack()` moves it to .done/, but only if it is still what
was read: a file written to since stays, and its new content is another message. The
partner is the folder's name.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from canonical import errors
from channels import local_files
from channels.base import InboundMessage
from channels.config import ChannelConfig, setting
from channels.local_files import Signature

log = logging.getLogger(__name__)

DONE, REJECTED = ".done", ".rejected"
# Names a writer uses while a file is incomplete; never taken.
PARTIAL = (".tmp", ".part", ".partial", ".filepart")


class FolderInputConfig(ChannelConfig):
    """Settings of the folder inbox (conf/gateway.yaml, inbound.folder)."""

    enabled: bool = setting(True, example=True, description="Poll the folders at all.")
    root: str = setting("var/inbox", example="var/inbox",
                        description="One folder per partner below it: <root>/<partner id>/.")
    poll_interval: float = setting(1.0, ge=0, example=1.0,
                                   description="Seconds between two looks at the folders.")
    stable_for: float = setting(
        2.0, ge=0, example=2.0,
        description="A file is taken once its size and times have not changed for this long"
                    " across polls and no process has it open for writing.")
    batch: int = setting(100, ge=1, le=1000, example=100,
                         description="Files handed over (and committed) at once at most.")


@dataclass
class _Held:
    """A file handed over and not yet acked: its open descriptor and what it looked like."""

    path: Path
    fd: int | None  # None for a refused entry (never opened)
    seen: Signature | None


class FolderInput:
    """Polls <root>/<partner>/ for every partner folder under root (one Input for all)."""

    def __init__(self, config: FolderInputConfig, *, max_bytes: int, large_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.root = Path(config.root)
        self.max_bytes = max_bytes  # larger files are refused unread
        self.large_bytes = large_bytes  # larger files are handed over as a descriptor
        self.stability = local_files.Stability(config.stable_for, clock)
        self._held: dict[Path, _Held] = {}
        self._linked_folders: set[Path] = set()  # warned about once

    def __repr__(self) -> str:
        return f"FolderInput({self.root})"

    @property
    def poll_interval(self) -> float:
        return self.config.poll_interval

    def prepare(self, partners: Iterable[str]) -> None:
        """Create each partner's folder, so operators see where files go."""
        for p in partners:
            local_files.make_dirs(self.root / p)

    def endpoint(self, partner: str) -> str:
        return f"folder:{self.root / partner}"

    # -- the Input interface

    def connect(self) -> None:
        """Nothing to open: the folders are looked at on each read."""

    def read(self) -> list[InboundMessage]:
        """One poll: up to `batch` stable files (and refusals), each handed over once."""
        out: list[InboundMessage] = []
        ready: list[tuple[str, Path, os.stat_result]] = []
        seen: list[Path] = []
        for partner, f in self.candidates():
            if f in self._held:
                seen.append(f)
                continue
            try:
                st = f.lstat()
            except FileNotFoundError:
                continue  # moved away by another poller
            seen.append(f)
            if not stat.S_ISREG(st.st_mode):
                out.append(self._refuse(partner, f, f"not a regular file: {f.name} is "
                                        f"{local_files.kind(st.st_mode)}"))
            elif not self.stability.ready(f, st):
                continue  # still being written, perhaps (and a growing file is not refused)
            elif st.st_size > self.max_bytes:
                out.append(self._refuse(partner, f, f"too large: {f.name} has {st.st_size} "
                                        f"bytes, the limit is {self.max_bytes}"))
            else:
                ready.append((partner, f, st))
        self.stability.keep_only(seen)
        room = self.config.batch - len(out)
        for partner, f, sig in self._not_being_written(ready):
            if room <= 0:
                break  # the rest stay ready for the next read
            got = self.take(partner, f, sig)
            if got is not None:
                out.append(got)
                room -= 1
        return out

    def unchanged(self, message: InboundMessage) -> bool:
        """Whether the file is still what was read; if not it is let go, to settle and come again."""
        held = self._token(message)
        if held.fd is None or held.seen is None:
            return True  # a refusal: nothing was read
        if local_files.unchanged(held.fd, held.path, held.seen):
            return True
        log.info("%s: changed after it was read; waiting for it to settle", held.path)
        self._release(held)
        return False

    def ack(self, message: InboundMessage) -> None:
        """Stored: move the file to .done/ (if still as read); refused: move it to .rejected/."""
        held = self._token(message)
        try:
            if held.fd is None:
                target = archive(held.path, REJECTED)
                log.warning("%s: refused unread (%s), moved to %s", held.path, message.refused,
                            target)
            elif not local_files.unchanged(held.fd, held.path, held.seen):  # type: ignore[arg-type]
                # Its new content is another message, taken once it settles; what was read
                # stays received.
                log.warning("%s: written to after it was received; the new content will be"
                            " taken as a new message", held.path)
            else:
                try:
                    os.fchmod(held.fd, local_files.FILE_MODE)  # kept for the record: ours alone
                except PermissionError:
                    log.debug("%s: not its owner, its mode is left as it is", held.path)
                archive(held.path, DONE)
        finally:
            self._release(held)

    def close(self) -> None:
        """Let go of every file handed over and not acked: they are offered again."""
        for held in list(self._held.values()):
            self._release(held)

    # -- what a poll sees

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
                if not f.name.startswith(".") and not f.name.endswith(PARTIAL):
                    yield folder.name, f

    def waiting(self) -> int:
        """How many files are in the folders (stable or not, handed over or not)."""
        return sum(1 for _ in self.candidates())

    def take(self, partner: str, path: Path, seen: Signature) -> InboundMessage | None:
        """The message of a file if it is still the regular file seen; a refusal if it no
        longer is one; None if it is gone or changed (it is taken once it settles)."""
        try:
            fd, _ = local_files.open_regular(path)
        except FileNotFoundError:
            return None  # moved away by another poller
        except local_files.Refused as exc:  # swapped for a link or a FIFO since the poll
            return self._refuse(partner, path, f"not a regular file: {exc}")
        try:
            if seen.size > self.large_bytes:
                if Signature.of(os.fstat(fd)) != seen:
                    raise local_files.Changed()
                data = b""
            else:
                data = local_files.read_exactly(fd, seen)
        except local_files.Changed:
            os.close(fd)
            self.stability.forget(path)
            log.info("%s: changed while it was read; waiting for it to settle", path)
            return None
        except BaseException:
            os.close(fd)
            raise
        held = _Held(path, fd, seen)
        self._held[path] = held
        return InboundMessage(partner, path.name, data,
                              {"channel": "folder", "endpoint": self.endpoint(partner),
                               "path": str(path), "size": str(seen.size)},
                              token=held, fd=fd if seen.size > self.large_bytes else None)

    # -- inside

    def _refuse(self, partner: str, path: Path, reason: str) -> InboundMessage:
        # The bytes are never read, so the dead letter points at where the file goes.
        held = _Held(path, None, None)
        self._held[path] = held
        return InboundMessage(partner, path.name, b"",
                              {"channel": "folder", "endpoint": self.endpoint(partner),
                               "path": str(path)},
                              token=held,
                              refused=f"{reason}; moved to {path.parent / REJECTED}/")

    def _not_being_written(self, ready: list[tuple[str, Path, os.stat_result]],
                           ) -> list[tuple[str, Path, Signature]]:
        """The stable files that no process has open for writing (as far as we can see)."""
        sigs = [(partner, f, Signature.of(st)) for partner, f, st in ready]
        busy = local_files.open_for_writing(sig.file for _, _, sig in sigs)
        for _, f, sig in sigs:
            if sig.file in busy:
                log.debug("%s: still open for writing; waiting", f)
        return [t for t in sigs if t[2].file not in busy]

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

    def _token(self, message: InboundMessage) -> _Held:
        held = message.token
        if not isinstance(held, _Held) or self._held.get(held.path) is not held:
            raise errors.PermanentError(f"{self.root}: {message.source_name!r} is not a file"
                                        " this channel handed over (or it was let go since)")
        return held

    def _release(self, held: _Held) -> None:
        if self._held.get(held.path) is held:
            del self._held[held.path]
        if held.fd is not None:
            os.close(held.fd)
            held.fd = None
        self.stability.forget(held.path)


def archive(path: Path, folder: str) -> Path:
    """Move a file into a sibling folder (a real one, not a link), never over another file."""
    target_dir = path.parent / folder
    fd = local_files.open_folder(target_dir, local_files.make_dirs)
    try:
        return local_files.move_into(path, fd, target_dir)
    except FileNotFoundError:
        return target_dir / path.name  # moved away by another poller
    finally:
        os.close(fd)
