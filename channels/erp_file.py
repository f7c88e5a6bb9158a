"""ERP as a JSON Lines file: one event per line, appended and fsynced, each event id once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
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
        if self._file is None:
            self.connect()
        line = base.encode(event) + b"\n"
        try:
            with self._locked():
                # Another process (or instance) may have appended since: read its ids first.
                self._catch_up()
                if event.id in self._ids:
                    return DeliveryReceipt(event.id, self.endpoint, duplicate=True)
                f = self._file
                assert f is not None
                f.seek(0, os.SEEK_END)
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
                self._offset = f.tell()
                self._ids.add(event.id)
        except OSError as exc:
            # A full disk or a lost mount; the next attempt's catch-up repairs any torn line.
            raise errors.DeliveryUnavailable(f"writing {event.id} to {self.endpoint}: {exc}") from exc
        return DeliveryReceipt(event.id, self.endpoint)

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
