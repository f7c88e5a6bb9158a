"""Streaming X12 reader: bytes in, segments out, with the delimiters taken from each ISA.

Memory stays bounded whatever the file size: the input is read in chunks and only
one chunk plus one unfinished segment is held at a time.

Tolerated, because real partners send them: a UTF-8 byte order mark, EBCDIC
(decoded as code page 037), line breaks or spaces after terminators, indentation,
lines hard-wrapped inside segments (CR and LF are noise unless they are a delimiter),
several interchanges per file, each with its own delimiters. Not tolerated: no ISA at
the start, or an ISA whose delimiters cannot be found; those raise X12ReadError.
What is tolerated but wrong (an ISA that is not 106 characters, say) is recorded on
the Interchange so the validator can reject it with the right TA1 code.
"""

from __future__ import annotations

import codecs
import io
import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, count, repeat
from operator import itemgetter
from typing import BinaryIO

from canonical.errors import InputTooLarge, X12ReadError

CHUNK_SIZE = 1 << 16
# A segment longer than this is not X12 (the longest standard segment is far shorter);
# refusing it keeps memory bounded on a file without terminators.
MAX_SEGMENT_CHARS = 1 << 20
ISA_LENGTH = 106
_WHITESPACE = " \t\r\n\x0b\x0c"
_EBCDIC_ISA = b"\xc9\xe2\xc1"  # "ISA" in EBCDIC code pages 037/500
_EBCDIC_NOISE = b"\x40\x25\x15\x0d"  # space, LF, NEL and CR in EBCDIC
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators one interchange uses, read from its ISA."""

    element: str
    component: str
    repetition: str | None
    segment: str

    def all(self) -> tuple[str, ...]:
        return tuple(c for c in (self.element, self.component, self.repetition, self.segment) if c)


class Segment(tuple):
    """One segment: fields[0] is the segment id, fields[n] is element n (X12 numbering).

    A tuple (fields, position, line) built by tuple's own constructor: creating one per
    segment in C, not through a Python __init__, is what keeps the reader near the speed
    of a bare str.split.
    """

    __slots__ = ()

    fields: list[str] = property(itemgetter(0))  # type: ignore[assignment]
    # ordinal of the segment in the file, from 1
    position: int = property(itemgetter(1))  # type: ignore[assignment]
    # line of the file on which the segment starts, from 1
    line: int = property(itemgetter(2))  # type: ignore[assignment]

    @classmethod
    def of(cls, fields: list[str], position: int, line: int) -> Segment:
        return cls((fields, position, line))

    @property
    def id(self) -> str:
        return self[0][0]

    def get(self, n: int) -> str:
        """Element n, or '' when the segment is shorter."""
        f = self[0]
        return f[n] if n < len(f) else ""

    def __repr__(self) -> str:
        return f"Segment({'*'.join(self.fields)!r}, position={self.position}, line={self.line})"


@dataclass(slots=True)
class Interchange:
    """What the reader learnt about one interchange from its ISA header."""

    delimiters: Delimiters
    isa_length: int  # characters in the ISA, CR/LF noise removed; 106 when well formed
    line: int
    position: int
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReadInfo:
    """What the reader noticed about the file as a whole."""

    encoding: str = "ascii"
    bom: bool = False
    warnings: list[str] = field(default_factory=list)


def _open(source: str | os.PathLike[str] | bytes | BinaryIO, max_bytes: int | None) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if max_bytes is not None and len(data) > max_bytes:
            raise InputTooLarge(f"input is {len(data)} bytes, over the limit of {max_bytes}")
        return io.BytesIO(data)
    if isinstance(source, str | os.PathLike):
        size = os.path.getsize(source)
        if max_bytes is not None and size > max_bytes:
            raise InputTooLarge(f"{os.fspath(source)} is {size} bytes, over the limit of {max_bytes}")
        return open(source, "rb")
    return source


class X12Reader:
    """Iterate the segments of an X12 file; `interchange` describes the current ISA."""

    def __init__(self, source: str | os.PathLike[str] | bytes | BinaryIO, *,
                 max_bytes: int | None = None, chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = _open(source, max_bytes)
        self._owns = not hasattr(source, "read")
        self._max_bytes = max_bytes
        self._chunk_size = chunk_size
        self._bytes_read = 0
        self._eof = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._buf = ""
        self.info = ReadInfo()
        self.interchange: Interchange | None = None
        self.segment_count = 0
        self._line_after = 1

    def close(self) -> None:
        if self._owns:
            self._stream.close()

    def __enter__(self) -> X12Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bytes to text ---------------------------------------------------------------

    def _read_raw(self) -> bytes:
        data = self._stream.read(self._chunk_size)
        self._bytes_read += len(data)
        if self._max_bytes is not None and self._bytes_read > self._max_bytes:
            raise InputTooLarge(f"input is over the limit of {self._max_bytes} bytes")
        return data

    def _first_decode(self) -> None:
        raw = self._read_raw()
        # Read on until the BOM and any leading layout are past and three bytes tell
        # whether "ISA" is EBCDIC, so the guess does not depend on the chunk size.
        while (len(raw.removeprefix(_BOM).lstrip(_EBCDIC_NOISE)) < len(_EBCDIC_ISA)
               and len(raw) < MAX_SEGMENT_CHARS):
            more = self._read_raw()
            if not more:
                break  # _fill sees the end again and finishes the decoder
            raw += more
        if raw.startswith(_BOM):
            raw = raw[len(_BOM):]
            self.info.bom = True
        if raw.lstrip(_EBCDIC_NOISE).startswith(_EBCDIC_ISA):
            self.info.encoding = "cp037"
            self.info.warnings.append("the file is EBCDIC; it was read as code page 037")
            self._decoder = codecs.getincrementaldecoder("cp037")()
        else:
            self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buf = self._decode(raw, final=False)

    def _decode(self, raw: bytes, final: bool) -> str:
        assert self._decoder is not None
        try:
            text = self._decoder.decode(raw, final)
        except UnicodeDecodeError as exc:
            # Not UTF-8: Latin-1 from the first bad byte on. The bytes still pending in the
            # decoder belong before this chunk; what precedes the bad byte is good UTF-8,
            # so where a chunk ends never changes the text.
            data = self._decoder.getstate()[0] + raw
            where = self._bytes_read - len(data) + exc.start
            self.info.warnings.append(
                f"not valid UTF-8 at byte {where}: the file was read as Latin-1 from there")
            self.info.encoding = "latin-1"
            self._decoder = codecs.getincrementaldecoder("latin-1")()
            text = data[:exc.start].decode("utf-8") + data[exc.start:].decode("latin-1")
        if text and self.info.encoding == "ascii" and not text.isascii():
            self.info.encoding = "utf-8"
        return text

    def _fill(self) -> bool:
        """Append one more chunk of text to the buffer; False at end of input."""
        if self._eof:
            return False
        raw = self._read_raw()
        if not raw:
            self._eof = True
            self._buf += self._decode(b"", final=True)
            return False
        self._buf += self._decode(raw, final=False)
        return True

    # -- the ISA ---------------------------------------------------------------------

    def _start_interchange(self, line: int, position: int) -> Interchange:
        """Read the delimiters from the ISA at the start of the buffer."""
        while len(self._buf) < 4 * ISA_LENGTH and self._fill():
            pass
        buf = self._buf
        elem = buf[3] if len(buf) > 3 else ""
        if not buf.startswith("ISA") or not elem or elem.isalnum() or elem in _WHITESPACE:
            raise X12ReadError("no ISA segment with a valid element separator", line=line)
        # ISA16 is the character after the 16th element separator and the segment
        # terminator follows it; count separators rather than trusting fixed columns so
        # that an unpadded ISA is still read (and then rejected by the validator).
        i, seps = 3, 0
        limit = min(len(buf), 4 * ISA_LENGTH)
        while i < limit:
            if buf[i] == elem:
                seps += 1
                if seps == 16:
                    break
            i += 1
        if seps < 16 or i + 2 >= len(buf):
            raise X12ReadError("the ISA segment is cut short: its 16 elements and the "
                               "segment terminator were not found", line=line)
        # When the terminator is CR, an LF after it is noise (removed below like any other).
        component, term = buf[i + 1], buf[i + 2]
        raw_isa = buf[:i + 3]
        noise = {"\r", "\n"} - {elem, component, term}
        clean_isa = "".join(c for c in raw_isa if c not in noise)
        fields = clean_isa[:-2].split(elem)
        version = fields[12] if len(fields) > 12 else ""
        isa11 = fields[11] if len(fields) > 11 else ""
        repetition = None
        if version >= "00402" and len(isa11) == 1 and not isa11.isalnum() and isa11 not in (
                elem, component, term):
            repetition = isa11
        delims = Delimiters(elem, component, repetition, term)
        ic = Interchange(delims, len(clean_isa), line, position)
        if len(set(delims.all())) != len(delims.all()):
            ic.notes.append("the ISA uses the same character for two delimiters")
        if (not term.isascii() and self.info.encoding != "cp037") or term.isalnum():
            ic.notes.append(f"segment terminator {term!r} is not a valid X12 delimiter")
        return ic

    # -- segments --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Segment]:
        # Segments come in per-chunk batches; chaining them in C keeps a generator step
        # per segment out of the hot path.
        return chain.from_iterable(self._batches())

    def _batches(self) -> Iterator[list[Segment]]:
        self._first_decode()
        line = self._skip_noise(1)
        if not self._buf:
            raise X12ReadError("the file is empty")
        if not self._buf.startswith("ISA"):
            raise X12ReadError(f"the file does not start with an ISA segment "
                               f"(it starts {self._buf[:20]!r})", line=line)
        next_line: int | None = line
        while next_line is not None:
            if self._buf.startswith("ISA"):
                next_line = yield from self._interchange(next_line)
            else:
                yield from ([seg] for seg in self._stray(next_line))
                return
            if next_line is not None:
                next_line = self._skip_noise(next_line)
                if not self._buf:
                    return

    def _skip_noise(self, line: int) -> int:
        """Drop whitespace (and EBCDIC NEL, NUL, EOF marks) before the next segment.

        Reads on until at least three characters follow the noise (or the input ends):
        whether the next segment is an ISA must not depend on where a chunk ends.
        """
        while True:
            lead = self._buf.lstrip(_WHITESPACE + "\x85\x00\x1a")
            if len(lead) >= len("ISA") or not self._fill():
                break
        line += self._buf.count("\n", 0, len(self._buf) - len(lead))
        self._buf = lead
        return line

    def _interchange(self, line: int) -> Generator[list[Segment], None, int | None]:
        """Batches of segments from the ISA at the start of the buffer up to its IEA (or
        the next ISA). Returns the line after it, or None at the end of the input."""
        position = self.segment_count
        ic = self._start_interchange(line, position + 1)
        self.interchange = ic
        term, elem = ic.delimiters.segment, ic.delimiters.element
        delims = ic.delimiters.all()
        strip = "".join(c for c in _WHITESPACE if c not in delims)
        noisy = [c for c in "\r\n" if c not in delims]
        newline_is_term = term == "\n"
        while True:
            buf = self._buf
            pieces = buf.split(term)
            carry = pieces.pop()
            if len(carry) > MAX_SEGMENT_CHARS:
                raise X12ReadError(f"no segment terminator {term!r} within "
                                   f"{MAX_SEGMENT_CHARS} characters", line=line)
            starts = self._plain_starts(buf, pieces, line, term, noisy, newline_is_term)
            if starts is not None:
                # No envelope boundary and no line break inside a segment: build the
                # whole chunk's segments at once.
                texts = [t.split(elem) for t in [p.lstrip(strip) for p in pieces] if t]
                if len(texts) != len(pieces):
                    # Blank pieces (a doubled terminator): keep each segment's own line.
                    starts = [s for p, s in zip(pieces, starts, strict=False)
                              if p.lstrip(strip)]
                batch = list(map(Segment, zip(texts, count(position + 1), starts)))
                position += len(batch)
                self.segment_count = position
                line = self._line_after
                if batch:
                    yield batch
            else:
                batch = []
                for k, raw in enumerate(pieces):
                    nl = 1 if newline_is_term else raw.count("\n")
                    text = raw.lstrip(strip)
                    if not text:
                        line += nl
                        continue
                    start_line = line + raw.count("\n", 0, len(raw) - len(text))
                    line += nl
                    for c in noisy:
                        if c in text:
                            text = text.replace(c, "")
                    if text.startswith("ISA") and position + 1 != ic.position and (
                            len(text) > 3 and not text[3].isalnum()):
                        # A new ISA before this one's IEA: it may have other delimiters.
                        self._buf = term.join([raw.lstrip(strip), *pieces[k + 1:], carry])
                        if batch:
                            yield batch
                        return start_line
                    fields = text.split(elem)
                    position += 1
                    self.segment_count = position
                    batch.append(Segment((fields, position, start_line)))
                    if fields[0] == "IEA":
                        self._buf = term.join([*pieces[k + 1:], carry])
                        yield batch
                        return line
                if batch:
                    yield batch
            self._buf = carry
            if not self._fill():
                if self._buf.strip(strip):
                    self._buf += term  # a last segment without a terminator is still one
                    continue
                return None

    def _plain_starts(self, buf: str, pieces: list[str], line: int, term: str,
                      noisy: list[str], newline_is_term: bool) -> Iterable[int] | None:
        """Start lines of the pieces when the chunk is plain, else None (the careful path).

        Plain: no ISA after its start and no IEA (envelope boundaries need the careful
        path), and every noise CR/LF sits right after a terminator, so it is leading
        layout and never inside a segment.
        """
        if "IEA" in buf or buf.find("ISA", 1) != -1:
            return None
        if newline_is_term:
            if "\r" in noisy and "\r" in buf:
                return None
            self._line_after = line + len(pieces)
            return range(line, line + len(pieces))
        # Layout at the very start of the buffer followed the previous chunk's last
        # terminator: it is leading too.
        lead = len(buf) - len(buf.lstrip("\r\n"))
        cr_ok = "\r" not in noisy or buf.count("\r", lead) == buf.count(term + "\r")
        if not cr_ok:
            return None
        newlines = buf.count("\n", lead) if "\n" in noisy else 0
        if newlines == 0 and lead and "\n" in noisy:
            newlines = -1  # only the leading line break(s): count per piece below
        if newlines == 0:
            self._line_after = line
            return repeat(line)
        after = buf.count(term + "\n") + (buf.count(term + "\r\n") if "\r" in noisy else 0)
        if newlines > 0 and newlines != after:
            return None
        cum = list(accumulate([p.count("\n") for p in pieces], initial=line))
        self._line_after = cum[-1]
        return cum[1:]

    def _stray(self, line: int) -> Iterator[Segment]:
        """Data after an IEA that is not a new ISA, cut with the last delimiters, so the
        validator can report it as outside any interchange."""
        assert self.interchange is not None
        ic = self.interchange
        self.interchange = Interchange(ic.delimiters, ic.isa_length, line, self.segment_count + 1,
                                       ["data after IEA that is not an interchange"])
        d = ic.delimiters
        position = self.segment_count
        while True:
            pieces = self._buf.split(d.segment)
            carry = pieces.pop()
            if len(carry) > MAX_SEGMENT_CHARS:
                raise X12ReadError(f"no segment terminator {d.segment!r} within "
                                   f"{MAX_SEGMENT_CHARS} characters", line=line)
            for raw in pieces:
                text = raw.strip(_WHITESPACE)
                start = line + raw.count("\n", 0, len(raw) - len(raw.lstrip(_WHITESPACE)))
                line += raw.count("\n")
                if text:
                    position += 1
                    self.segment_count = position
                    yield Segment((text.split(d.element), position, start))
            self._buf = carry
            if not self._fill():
                if self._buf.strip(_WHITESPACE):
                    self._buf += d.segment
                    continue
                return


def split_components(value: str, delimiters: Delimiters) -> list[str]:
    """A composite element's components (component 1 first)."""
    return value.split(delimiters.component)
