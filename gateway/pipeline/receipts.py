"""Receipts the destinations gave that the store has not recorded yet, kept across a kill.

A batch of deliveries is recorded in one commit after all its events went out, so a worker
killed half-way through a batch would, without this, send every event it had delivered
again (the ERP drops the repeats by event id, but each is one more request: RELIABILITY.md
bounds them to one a crash). So each receipt is noted here the moment it arrives, in a
file of this process's own (one write, no fsync: a killed process loses nothing it wrote;
a power cut may, and then the delivery is simply made again, as with the record itself,
which is not durable either). The next attempt of a delivery whose receipt is noted takes
it instead of sending again.

The folder belongs to one store (folder_for): delivery ids are the store's. One file per
worker process, <folder>/<pid>-<random>.jsonl, held under an exclusive flock
while the process lives: a file nobody holds is a dead worker's, and its receipts are read
by whoever delivers next, until the store shows none of its deliveries pending any more;
then it is removed. A worker empties its own file after each batch's record commits.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Collection
from pathlib import Path

from sqlalchemy.engine import URL

from channels.base import DeliveryReceipt
from channels.local_files import FILE_MODE, make_dirs

log = logging.getLogger(__name__)


def folder_for(store: URL, configured: str | None = None) -> Path:
    """The journal folder of a store: the configured one, else beside a SQLite store's file,
    else var/receipts/<a hash of the store URL> (two gateways never share one)."""
    name = hashlib.sha256(store.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    if configured:
        return Path(configured) / name
    if store.get_backend_name() == "sqlite" and store.database and store.database != ":memory:" \
            and not store.database.startswith("file:"):
        return Path(store.database + ".receipts")
    return Path("var/receipts") / name


class Journal:
    """This process's receipts not yet recorded, and those dead processes left behind."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path: Path | None = None
        self._fd: int | None = None
        self._mine: dict[int, DeliveryReceipt] = {}  # noted since the last record, by delivery
        self._lock = threading.Lock()  # receipts arrive from several sending threads
        # Dead processes' files: path -> their receipts by delivery id.
        self._orphans: dict[Path, dict[int, DeliveryReceipt]] = {}

    def note(self, delivery_id: int, receipt: DeliveryReceipt) -> None:
        """Keep a receipt until the store records it (safe from several threads)."""
        line = _line(delivery_id, receipt)
        with self._lock:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            os.write(self._fd, line)  # one write: whole, or not at all
            self._mine[delivery_id] = receipt

    def known(self, delivery_ids: Collection[int]) -> dict[int, DeliveryReceipt]:
        """The receipts noted for these deliveries, by this process or a dead one."""
        self._scan()
        out: dict[int, DeliveryReceipt] = {}
        with self._lock:
            for receipts in (*self._orphans.values(), self._mine):
                out.update((d, r) for d, r in receipts.items() if d in delivery_ids)
        return out

    @property
    def orphans(self) -> bool:
        """Whether dead processes left files behind (see prune)."""
        return bool(self._orphans)

    def orphaned(self) -> set[int]:
        """The deliveries named in dead processes' files."""
        return {d for receipts in self._orphans.values() for d in receipts}

    def prune(self, pending: Collection[int]) -> None:
        """Remove the dead processes' files none of whose deliveries is pending any more."""
        for path, receipts in list(self._orphans.items()):
            if not any(d in pending for d in receipts):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                del self._orphans[path]

    def recorded(self, delivery_ids: Collection[int]) -> None:
        """The store has recorded what became of these deliveries: forget their receipts.

        Usually that is all of them, and the file is emptied; after a batch whose record
        failed (its items are then done one by one) the others' receipts are kept.
        """
        with self._lock:
            kept = {d: r for d, r in self._mine.items() if d not in delivery_ids}
            if self._fd is not None and len(kept) < len(self._mine):
                os.ftruncate(self._fd, 0)
                if kept:
                    os.write(self._fd, b"".join(_line(d, r) for d, r in kept.items()))
            self._mine = kept

    def close(self) -> None:
        """Give the file up; what it still holds is read as a dead process's."""
        with self._lock:
            if self._fd is not None:
                if not self._mine and self.path is not None:
                    with contextlib.suppress(FileNotFoundError):
                        self.path.unlink()
                os.close(self._fd)
                self._fd = None

    def _open(self) -> None:
        make_dirs(self.folder)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # Locked before it takes its name, so no reader ever sees it unheld and empty.
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.path = self.folder / f"{name}.jsonl"
        os.rename(tmp, self.path)
        self._fd = fd

    def _scan(self) -> None:
        """Read the files of processes that died since the last look."""
        try:
            names = [e for e in os.scandir(self.folder) if e.name.endswith(".jsonl")]
        except FileNotFoundError:
            return
        for entry in names:
            path = Path(entry.path)
            if path == self.path or path in self._orphans:
                continue
            receipts = _read_unheld(path)
            if receipts is not None:
                self._orphans[path] = receipts


def _line(delivery_id: int, receipt: DeliveryReceipt) -> bytes:
    return json.dumps({"delivery": delivery_id, "event": receipt.event_id,
                       "endpoint": receipt.endpoint, "duplicate": receipt.duplicate,
                       "status": receipt.status}, separators=(",", ":")).encode() + b"\n"


def _read_unheld(path: Path) -> dict[int, DeliveryReceipt] | None:
    """A file's receipts if no live process holds it, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # its process is alive and records its own
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
    finally:
        os.close(fd)
    out: dict[int, DeliveryReceipt] = {}
    for raw in data.splitlines():
        try:
            r = json.loads(raw)
            out[int(r["delivery"])] = DeliveryReceipt(
                str(r["event"]), str(r["endpoint"]), duplicate=bool(r["duplicate"]),
                status=r["status"] if isinstance(r["status"], int) else None)
        except (ValueError, TypeError, KeyError):
            log.warning("%s: skipping an unreadable receipt line", path)
    if out:
        log.info("%s: %d receipt(s) of a dead worker not yet recorded", path, len(out))
    return out
