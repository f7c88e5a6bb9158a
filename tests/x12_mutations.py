"""Structure-aware mutations of the X12 corpus: files that stay plausible X12.

Random bytes mostly test the reader's first line of defence; these keep the delimiters,
the envelope and the segment ids, and change what a partner's bug would change: an
element value swapped for another element's value or for one a character longer or
shorter, a segment moved, dropped or duplicated, a loop repeated, a qualifier changed, a
digit written as a superscript or an Arabic-Indic digit. Now and then the SE01, GE01 and
IEA01 counts are fixed up afterwards, so that a mutation is not always caught by its
trailer alone.

mutation(seed) is deterministic: the same seed gives the same bytes on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from canonical.errors import X12ReadError
from mappings.x12.reader import Delimiters, X12Reader
from tests.conftest import X12_CORPUS

# Digits X12 does not have: Latin-1 superscripts, Arabic-Indic, Devanagari, full-width.
FOREIGN_DIGITS = "\u00b2\u00b3\u00b9\u0660\u0663\u0669\u0967\uff10\uff15"
_ENVELOPE = frozenset(("ISA", "IEA", "GS", "GE", "ST", "SE"))


@dataclass(frozen=True)
class Parsed:
    """A corpus file as segments, each with the delimiters of its interchange."""

    name: str
    segments: tuple[tuple[tuple[str, ...], Delimiters], ...]
    encoding: str
    newline: str


@dataclass(frozen=True)
class Mutation:
    seed: int
    source: str
    ops: tuple[str, ...]
    data: bytes

    def __str__(self) -> str:
        return f"seed {self.seed} ({self.source}: {', '.join(self.ops)})"


def _parse(path: Path) -> Parsed | None:
    data = path.read_bytes()
    segs = []
    try:
        with X12Reader(data) as reader:
            for seg in reader:
                segs.append((tuple(seg.fields), reader.interchange.delimiters))
            encoding = reader.info.encoding
    except X12ReadError:
        return None
    if not segs:
        return None
    delims = segs[0][1].all()
    newline = next((n for n in ("\r\n", "\n") if n.encode() in data and
                    not set(n) & set(delims)), "")
    return Parsed(f"{path.parent.name}/{path.name}", tuple(segs),
                  "utf-8" if encoding in ("ascii", "utf-8") else encoding, newline)


@cache
def corpus() -> tuple[Parsed, ...]:
    """Every corpus file the reader can read (none when the corpus is missing)."""
    files = sorted(X12_CORPUS.glob("*/*.edi")) if X12_CORPUS.is_dir() else []
    return tuple(p for p in map(_parse, files) if p is not None)


@cache
def _values() -> tuple[tuple[str, ...], dict[tuple[str, int], tuple[str, ...]]]:
    """All element values of the corpus, and the short codes seen at each (segment, element)."""
    values: set[str] = set()
    codes: dict[tuple[str, int], set[str]] = {}
    for p in corpus():
        for fields, _ in p.segments:
            for k, v in enumerate(fields[1:], 1):
                values.add(v)
                if 1 <= len(v) <= 3 and v.isascii() and v.isalnum():
                    codes.setdefault((fields[0], k), set()).add(v)
    return tuple(sorted(values)), {k: tuple(sorted(v)) for k, v in codes.items()}


Segs = list[tuple[list[str], Delimiters]]


def _element(rng: random.Random, segs: Segs, prefer: Callable[[str], bool] | None = None
             ) -> tuple[int, int] | None:
    """A (segment, element) place holding a value, preferring values `prefer` likes."""
    places = [(i, k) for i, (f, _) in enumerate(segs) for k in range(1, len(f)) if f[k]]
    if prefer is not None:
        liked = [(i, k) for i, k in places if prefer(segs[i][0][k])]
        places = liked or places
    return rng.choice(places) if places else None


def _body(segs: Segs) -> list[int]:
    return [i for i, (f, _) in enumerate(segs) if f[0] != "ISA"]


def _other_value(rng: random.Random, segs: Segs) -> str:
    place = _element(rng, segs)
    if place is None:
        return "no element"
    i, k = place
    return f"swap {segs[i][0][0]}{k:02d} for {_set(segs, i, k, rng.choice(_values()[0]))}"


def _set(segs: Segs, i: int, k: int, value: str) -> str:
    fields = segs[i][0]
    old = fields[k]
    fields[k] = value
    return f"{old!r} -> {value!r}"


def _neighbour_length(rng: random.Random, segs: Segs) -> str:
    place = _element(rng, segs)
    if place is None:
        return "no element"
    i, k = place
    v = segs[i][0][k]
    if rng.random() < 0.5 and len(v) > 1:
        new = v[:-1]
    else:
        new = v + (rng.choice("0123456789") if v[-1:].isdigit() else rng.choice("AZX "))
    return f"length {segs[i][0][0]}{k:02d} {_set(segs, i, k, new)}"


def _move(rng: random.Random, segs: Segs) -> str:
    body = _body(segs)
    if len(body) < 2:
        return "nothing to move"
    i = rng.choice(body)
    seg = segs.pop(i)
    j = min(max(1, i + rng.randint(-8, 8)), len(segs))
    segs.insert(j, seg)
    return f"move {seg[0][0]} {i}->{j}"


def _copy(seg: tuple[list[str], Delimiters]) -> tuple[list[str], Delimiters]:
    return list(seg[0]), seg[1]


def _dup_segment(rng: random.Random, segs: Segs) -> str:
    body = _body(segs)
    if not body:
        return "nothing to duplicate"
    i = rng.choice(body)
    segs.insert(i + 1, _copy(segs[i]))
    return f"duplicate {segs[i][0][0]} at {i}"


def _dup_loop(rng: random.Random, segs: Segs) -> str:
    """Repeat a loop: a segment and those after it up to its next occurrence or a trailer."""
    starts = [i for i in _body(segs) if segs[i][0][0] not in _ENVELOPE]
    if not starts:
        return "no loop"
    i = rng.choice(starts)
    sid = segs[i][0][0]
    j = i + 1
    while j < len(segs) and j - i < 40 and segs[j][0][0] != sid and segs[j][0][0] not in _ENVELOPE:
        j += 1
    segs[j:j] = [_copy(s) for s in segs[i:j]]
    return f"repeat loop {sid} at {i} ({j - i} segments)"


def _drop(rng: random.Random, segs: Segs) -> str:
    body = _body(segs)
    if not body:
        return "nothing to drop"
    i = rng.choice(body)
    return f"drop {segs.pop(i)[0][0]} at {i}"


def _qualifier(rng: random.Random, segs: Segs) -> str:
    codes = _values()[1]
    places = [(i, k) for i, (f, _) in enumerate(segs) for k in range(1, len(f))
              if len(codes.get((f[0], k), ())) > 1 and f[k] and f[0] not in _ENVELOPE]
    if not places:
        return "no qualifier"
    i, k = rng.choice(places)
    seen = [c for c in codes[(segs[i][0][0], k)] if c != segs[i][0][k]]
    new = rng.choice(seen) if rng.random() < 0.8 else rng.choice(["ZZ", "XX", "9", "A1B"])
    return f"qualifier {segs[i][0][0]}{k:02d} {_set(segs, i, k, new)}"


def _foreign_digit(rng: random.Random, segs: Segs) -> str:
    place = _element(rng, segs, prefer=lambda v: any(c in "0123456789" for c in v))
    if place is None:
        return "no digits"
    i, k = place
    v = segs[i][0][k]
    digits = [n for n, c in enumerate(v) if c in "0123456789"] or [len(v) - 1]
    chosen = digits if rng.random() < 0.2 else [rng.choice(digits)]
    new = "".join(rng.choice(FOREIGN_DIGITS) if n in chosen else c for n, c in enumerate(v))
    return f"foreign digit {segs[i][0][0]}{k:02d} {_set(segs, i, k, new)}"


def _empty(rng: random.Random, segs: Segs) -> str:
    place = _element(rng, segs)
    if place is None:
        return "no element"
    i, k = place
    return f"empty {segs[i][0][0]}{k:02d} {_set(segs, i, k, '')}"


OPS: tuple[Callable[[random.Random, Segs], str], ...] = (
    _other_value, _neighbour_length, _move, _dup_segment, _dup_loop, _drop, _qualifier,
    _foreign_digit, _foreign_digit, _empty)


def fix_counts(segs: Segs) -> None:
    """SE01, GE01 and IEA01 made to agree with what they close."""
    st = gs = isa = None
    sets = groups = 0
    for i, (f, _) in enumerate(segs):
        sid = f[0]
        if sid == "ISA":
            isa, groups = i, 0
        elif sid == "GS":
            gs, sets = i, 0
            groups += 1
        elif sid == "ST":
            st = i
            sets += 1
        elif sid == "SE" and st is not None and len(f) > 1:
            f[1] = str(i - st + 1)
            st = None
        elif sid == "GE" and gs is not None and len(f) > 1:
            f[1] = str(sets)
        elif sid == "IEA" and isa is not None and len(f) > 1:
            f[1] = str(groups)


def render(segs: Segs, encoding: str, newline: str) -> bytes:
    text = "".join(d.element.join(f) + d.segment + (newline if d.segment not in "\r\n" else "")
                   for f, d in segs)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8")  # a foreign digit Latin-1 or EBCDIC cannot carry


def mutation(seed: int) -> Mutation:
    """The mutation numbered `seed`: one to three operations on one corpus file."""
    rng = random.Random(seed)
    source = rng.choice(corpus())
    segs: Segs = [(list(f), d) for f, d in source.segments]
    ops = [rng.choice(OPS)(rng, segs) for _ in range(rng.choice((1, 1, 2, 3)))]
    if rng.random() < 0.5:
        fix_counts(segs)
        ops.append("counts fixed")
    return Mutation(seed, source.name, tuple(ops), render(segs, source.encoding, source.newline))
