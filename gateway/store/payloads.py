"""Large payloads in parts: written part by part in short transactions, read one part at a time.

A payload over PART_BYTES is kept as its first part in payloads.data and the rest in
payload_parts. A file's parts are written first, each in its own transaction (the
same part written twice is one row: a crash part way leaves rows that the next attempt
finds and keeps), and the payloads row that names them comes last, in the transaction
that creates the message: a payload row is always complete.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import Message, Payload, PayloadPart

PART_BYTES = 1 << 20


class ChangedWhileRead(OSError):
    """The file's bytes changed between hashing it and storing it; take it again later."""


@dataclass(frozen=True)
class Stored:
    """A payload whose parts after the first are committed; its payloads row is still to write."""

    sha256: str
    size: int
    first: bytes
    parts: int


def _blocks(fd: int) -> Iterator[bytes]:
    """A file's bytes a part at a time, from its start, through an open descriptor (pread:
    the descriptor's own offset is left alone, and no path is looked up again)."""
    offset = 0
    while block := os.pread(fd, PART_BYTES, offset):
        offset += len(block)
        yield block


def file_digest(fd: int) -> tuple[str, int]:
    """The sha256 and size of an open file, read a part at a time."""
    h, size = hashlib.sha256(), 0
    for block in _blocks(fd):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


def store_file(engine: Engine, fd: int, name: str | Path = "") -> Stored:
    """Write an open file's parts after the first, one short transaction each (none if known).

    Read through the descriptor the caller opened (and checked: a regular file, not a
    link), twice: once for its digest, once to store it; ChangedWhileRead if the two differ.
    """
    digest, size = file_digest(fd)
    with db.transaction(engine, write=False) as s:
        known = s.scalar(select(Payload.parts).where(Payload.sha256 == digest))
    h = hashlib.sha256()
    first, part = b"", 0
    for block in _blocks(fd):
        h.update(block)
        if part == 0:
            first = block
        elif known is None:
            with db.transaction(engine) as s:
                insert_part(s, digest, part, block)
        part += 1
    if h.hexdigest() != digest:
        raise ChangedWhileRead(f"{name or 'the file'} changed while it was read")
    return Stored(digest, size, first, max(part, 1))


def insert_part(session: Session, digest: str, part: int, data: bytes) -> None:
    """Keep part n of a payload (once: a second write of the same part is ignored)."""
    session.execute(db.insert_new(session, PayloadPart, PayloadPart.sha256, PayloadPart.part)
                    .values(sha256=digest, part=part, data=data))


def split(data: bytes) -> tuple[bytes, list[bytes]]:
    """A payload's first part and the rest, as it is kept."""
    return data[:PART_BYTES], [data[i:i + PART_BYTES]
                               for i in range(PART_BYTES, len(data), PART_BYTES)]


def read_all(session: Session, digest: str) -> bytes:
    """A whole payload's bytes in memory (for small ones; large ones are read with open_payload)."""
    first, parts = session.execute(select(Payload.data, Payload.parts)
                                   .where(Payload.sha256 == digest)).one()
    if parts <= 1:
        return first
    rest = session.scalars(select(PayloadPart.data).where(PayloadPart.sha256 == digest)
                           .order_by(PayloadPart.part))
    return b"".join([first, *rest])


def large_messages(session: Session, message_ids: list[int]) -> set[int]:
    """Which of these messages have a payload in several parts (those stream set by set)."""
    if not message_ids:
        return set()
    return set(session.scalars(
        select(Message.id).join(Payload, Payload.sha256 == Message.payload_sha256)
        .where(Message.id.in_(message_ids), Payload.parts > 1)))


def stored_parts(session: Session, digest: str) -> int:
    """How many rows of payload_parts a payload has (for tests and checks)."""
    return int(session.scalar(select(func.count()).select_from(PayloadPart)
                              .where(PayloadPart.sha256 == digest)) or 0)


class PayloadStream(io.RawIOBase):
    """A payload read part by part, each part in its own short read transaction."""

    def __init__(self, engine: Engine, digest: str) -> None:
        super().__init__()
        self.engine, self.digest = engine, digest
        self._next = 0
        self._parts: int | None = None
        self._buf = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _load(self) -> bool:
        with db.transaction(self.engine, write=False) as s:
            if self._parts is None:
                self._buf, self._parts = s.execute(
                    select(Payload.data, Payload.parts).where(Payload.sha256 == self.digest)).one()
            elif self._next < self._parts:
                self._buf = s.scalars(select(PayloadPart.data).where(
                    PayloadPart.sha256 == self.digest, PayloadPart.part == self._next)).one()
            else:
                return False
        self._next += 1
        self._pos = 0
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._buf):
            self._buf = b""
            if not self._load():
                return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n


def open_payload(engine: Engine, digest: str) -> io.BufferedReader:
    """A binary stream over the payload under digest that holds about one part in memory."""
    return io.BufferedReader(PayloadStream(engine, digest), buffer_size=1 << 16)
