"""What an SFTP inbox may hand over: checked remote names, and files stable across two polls."""

from __future__ import annotations

from collections.abc import Mapping

# Names a writer uses while a file is incomplete; never taken (the same list as the folder inbox).
PARTIAL = (".tmp", ".part", ".partial", ".filepart")
MAX_NAME_BYTES = 255  # NAME_MAX on Linux; a longer name is someone probing


def refusal(name: str) -> str | None:
    """Why a remote file name must not be used (as a name or in a path), or None if it is fine."""
    if name in ("", ".", ".."):
        return "not a file name"
    if "/" in name or "\\" in name:
        # A server may list anything; a separator would let a name walk out of the inbox.
        return "contains a path separator"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains a control character (NUL, newline, ...)"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from undecodable bytes
        return "is not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    return None


def skipped(name: str) -> bool:
    """Hidden files and files still being written: not ours to take, not worth a warning."""
    return name.startswith(".") or name.lower().endswith(PARTIAL)


Signature = tuple[int, int]  # (size, mtime) as the server lists them


class Stability:
    """Which files kept the same size and mtime since the previous poll: those are complete.

    The clock is the poll itself: a partner's upload that is still going changes the size or
    the mtime between two listings, so a file is taken no sooner than its second sighting.
    """

    def __init__(self) -> None:
        self._previous: dict[str, Signature] = {}

    def observe(self, listing: Mapping[str, Signature]) -> list[str]:
        """Record this poll's listing; the names unchanged since the last one, sorted."""
        ready = sorted(n for n, sig in listing.items() if self._previous.get(n) == sig)
        self._previous = dict(listing)  # names gone from the inbox are forgotten
        return ready

    def forget(self, name: str) -> None:
        """Start over for `name`: it changed while it was being downloaded."""
        self._previous.pop(name, None)
