"""edigw and pyx12, with the same maps, agree on every transaction set they both read.

Over every corpus file pyx12 can read, and over mutated copies (segments dropped,
duplicated, swapped; elements emptied or lengthened), both engines must give the same
accept/reject verdict per transaction set and flag the same segment positions, unless
the difference is one of INTENDED below (each with its reason).

The bridge hands pyx12 a copy with the version fields and GS01 normalised, so this
compares the content of the sets: envelope-only verdicts (TA1, GS01/ST01 pairing,
nearest-map warnings) are the validator's alone and are left out here.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from canonical.errors import SpecificationError, X12ReadError
from mappings.x12 import pyx12_bridge, validator
from mappings.x12.reader import X12Reader
from tests import x12_mutations
from tests.conftest import X12_CORPUS

pytestmark = pytest.mark.conformance

CORPUS_FILES = sorted(X12_CORPUS.glob("*/*.edi")) if X12_CORPUS.is_dir() else []
# Set-level codes that come from the set's own content (pyx12 checks these too).
_CONTENT_SET_CODES = {"2", "3", "4", "23"}

# Differences we mean to have: (reason, predicate on (ours, theirs)) per kind.
INTENDED = {
    "qualifier": "a segment whose qualifier matches no place in the map is placed at the "
                 "first place with its id and its bad code reported (AK403 7); pyx12 calls it "
                 "'not found' and then may lose its place for the following segments",
    "trailing-space": "trailing spaces in AN/ID values are a warning here (X12 says they "
                      "should be suppressed, not that the value is invalid); pyx12 rejects",
    "legacy-date": "a group older than 004010 validated against the 4010 map may write "
                   "dates as YYMMDD, as its own version did; pyx12 holds them to CCYYMMDD",
    "missing-position": "a missing mandatory segment is reported at the segment where it was "
                        "found missing; pyx12 reports the segment before it",
    "after-se": "a segment after SE belongs to no set: it is reported on the interchange "
                "(TA105 024); pyx12 counts it into the set it just closed",
    "hl-numbering": "HL01 must be unique and increasing and HL02 a parent seen before; pyx12 "
                    "also demands HL01 = previous + 1, so one duplicated HL flags every later HL",
    "nearest-map": "in a version without a map of its own, what the nearest map does not know "
                   "(a segment, its place or count, an element past the last) is a warning "
                   "naming the version, since that version may allow it; pyx12 holds the set "
                   "to the nearest map",
}
# Reviewed against the corpus and its mutated copies (1,448 inputs, 2,278 sets compared):
# each excuse above explained some difference there (after-se 9, legacy-date 28,
# trailing-space 20, hl-numbering 8, missing-position 10, qualifier 10); only trailing-space
# turned an accept into a reject (4 sets, all the padded N301 of oopfactory-adobe-cr-term).
# A "same-position" excuse (any superset of pyx12's positions with a missing segment) was
# dropped: it explained nothing and could have hidden a real extra rejection.


def _mutations(data: bytes) -> list[tuple[str, bytes]]:
    """Deterministic mutated copies of one file."""
    try:
        reader = X12Reader(data)
        next(iter(reader))
        term = reader.interchange.delimiters.segment.encode("latin-1")
        elem = reader.interchange.delimiters.element.encode("latin-1")
    except Exception:
        return []
    segs = data.split(term)
    body = [i for i, s in enumerate(segs) if s.strip()[:3] not in
            (b"ISA", b"IEA", b"GS" + elem[:1], b"GE" + elem[:1], b"ST" + elem[:1],
             b"SE" + elem[:1])]
    out = []
    for k in body[:: max(1, len(body) // 6)][:6]:
        dropped = segs[:k] + segs[k + 1:]
        out.append((f"drop {k}", term.join(dropped)))
        out.append((f"dup {k}", term.join([*segs[:k + 1], segs[k], *segs[k + 1:]])))
        if k + 1 < len(segs):
            swapped = list(segs)
            swapped[k], swapped[k + 1] = swapped[k + 1], swapped[k]
            out.append((f"swap {k}", term.join(swapped)))
        parts = segs[k].split(elem)
        if len(parts) > 2:
            emptied = list(segs)
            emptied[k] = elem.join([*parts[:1], b"", *parts[2:]])
            out.append((f"empty {k}", term.join(emptied)))
            longer = list(segs)
            longer[k] = elem.join([*parts[:1], parts[1] + b"X" * 90, *parts[2:]])
            out.append((f"long {k}", term.join(longer)))
    return out


@dataclass
class Tally:
    """What a comparison covered: inputs pyx12 could not read, sets compared, differences excused."""

    unread: list[str] = field(default_factory=list)  # pyx12's reasons
    compared: int = 0  # sets both engines gave a verdict on
    excused: Counter[str] = field(default_factory=Counter)  # by INTENDED key
    flips: Counter[str] = field(default_factory=Counter)  # of those, accept/reject differs


def _compare(data: bytes, tally: Tally | None = None) -> list[str]:
    """Differences between the engines on one input, as sentences ([] when they agree)."""
    tally = tally if tally is not None else Tally()
    try:
        theirs = pyx12_bridge.run_pyx12(data)
    except (X12ReadError, SpecificationError) as exc:
        tally.unread.append(str(exc))
        return []  # pyx12 cannot read it: nothing to compare (counted, see the floor test)
    ours = validator.validate(data)
    problems = []
    keys = [(ic.control_number, g.control_number, s.control_number)
            for ic in ours.interchanges for g in ic.groups for s in g.sets]
    for ic in ours.interchanges:
        for g in ic.groups:
            for s in g.sets:
                key = (ic.control_number, g.control_number, s.control_number)
                t = theirs.sets.get(key)
                if t is None or s.map_name is None or keys.count(key) > 1:
                    # pyx12's verdicts are keyed by ISA13/GS06/ST02: a key that occurs twice
                    # (a repeated ST02, or the same interchange twice) is ambiguous
                    continue
                tally.compared += 1
                content = [f for f in s.errors if f.level in ("segment", "element")
                           or (f.level == "set" and f.code in _CONTENT_SET_CODES)]
                our_ok = not content
                ours_at = {f.segment_position for f in content if f.segment_position}
                theirs_at = {e.segment_position for e in t.errors if e.segment_position}
                if our_ok != t.accepted or (not our_ok and ours_at != theirs_at):
                    reason = _intended(s, t, ours_at, theirs_at)
                    if reason:
                        tally.excused[reason] += 1
                        tally.flips[reason] += our_ok != t.accepted
                        continue
                    problems.append(
                        f"set {key}: edigw {'A' if our_ok else 'R'} at {sorted(ours_at)}, "
                        f"pyx12 {'A' if t.accepted else 'R'} at {sorted(theirs_at)}: "
                        f"{[(e.code, e.segment_id, e.segment_position) for e in t.errors][:4]}"
                        f" / {[(f.code, f.segment_id, f.segment_position) for f in content][:4]}")
    return problems


def _intended(s, t, ours_at: set[int], theirs_at: set[int]) -> str | None:
    """The INTENDED key that explains the difference, or None."""
    ours_missing = {f.segment_position for f in s.errors
                    if f.level == "segment" and f.code == "3" and f.segment_position}
    shifted = {p - 1 if p in ours_missing else p for p in ours_at}
    if ours_missing and (shifted == theirs_at or shifted | ours_at >= theirs_at >= shifted):
        return "missing-position"
    noted = {f.segment_position for f in s.warnings
             if f.segment_position and "may allow it: not rejected" in f.message}
    if noted and ours_at <= theirs_at and theirs_at - ours_at <= noted:
        return "nearest-map"
    rejected_both = not t.accepted and bool(s.errors)
    if rejected_both and all(p >= s.segment_count for p in theirs_at - ours_at) \
            and any(f.code == "4" and f.level == "set" for f in s.errors):
        return "after-se"
    hl = {e.segment_position for e in t.errors if e.code in ("HL1", "HL2")}
    if rejected_both and hl and ours_at <= theirs_at and theirs_at - ours_at <= hl:
        return "hl-numbering"
    their_msgs = " ".join(e.message for e in t.errors)
    legacy = {e.segment_position for e in t.errors
              if "too short" in e.message and '= 6 < 8' in e.message}
    if legacy and ours_at == theirs_at - legacy:
        return "legacy-date"
    # Only where pyx12's every extra finding is a trailing space that we warned about.
    trailing = {e.segment_position for e in t.errors if "trailing spaces" in e.message}
    warned = {f.segment_position for f in s.warnings if "trailing spaces" in f.message}
    if trailing and not ours_at - theirs_at and theirs_at - ours_at <= trailing & warned:
        return "trailing-space"
    if "not found" in their_msgs and ours_at & theirs_at:
        return "qualifier"  # both flag the segment; pyx12 then flags more
    return None


@functools.cache
def _corpus_file(path: Path) -> tuple[list[str], Tally]:
    """One corpus file compared (once per run: the floor test counts what the others saw)."""
    tally = Tally()
    return _compare(path.read_bytes(), tally), tally


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_verdicts_match_pyx12(path: Path):
    problems, tally = _corpus_file(path)
    if tally.unread:
        pytest.skip(f"nothing compared: {tally.unread[0]}")
    assert problems == []


# What the corpus comparison must cover (70 files in /work/shared/corpus's x12 tree: pyx12
# reads 58 and both engines judge 87 sets in them). Below these, a change to the bridge or
# the corpus has quietly left most of it uncompared.
FLOOR_FILES_READ = 55
FLOOR_SETS_COMPARED = 80
# Every set of the corpus where the engines differ, by reason: a new difference must be
# looked at, not absorbed by a loose excuse. (Counted with the tightened predicates.)
CORPUS_EXCUSED = {
    "legacy-date": 1,  # 810/staedi-two-groups-3010-4010-810-850: BEG05 040317 in a 003010 group
    "trailing-space": 1,  # 855/oopfactory-adobe-cr-term: N301 padded with spaces; we warn
    "missing-position": 1,  # invalid/staedi-997-empty-no-ak1-ak9: AK1/AK9 missing
}


def test_corpus_comparison_covers_enough():
    """Count what the corpus comparison compared, and fail below the floor."""
    if not CORPUS_FILES:
        pytest.skip("no corpus")
    total = Tally()
    for path in CORPUS_FILES:
        _, tally = _corpus_file(path)
        total.unread += [f"{path.parent.name}/{path.name}: {u}" for u in tally.unread]
        total.compared += tally.compared
        total.excused += tally.excused
        total.flips += tally.flips
    read = len(CORPUS_FILES) - len(total.unread)
    print(f"pyx12 differential: {read} of {len(CORPUS_FILES)} files read, {total.compared} "
          f"sets compared, excused {dict(total.excused)} (accept/reject flips "
          f"{dict(+total.flips)}); not read: {total.unread}")
    assert read >= FLOOR_FILES_READ, total.unread
    assert total.compared >= FLOOR_SETS_COMPARED
    assert dict(total.excused) == CORPUS_EXCUSED


@pytest.mark.parametrize("path", [p for p in CORPUS_FILES if p.parent.name != "invalid"],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_mutated_copies_match_pyx12(path: Path):
    problems = []
    for name, data in _mutations(path.read_bytes()):
        problems += [f"{name}: {p}" for p in _compare(data)]
    assert problems == []


# -- structure-aware mutations ---------------------------------------------------------

# Over the mutations of tests/x12_mutations.py the engines must agree on each set's
# verdict (accepted or rejected); the positions are compared above, on simpler copies.
# Sets whose interchange or group the validator rejects, or that it rejects for envelope
# reasons only, are its own to judge (pyx12 sees a normalised envelope), as above.
INTENDED_VERDICTS = {
    "trailing-space": INTENDED["trailing-space"],
    "trailing-separator": "a segment that ends in empty elements (N4*A*B*C*) is read as "
                          "without them: X12 asks senders to leave them out, but no data is "
                          "lost or ambiguous; pyx12 rejects the segment (SEG1)",
    "after-se": INTENDED["after-se"] + "; after the IEA, on the file (TA105 022)",
    "st03-charset": "ST03 (implementation convention) with a character outside the X12 "
                    "character set, a superscript or Arabic-Indic digit, is rejected (AK4 6) "
                    "like any other element; pyx12 does not check it",
    "unknown-set": "a set whose ST01 names no map is rejected alone (AK502 1 or 6); pyx12 "
                   "cannot open it and counts its segments into the set before it",
    "nearest-map": INTENDED["nearest-map"],
}
DIFFERENTIAL_MUTATIONS, ALL_DIFFERENTIAL_MUTATIONS = 40, 1000


def _intended_verdict(s, t, group_sets) -> str | None:
    """Which of INTENDED_VERDICTS explains a verdict difference on one set, or None."""
    messages = [e.message for e in t.errors]
    if s.accepted and messages and all("trailing spaces" in m or "unnecessary trailing" in m
                                       for m in messages):
        return "trailing-space"
    if s.accepted and messages and all("trailing element terminators" in m for m in messages):
        return "trailing-separator"
    ours = [(f.level, f.code, f.segment_id, f.element_position) for f in s.errors
            if f.level != "set"]
    if t.accepted and ours and all(o[2] == "ST" and (o[1] == "8" or o[3] == 3) for o in ours):
        return "st03-charset"
    at = [e.segment_position for e in t.errors]
    if s.accepted and at and all(p is not None and p >= s.segment_count for p in at):
        return "after-se"
    if any(o.map_name is None for o in group_sets) and any(
            e.segment_id == "ST" and "not found" in e.message for e in t.errors):
        return "unknown-set"
    noted = {f.segment_position for f in s.warnings
             if f.segment_position and "may allow it: not rejected" in f.message}
    if s.accepted and at and noted and {p for p in at if p is not None} <= noted:
        return "nearest-map"
    return None


def _verdict_differences(data: bytes) -> list[str]:
    """Sets on which the engines' verdicts differ for no reason in INTENDED_VERDICTS."""
    try:
        theirs = pyx12_bridge.run_pyx12(data)
    except (X12ReadError, SpecificationError):
        return []  # pyx12 cannot read it: nothing to compare
    ours = validator.validate(data)
    keys = [(ic.control_number, g.control_number, s.control_number)
            for ic in ours.interchanges for g in ic.groups for s in g.sets]
    problems = []
    for ic in ours.interchanges:
        for g in ic.groups:
            if ic.errors or g.errors:
                continue
            for s in g.sets:
                key = (ic.control_number, g.control_number, s.control_number)
                t = theirs.sets.get(key)
                if t is None or s.map_name is None or keys.count(key) > 1:
                    continue
                envelope_only = not s.accepted and not any(
                    f.level in ("segment", "element") or f.code in _CONTENT_SET_CODES
                    for f in s.errors)
                if envelope_only or s.accepted == t.accepted:
                    continue
                if _intended_verdict(s, t, g.sets) is None:
                    problems.append(
                        f"set {key}: edigw {s.ack_code} "
                        f"{[(f.code, f.segment_id, f.segment_position) for f in s.errors][:4]}, "
                        f"pyx12 {'A' if t.accepted else 'R'} "
                        f"{[(e.code, e.segment_id, e.segment_position, e.message[:60]) for e in t.errors][:3]}")
    return problems


def _differential(seeds: range) -> list[str]:
    problems = []
    for seed in seeds:
        m = x12_mutations.mutation(seed)
        problems += [f"{m}: {p}" for p in _verdict_differences(m.data)]
    return problems


def test_structure_aware_mutations_get_the_same_set_verdicts_as_pyx12():
    assert _differential(range(DIFFERENTIAL_MUTATIONS)) == []


@pytest.mark.slow
def test_a_thousand_structure_aware_mutations_get_the_same_set_verdicts_as_pyx12():
    assert _differential(range(ALL_DIFFERENTIAL_MUTATIONS)) == []
