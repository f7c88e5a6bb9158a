"""ERP as a JSON Lines file: one event per line, a batch appended with one fsync, each event id once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from canonical import errors
from canonical.envelope import Event
from channels import base
from channels.base import DeliveryReceipt
from channels.config import ChannelConfig, setting

log = logging.getLogger(__name__)


class FileOutputConfig(ChannelConfig):
    """Settings of the `file` ERP output."""

    path: Path = setting(description="The JSON Lines file events are appended to.",
                         example="/var/spool/erp/events.jsonl")


class FileOutput:
    """Appends events to a JSON Lines file the ERP picks up; an id already there is skipped."""

    def __init__(self, config: FileOutputConfig) -> None:
        self.config = config
        self.endpoint = f"erp:file {config.path}"
        self._file: BinaryIO | None = None
        self._ids: set[str] = set()
        self._offset = 0  # how far the file has been read into _ids

    def connect(self) -> None:
        if self._file is not None:
            return
        try:
            # Not "a": O_APPEND is fine for writing, but a torn tail must be truncated.
            fd = os.open(self.config.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as exc:
            raise errors.DeliveryUnavailable(f"opening {self.endpoint}: {exc}") from exc
        self._file = os.fdopen(fd, "r+b")
        self._ids, self._offset = set(), 0
        try:
            with self._locked():
                self._catch_up()
        except OSError as exc:
            self.close()
            raise errors.DeliveryUnavailable(f"reading {self.endpoint}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def write(self, event: Event) -> DeliveryReceipt:
        [outcome] = self.write_many([event])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def write_many(self, events: Sequence[Event],
                   on_outcome: base.OnOutcome | None = None) -> list[base.Outcome]:
        """Append every event whose id the file lacks, in one write and one fsync.

        Under the lock, the ids appended since the last look are read first (by another
        process, or by this one before a crash), so an id is never written twice: after a
        kill between the append and the store's record, the retry finds its ids here.
        """
        if self._file is None:
            self.connect()
        outcomes: list[base.Outcome | None] = [None] * len(events)
        lines: list[bytes] = []
        new: list[int] = []  # the events appended, by index
        for n, event in enumerate(events):
            try:
                lines.append(base.encode(event) + b"\n")
                new.append(n)
            except errors.PermanentError as exc:
                outcomes[n] = exc
        try:
            with self._locked():
                # Another process (or instance) may have appended since: read its ids first.
                self._catch_up()
                kept, taken = [], set()
                for n, line in zip(new, lines, strict=True):
                    event_id = events[n].id
                    if event_id in self._ids or event_id in taken:
                        outcomes[n] = DeliveryReceipt(event_id, self.endpoint, duplicate=True)
                    else:
                        taken.add(event_id)
                        kept.append((n, line))
                if kept:
                    self._append(b"".join(line for _, line in kept))
                    self._ids.update(taken)
                for n, _ in kept:
                    outcomes[n] = DeliveryReceipt(events[n].id, self.endpoint)
        except OSError as exc:
            # A full disk or a lost mount; the next attempt's catch-up repairs any torn line.
            for n in new:
                if outcomes[n] is None:
                    error = errors.DeliveryUnavailable(
                        f"writing {events[n].id} to {self.endpoint}: {exc}")
                    error.__cause__ = exc
                    outcomes[n] = error
        done: list[base.Outcome] = []
        for n, outcome in enumerate(outcomes):
            assert outcome is not None
            if on_outcome is not None:
                on_outcome(n, outcome)
            done.append(outcome)
        return done

    def _append(self, data: bytes) -> None:
        """Put data at the end of the file and make it last: one write, one fsync."""
        f = self._file
        assert f is not None
        f.seek(0, os.SEEK_END)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        self._offset = f.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _locked(self) -> _Lock:
        assert self._file is not None
        return _Lock(self._file.fileno())

    def _catch_up(self) -> None:
        """Read the ids of lines appended since _offset; cut a torn last line off."""
        f = self._file
        assert f is not None
        f.seek(self._offset)
        position = self._offset
        for raw in f:  # line by line: a big file is read once, never held whole
            if not raw.endswith(b"\n"):
                # A line without its newline was never fsynced and acknowledged (the line and
                # its newline go out in one write), so nobody was told it was delivered: drop
                # it, and the outbox's retry writes it whole.
                log.warning("%s: cutting off a torn last line of %d bytes at byte %d",
                            self.endpoint, len(raw), position)
                f.truncate(position)
                os.fsync(f.fileno())
                break
            if raw.strip():
                self._ids.add(self._id_of(raw, position))
            position += len(raw)
        self._offset = position

    def _id_of(self, raw: bytes, position: int) -> str:
        try:
            event_id = json.loads(raw)["id"]
        except (ValueError, TypeError, KeyError) as exc:
            # Not the event's fault: retrying after an operator fixes the file will succeed.
            raise errors.DeliveryUnavailable(
                f"{self.endpoint}: the line at byte {position} is not a JSON event with an id;"
                " fix or move the file") from exc
        if not isinstance(event_id, str):
            raise errors.DeliveryUnavailable(
                f"{self.endpoint}: the line at byte {position} has an id that is not a string")
        return event_id


class _Lock:
    """An exclusive flock on the file, so writers in several processes take turns."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
