"""Many small remote files read over one SFTP session, their requests pipelined.

paramiko's high-level calls wait for each answer before the next request (getfo adds a
stat and a prefetch thread per file), so a poll of 500 small files costs some 2,500 round
trips. Here a group of files is read in three waves, each sent at once and answered in
one go: open every file; read each whole, plus one read past its listed end, which must
find the end (so a file that grew since it was listed is caught); then stat each path and
close each handle. What a file looked like after it was read is compared with its listing by the
caller, exactly as for a file fetched alone.

Uses paramiko's request/response primitives (`_async_request`, `_read_response`), pinned by
the version in pyproject.toml and exercised against a real OpenSSH sshd by the tests.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import paramiko
from paramiko import sftp as proto
from paramiko.message import Message

CHUNK = 32768  # the read size every server serves whole (paramiko's MAX_REQUEST_SIZE)
SMALL = 256 * 1024  # files up to this size are read in groups; larger ones alone
GROUP_FILES = 64  # files per group
GROUP_BYTES = 1 << 20  # bytes per group, well inside an SSH channel's 2 MB window


@dataclass(frozen=True)
class Read:
    """One file as read: its bytes, and its (size, mtime) stat'ed after reading.

    `data` is None if the file was gone; `whole` is False if the file had more bytes than
    listed or a read came back short (then the caller fetches it alone, or waits).
    """

    path: str
    data: bytes | None
    after: tuple[int, int] | None
    whole: bool


def supported(sftp: Any) -> bool:
    """Whether sftp is paramiko's client, whose primitives this module drives."""
    return isinstance(sftp, paramiko.SFTPClient)


def groups(items: Sequence[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """(path, size) pairs cut into groups of at most GROUP_FILES files and GROUP_BYTES."""
    out: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    total = 0
    for path, size in items:
        if current and (len(current) >= GROUP_FILES or total + size > GROUP_BYTES):
            out.append(current)
            current, total = [], 0
        current.append((path, size))
        total += size
    if current:
        out.append(current)
    return out


class _Answers:
    """Collects the answers to the requests sent with it, whatever their order."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp
        self.got: dict[int, tuple[int, Message]] = {}

    def send(self, kind: int, *args: Any) -> int:
        return int(self.sftp._async_request(self, kind, *args))

    def _async_response(self, kind: int, msg: Message, num: int) -> None:  # paramiko calls it
        self.got[num] = (kind, msg)

    def take(self, num: int) -> tuple[int, Message]:
        while num not in self.got:
            self.sftp._read_response()  # one packet, handed to whoever asked for it
        return self.got.pop(num)


def _status(sftp: paramiko.SFTPClient, kind: int, msg: Message) -> None:
    """Raise what paramiko raises for an error status (EOFError at the end of a file)."""
    if kind == proto.CMD_STATUS:
        sftp._convert_status(msg)


def read_group(sftp: paramiko.SFTPClient, files: Sequence[tuple[str, int]]) -> list[Read]:
    """Read every (path, listed size) of files; FileNotFoundError only marks that file gone.

    Any other error (a lost connection, a refused open) is raised: the caller's poll fails
    as a whole and the files are offered again, as with one file at a time.
    """
    answers = _Answers(sftp)
    opened = [answers.send(proto.CMD_OPEN, sftp._adjust_cwd(path), proto.SFTP_FLAG_READ,
                           paramiko.SFTPAttributes()) for path, _ in files]
    handles: list[bytes | None] = []
    failure: BaseException | None = None
    for num in opened:  # every answer taken, so that the session stays in step
        kind, msg = answers.take(num)
        try:
            _status(sftp, kind, msg)
            if kind != proto.CMD_HANDLE:
                raise paramiko.SFTPError("expected a handle")
            handles.append(msg.get_binary())
        except FileNotFoundError:
            handles.append(None)
        except (OSError, EOFError, paramiko.SFTPError) as exc:
            handles.append(None)
            failure = failure or exc
    reads: list[list[tuple[int, int]]] = []  # per file: (request, length asked)
    for (_, size), handle in zip(files, handles, strict=True):
        asked = []
        if handle is not None and failure is None:
            for offset in range(0, size, CHUNK):
                length = min(CHUNK, size - offset)
                asked.append((answers.send(proto.CMD_READ, handle, proto.int64(offset), length),
                              length))
            # One read past the listed end: it must find the end of the file.
            asked.append((answers.send(proto.CMD_READ, handle, proto.int64(size), 1), 0))
        reads.append(asked)
    contents: list[tuple[bytes, bool] | None] = []
    for asked in reads:
        parts, whole = [], True
        for num, length in asked:
            kind, msg = answers.take(num)
            try:
                _status(sftp, kind, msg)
                if kind != proto.CMD_DATA:
                    raise paramiko.SFTPError("expected data")
                data = msg.get_string()
            except EOFError:
                data = None
            except (OSError, paramiko.SFTPError) as exc:
                failure = failure or exc
                data = None
            if length == 0:
                whole = whole and data is None  # past the end: nothing more
            else:
                whole = whole and data is not None and len(data) == length
                parts.append(data or b"")
        contents.append((b"".join(parts), whole) if asked else None)
    # Stat the paths (not the handles): a file replaced meanwhile shows its new self.
    stats = [answers.send(proto.CMD_STAT, sftp._adjust_cwd(path)) if handle is not None
             else None for (path, _), handle in zip(files, handles, strict=True)]
    closes = [answers.send(proto.CMD_CLOSE, handle) for handle in handles if handle is not None]
    afters: list[tuple[int, int] | None] = []
    for num in stats:
        if num is None:
            afters.append(None)
            continue
        kind, msg = answers.take(num)
        try:
            _status(sftp, kind, msg)
            if kind != proto.CMD_ATTRS:
                raise paramiko.SFTPError("expected attributes")
            attrs = paramiko.SFTPAttributes._from_msg(msg)
            afters.append((int(attrs.st_size or 0), int(attrs.st_mtime or 0)))
        except FileNotFoundError:
            afters.append(None)
        except (OSError, EOFError, paramiko.SFTPError) as exc:
            failure = failure or exc
            afters.append(None)
    for num in closes:
        kind, msg = answers.take(num)
        # The bytes are read and checked: a failed close changes nothing.
        with contextlib.suppress(OSError, EOFError):
            _status(sftp, kind, msg)
    if failure is not None:
        if isinstance(failure, OSError):
            raise failure
        raise OSError(errno.EIO, f"SFTP: {failure}") from failure
    out = []
    for (path, _), content, after in zip(files, contents, afters, strict=True):
        if content is None or after is None:
            out.append(Read(path, None, None, False))
        else:
            out.append(Read(path, content[0], after, content[1]))
    return out
