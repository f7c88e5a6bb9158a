"""Control numbers for outbound interchanges, groups and sets, never handed out twice.

Numbers run from 1 to 999999999 (nine digits) and are not wrapped: when a sequence is
used up, taking another raises OutboundDataError, because a partner that deduplicates on
ISA13 would drop a reused number silently. Resetting is an operator's decision agreed
with the partners (a new file, or a new `start`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from canonical.errors import OutboundDataError
from mappings.x12.writer import MAX_CONTROL_NUMBER

KINDS = ("interchange", "group", "set")


@runtime_checkable
class ControlNumbers(Protocol):
    """Where outbound control numbers come from."""

    def next_interchange(self) -> int: ...

    def next_group(self) -> int: ...

    def next_set(self) -> int: ...


def _advance(last: int, kind: str) -> int:
    n = last + 1
    if n > MAX_CONTROL_NUMBER:
        raise OutboundDataError(f"the {kind} control numbers are used up "
                                f"(last {last}); they are never wrapped around")
    return n


class Sequences:
    """The ControlNumbers methods over one `_take(kind)`, shared by every backing store."""

    def _take(self, kind: str) -> int:
        raise NotImplementedError

    def next_interchange(self) -> int:
        return self._take("interchange")

    def next_group(self) -> int:
        return self._take("group")

    def next_set(self) -> int:
        return self._take("set")


class MemoryControlNumbers(Sequences):
    """Control numbers kept in memory: for tests and one-off runs."""

    def __init__(self, start: int = 1) -> None:
        self._last = dict.fromkeys(KINDS, start - 1)
        self._lock = threading.Lock()

    def _take(self, kind: str) -> int:
        with self._lock:
            self._last[kind] = _advance(self._last[kind], kind)
            return self._last[kind]


class FileControlNumbers(Sequences):
    """Control numbers kept in a JSON file, so that separate CLI runs never reuse one.

    Each number is written to disk (temp file, fsync, rename, under an flock on a side
    lock file) before it is returned: a crash can skip a number, never repeat one.
    """

    def __init__(self, path: str | os.PathLike[str], start: int = 1) -> None:
        self.path = Path(path)
        self._start = start
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, int]:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return dict.fromkeys(KINDS, self._start - 1)
        try:
            state = json.loads(raw)
            # A `start` above the stored numbers moves them forward, never back.
            last = {k: max(int(state[k]), self._start - 1) for k in KINDS}
        except (ValueError, KeyError, TypeError) as exc:
            # Guessing here could reuse numbers; an operator must look at the file.
            raise OutboundDataError(f"control number file {self.path} is unreadable: {exc}") from exc
        return last

    def _write(self, state: dict[str, int]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp",
                                   dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename itself must reach the disk, or a crash could bring back the old file.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _take(self, kind: str) -> int:
        with self._locked():
            state = self._read()
            state[kind] = _advance(state[kind], kind)
            self._write(state)
            return state[kind]

