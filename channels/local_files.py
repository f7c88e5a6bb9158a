"""Taking files from a local folder others write into: regular files only, whole, and unchanged.

A partner's folder is written by someone else, so a name in it may be a symbolic link to
a file we may read and they may not, a FIFO that blocks a reader, a device, or a file
still being written. Files are opened without following a link and without blocking, and
judged by fstat on what was opened, so swapping the name between a check and the open is
refused too. A file is taken once its size and times have stayed the same for a while
across polls (on a clock the caller gives) and, where the system can tell, no process has
it open for writing; what was read is compared with the file again later, so a writer
that went on after the read is noticed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Opened for reading only: never through a link, never waiting on a FIFO's writer.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))
# What open() says for a link under O_NOFOLLOW: ELOOP on Linux and macOS, EMLINK on FreeBSD.
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}
_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class Refused(Exception):
    """Not a regular file: never read. The message says what it is."""


class Changed(Exception):
    """The file changed while it was being taken; it is still being written."""


@dataclass(frozen=True)
class Signature:
    """What identifies a file's content without reading it: which file, its size and times.

    ctime is in it because no one can set it back: a writer that keeps the size and
    restores the mtime still moves the ctime.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Signature:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def file(self) -> tuple[int, int]:
        return self.device, self.inode


DIR_MODE, FILE_MODE = 0o700, 0o600  # what the gateway keeps is its user's alone


def make_dirs(path: Path) -> None:
    """Create path and any missing parents, each new one 0700 (whatever the umask)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it first
            folder.mkdir(mode=DIR_MODE)
            os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask


def kind(mode: int) -> str:
    """What a file of this st_mode is, as an operator reads it."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "an unknown kind of file")


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A read-only descriptor on path and its fstat, if path is a regular file; else Refused."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS and os.path.islink(path):
            raise Refused(f"{path.name} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Refused(f"{path.name} is {kind(st.st_mode)}")
    return fd, st


def read_exactly(fd: int, seen: Signature) -> bytes:
    """The file's bytes, if it still is what was seen (same file, size and times); else Changed."""
    if Signature.of(os.fstat(fd)) != seen:
        raise Changed()
    parts, left = [], seen.size + 1  # one byte more than seen tells a file that grew
    while left > 0:
        chunk = os.pread(fd, min(left, 1 << 20), seen.size + 1 - left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    data = b"".join(parts)
    if len(data) != seen.size or Signature.of(os.fstat(fd)) != seen:
        raise Changed()
    return data


def unchanged(fd: int, path: Path, seen: Signature) -> bool:
    """Whether the descriptor's file is still as seen and still under path."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    return Signature.of(os.fstat(fd)) == seen and (now.st_dev, now.st_ino) == seen.file


def open_folder(path: Path, make: Callable[[Path], None]) -> int:
    """A descriptor on the folder at path (made if missing), never through a link.

    Whoever can write beside it could have put a link there (`.done -> /etc`), which
    would move the files archived into it anywhere; such a link, or a file, is renamed
    aside and a real folder made in its place.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_CLOEXEC", 0)
    for _ in range(3):  # a writer racing us gets a few turns, not a loop
        try:
            return os.open(path, flags)
        except FileNotFoundError:
            make(path)
        except OSError as exc:
            if exc.errno not in (*_LINK_ERRNOS, errno.ENOTDIR):
                raise
            aside = path.with_name(f"{path.name}.{time.time_ns()}.not-a-folder")
            log.warning("%s: %s, not a folder; renamed to %s", path,
                        kind(os.lstat(path).st_mode), aside.name)
            os.rename(path, aside)
    raise NotADirectoryError(f"{path}: keeps being replaced by something other than a folder")


def move_into(path: Path, folder_fd: int, folder: Path) -> Path:
    """Rename path into an open folder under its own name, or a stamped one if taken; where it went."""
    name = path.name
    try:
        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        name = f"{path.stem}.{time.time_ns()}{path.suffix}"
    except FileNotFoundError:
        pass
    os.rename(path, name, dst_dir_fd=folder_fd)
    return folder / name


class Stability:
    """Which files have kept the same signature for stable_for seconds across polls."""

    def __init__(self, stable_for: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stable_for = stable_for
        self.clock = clock
        self._since: dict[Path, tuple[Signature, float]] = {}

    def ready(self, path: Path, st: os.stat_result) -> bool:
        """Note what path looks like now; True once it has looked so for stable_for seconds."""
        sig, now = Signature.of(st), self.clock()
        before = self._since.get(path)
        if before is None or before[0] != sig:
            self._since[path] = (sig, now)
            return self.stable_for <= 0
        return now - before[1] >= self.stable_for

    def forget(self, path: Path) -> None:
        """Start over with path: it changed, or it is gone."""
        self._since.pop(path, None)

    def keep_only(self, paths: Iterable[Path]) -> None:
        """Forget every file not among paths (taken, moved or deleted since)."""
        keep = set(paths)
        for path in [p for p in self._since if p not in keep]:
            del self._since[path]


def open_for_writing(files: Iterable[tuple[int, int]], proc: Path = Path("/proc")) -> set[
        tuple[int, int]]:
    """Of files (device, inode), those a process has open for writing.

    Best effort and Linux only (it reads /proc/<pid>/fd): processes of other users are not
    visible without privileges, and elsewhere nothing is found, so the stability wait is
    then the only guard.
    """
    wanted = set(files)
    found: set[tuple[int, int]] = set()
    if not wanted or not (proc / "self" / "fd").is_dir():
        return found
    # Plain strings, not Paths: every descriptor of every process is looked at each poll.
    root = os.fspath(proc)
    for pid in os.listdir(root):
        if not pid.isdigit():
            continue
        fd_dir = f"{root}/{pid}/fd/"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to look into
        for fd in fds:
            try:
                target = os.readlink(fd_dir + fd)
                if not target.startswith("/"):
                    continue  # a pipe, socket or anonymous inode
                st = os.stat(fd_dir + fd)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in wanted and key not in found and _writable(proc / pid / "fdinfo" / fd):
                found.add(key)
        if found == wanted:
            break
    return found


def _writable(fdinfo: Path) -> bool:
    try:
        text = fdinfo.read_text()
    except OSError:
        return False  # closed since
    for line in text.splitlines():
        if line.startswith("flags:"):
            return bool(int(line.split()[1], 8) & (os.O_WRONLY | os.O_RDWR))
    return False
