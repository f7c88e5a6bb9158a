"""What validation decided about each set or document, compact enough to keep per message.

The validate stage keeps these for the map stage (gateway/store/set_verdicts.py), so the
map stage reads the verdicts instead of validating the same bytes again. A verdict is one
short text line; a chunk of lines is zlib-compressed: a 100 MB interchange of 300,000
sets keeps about 1 MB.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Verdicts per stored chunk: a chunk is read (and held) at a time by the map stage.
CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Verdict:
    """One set's or document's verdict.

    position: X12, the ordinal of the set's ST segment in the file; CSV and JSON, the
    document's number in the file (from 1). group: the X12 functional identifier (GS01),
    '' for CSV and JSON. errors: why it was not accepted, in words ('' when accepted).
    """

    position: int
    accepted: bool
    group: str = ""
    errors: str = ""


def _line(v: Verdict) -> str:
    # Tabs and line breaks in error text would split the record: spaces instead.
    words = " ".join(v.errors.split())
    return f"{v.position}\t{'A' if v.accepted else 'R'}\t{v.group}\t{words}"


def encode(verdicts: Iterable[Verdict]) -> Iterator[bytes]:
    """The verdicts as compressed chunks of CHUNK lines each, in order."""
    lines: list[str] = []
    for v in verdicts:
        lines.append(_line(v))
        if len(lines) >= CHUNK:
            yield zlib.compress("\n".join(lines).encode("utf-8"))
            lines = []
    if lines:
        yield zlib.compress("\n".join(lines).encode("utf-8"))


def decode(chunk: bytes) -> Iterator[Verdict]:
    """The verdicts of one chunk made by encode."""
    for line in zlib.decompress(chunk).decode("utf-8").split("\n"):
        position, flag, group, errors = line.split("\t", 3)
        yield Verdict(int(position), flag == "A", group, errors)


class Lookup:
    """Verdicts looked up by position, positions asked in increasing order (the file's)."""

    def __init__(self, verdicts: Iterable[Verdict]) -> None:
        self._it = iter(verdicts)
        self._next = next(self._it, None)

    def get(self, position: int) -> Verdict | None:
        """The verdict on the set or document at this position (None: not seen by validation)."""
        while self._next is not None and self._next.position < position:
            self._next = next(self._it, None)
        if self._next is None or self._next.position != position:
            return None
        return self._next
