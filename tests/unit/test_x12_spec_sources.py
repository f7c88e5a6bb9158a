"""Every fact of mappings/x12/spec/ that the 850/855/856/810/997/999 maps use, against the
recorded source tables in spec/sources/ (stupidedi, Bots grammars, pyx12; see their headers).

A disagreement fails the test unless EXCEPTIONS names it with a reason; a fact no source
covers must carry the `?` (unverified) marker, and a marker on a fact a source now covers
fails too, so markers and exceptions cannot go stale.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import cache

import pytest

from mappings.x12 import mapgen

pytestmark = pytest.mark.unit

SOURCES = mapgen.SPEC_DIR / "sources"
# Our version key -> the sources' version.
SOURCE_VERSION = {"4010": "004010", "5010": "005010"}
ENVELOPE = ("ISA", "IEA", "TA1", "GS", "GE")

# Disagreements we keep on purpose: key -> reason.
EXCEPTIONS: dict[str, str] = {
    "4010 PO102 number": "X12 004010 PO102 is 330 Quantity Ordered (R 1/15); 380 Quantity "
    "(R 1/15, the same check) replaced it in later releases, and stupidedi's 004010 PO1 "
    "borrows that number",
    "4010 codes ISA01": "the 004010 sources are HIPAA-narrowed (00 03); X12 00401 I01 also has "
    "01 02 04 05 06, which stupidedi's and pyx12's 00501 tables list",
    "4010 codes ISA15": "I (information) is kept for 00401 too: the validator reads ISA15 "
    "itself and accepts P, T and I, so the map must not be narrower",
    "5010 codes GS07": "T (Transportation Data Coordinating Committee) is an X12 code for 455 "
    "(stupidedi 004010 lists T X); the 005010 sources are HIPAA-narrowed to X",
    "5010 codes IK403": "pyx12 also lists 11; 005010X231's IK403 list has no 11 (10 Exclusion "
    "Condition Violated, then 12 Too Many Repetitions)",
}

# Source facts known to be wrong, left out of the comparison: (source, version, segment).
SOURCE_ERRATA: dict[tuple[str, str, str], str] = {
    ("stupidedi", "004010", "BIG"): "BIG01/03 are E32 (Invoice Due Date) and BIG06 E1716, "
    "numbers of stupidedi's own; X12 BIG01/03 are 373 Date and BIG06 327 (Bots' sizes match)",
    ("stupidedi", "004010", "ITD"): "ITD01-14 carry stupidedi's private numbers 1733-1743 "
    "and 954; the X12 numbers are 336 333 338 370 351 446 386 362 388 389 342 352 765 107",
    ("stupidedi", "004010", "SAC"): "SAC01-14 carry private numbers 1717-1723 and 782/954 "
    "for 248 1300 1301 610 378 332 118 331 770",
    ("stupidedi", "004010", "TXI"): "TXI carries private numbers 1724-1731 for 963 955 956 "
    "441 662 828 325 350",
}


def _rows(name: str) -> list[dict[str, str]]:
    with open(SOURCES / name, encoding="utf-8", newline="") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def _same_type(ours: str, bots: str) -> bool:
    """Bots writes ID as AN and N0 as R; N1..N9 it writes as they are."""
    if bots == "AN":
        return ours in ("AN", "ID")
    if bots == "R":
        return ours in ("R", "N0")
    return ours == bots


@cache
def sources() -> dict:
    sd_el: dict[tuple[str, str], tuple[str, int, int]] = {}
    for r in _rows("stupidedi.elements.tsv"):
        sd_el[(r["version"], r["element"])] = (r["type"], int(r["min"]), int(r["max"]))
    px_el = {r["element"]: (r["type"], int(r["min"]), int(r["max"]))
             for r in _rows("pyx12.elements.tsv")}
    sd_seg: dict[tuple[str, str], dict[str, tuple[str, str]]] = defaultdict(dict)
    for r in _rows("stupidedi.segments.tsv"):
        sd_seg[(r["version"], r["segment"])][r["position"]] = (r["element"], r["requirement"])
    sd_syn: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in _rows("stupidedi.syntax.tsv"):
        sd_syn[(r["version"], r["segment"])].add(r["note"])
    bots: dict[tuple[str, str], dict[str, tuple[str, str, int, int]]] = defaultdict(dict)
    for r in _rows("bots.segments.tsv"):
        lo = int(r["min"]) if r["min"] else 0
        hi = int(r["max"]) if r["max"] else 0
        bots[(r["version"], r["segment"])][r["position"]] = (r["requirement"], r["type"], lo, hi)
    px_seg: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _rows("pyx12.segments.tsv"):
        px_seg[(r["version"], r["segment"])][r["position"]].add(r["element"])
    px_syn: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in _rows("pyx12.syntax.tsv"):
        px_syn[(r["version"], r["segment"])].add(r["note"])
    codes: dict[tuple[str, str], list[set[str]]] = defaultdict(list)
    for r in _rows("stupidedi.codes.tsv"):
        codes[(r["version"], "#" + r["element"])].append(set(r["codes"].split()))
    for r in _rows("pyx12.codes.tsv"):
        codes[(r["version"], r["element"])].append(set(r["codes"].split()))
    sd_full = {}
    for key, positions in sd_seg.items():
        top = [p for p in positions if "-" not in p]
        bots_top = [p for p in bots.get(key, {}) if "-" not in p]
        sd_full[key] = bool(top) and top == bots_top and ("stupidedi", *key) not in SOURCE_ERRATA
    pages: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in _rows("pages.syntax.tsv"):
        pages[(r["version"], r["segment"])].add(r["note"])
    return {"pages": pages, "sd_full": sd_full, "sd_el": sd_el, "px_el": px_el, "sd_seg": sd_seg, "sd_syn": sd_syn,
            "bots": bots, "px_seg": px_seg, "px_syn": px_syn, "codes": codes}


def used_segments() -> dict[str, set[str]]:
    """Segment ids each version's set structures use, with the envelope."""
    out: dict[str, set[str]] = {v: set(ENVELOPE) for v in SOURCE_VERSION}

    def walk(version: str, nodes: list[mapgen.Node]) -> None:
        for n in nodes:
            out[version].add(n.seg_id)
            walk(version, n.children)

    for path in sorted((mapgen.SPEC_DIR / "sets").glob("*.txt")):
        sd = mapgen.load_set(path)
        if sd.version in out:
            walk(sd.version, sd.nodes)
    return out


def _positions(seg: mapgen.SegmentDef) -> list[tuple[str, mapgen.Ref]]:
    """("05", ref) and, inside a composite, ("05-01", component) in order."""
    out = []
    for i, ref in enumerate(seg.refs, 1):
        out.append((f"{i:02d}", ref))
        for k, comp in enumerate(ref.components or [], 1):
            out.append((f"{i:02d}-{k:02d}", comp))
    return out


def disagreements() -> dict[str, str]:
    """key -> what disagrees, over every fact the maps use."""
    src = sources()
    elements = mapgen.load_elements()
    segments = mapgen.load_segments()
    out: dict[str, str] = {}
    used_elements: dict[str, set[str]] = defaultdict(set)  # number -> source versions
    # Each element's length as the Bots positions it sits at give it (version, lo, hi, type).
    bots_lengths: dict[str, set[tuple[str, int, int, str]]] = defaultdict(set)
    for version, seg_ids in used_segments().items():
        sv = SOURCE_VERSION[version]
        for seg_id in sorted(seg_ids):
            seg = segments[version][seg_id]
            where = f"{version} {seg_id}"
            bots = src["bots"].get((sv, seg_id))
            sd = src["sd_seg"].get((sv, seg_id), {})
            if ("stupidedi", sv, seg_id) in SOURCE_ERRATA:
                sd = {}
            px = src["px_seg"].get((sv, seg_id), {})
            ours = _positions(seg)
            top = [p for p, _ in ours if "-" not in p]
            if seg.unverified:
                # Element numbers in no numbered source: only a stale marker is reported.
                if (bots is not None and [p for p in sd if "-" not in p] == [
                        p for p in bots if "-" not in p]) or px:
                    out[f"{where} marker"] = "a source numbers this segment: drop the '?'"
                continue
            if bots is None:
                out[f"{where} source"] = "no source has this segment: mark it unverified"
                continue
            bots_top = [p for p in bots if "-" not in p]
            if top != bots_top:
                out[f"{where} count"] = f"{len(top)} elements, Bots {sv} has {len(bots_top)}"
            # stupidedi's definition counts only when it is not one of its trimmed ones.
            sd_full = sd and [p for p in sd if "-" not in p] == bots_top
            for pos, ref in ours:
                b = bots.get(pos)
                if b is None:
                    continue
                req, btype, lo, hi = b
                if ref.mandatory != (req == "M"):
                    out[f"{where}{pos} mandatory"] = (
                        f"ours {'M' if ref.mandatory else 'optional'}, Bots {sv} {req}")
                is_comp = ref.components is not None
                if is_comp != (btype == "composite"):
                    out[f"{where}{pos} composite"] = f"ours {ref.num}, Bots {sv} {btype}"
                    continue
                numbers = set()
                if sd_full and pos in sd:
                    numbers.add(sd[pos][0])
                if pos in px:
                    numbers |= px[pos]
                if numbers and ref.num not in numbers:
                    out[f"{where}{pos} number"] = (
                        f"ours {ref.num}, sources say {' or '.join(sorted(numbers))}")
                if is_comp:
                    continue
                de = elements[ref.num]
                used_elements[ref.num].add(sv)
                bots_lengths[ref.num].add((sv, lo, hi, btype))
                if not _same_type(de.type, btype):
                    out[f"{where}{pos} type"] = (
                        f"{ref.num} is {de.type}, Bots {sv} has {btype} at {seg_id}{pos}")
                if de.min_len > lo or de.max_len < hi:
                    out[f"{where}{pos} length"] = (
                        f"{ref.num} is {de.min_len}/{de.max_len}, Bots {sv} has {lo}/{hi} "
                        f"at {seg_id}{pos}")
            out.update(_syntax(where, sv, seg, sd if sd_full else {}, src))
    for num, versions in sorted(used_elements.items()):
        out.update(_element(num, versions, elements[num], bots_lengths[num], src))
    out.update(_codes(segments, src))
    return out


def _syntax(where: str, sv: str, seg: mapgen.SegmentDef, sd: dict, src: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    seg_id = seg.seg_id
    known = []
    # stupidedi leaves the notes out of some full definitions: none there says nothing.
    if sd and src["sd_syn"].get((sv, seg_id)):
        known.append(("stupidedi", src["sd_syn"][(sv, seg_id)]))
    if src["px_syn"].get((sv, seg_id)):
        known.append(("pyx12", src["px_syn"][(sv, seg_id)]))
    if not known:
        # Syntax notes seldom change between 004010 and 005010: the other version's source
        # stands in when this version has none.
        other = "005010" if sv == "004010" else "004010"
        if src["sd_full"].get((other, seg_id)) and src["sd_syn"].get((other, seg_id)):
            known.append((f"stupidedi {other}", src["sd_syn"].get((other, seg_id), set())))
        if src["px_syn"].get((other, seg_id)):
            known.append((f"pyx12 {other}", src["px_syn"][(other, seg_id)]))
    ours = set(seg.syntax)
    soft = set(seg.unverified_syntax)
    if not known:
        # A page read by hand confirms single notes, never a whole list.
        other = "005010" if sv == "004010" else "004010"
        confirmed = src["pages"].get((sv, seg_id), set()) | src["pages"].get((other, seg_id),
                                                                           set())
        for note in sorted(ours - soft - confirmed):
            out[f"{where} {note}"] = "no source gives this segment's syntax notes: mark it '?'"
        for note in sorted(soft & confirmed):
            out[f"{where} {note} marker"] = "a page confirms this note: drop the '?'"
        return out
    if not any(ours | soft == notes for _, notes in known):
        told = "; ".join(f"{name} {' '.join(sorted(n)) or '(none)'}" for name, n in known)
        out[f"{where} syntax"] = f"ours {' '.join(sorted(ours | soft)) or '(none)'}, {told}"
    for note in sorted(soft):
        if any(note in notes for _, notes in known):
            out[f"{where} {note} marker"] = "a source gives this note: drop the '?'"
    return out


def _element(num: str, versions: set[str], de: mapgen.DataElement,
             bots: set[tuple[str, int, int, str]], src: dict) -> dict[str, str]:
    told = []
    for sv in sorted(versions):
        if (sv, num) in src["sd_el"]:
            told.append((f"stupidedi {sv}", *src["sd_el"][(sv, num)]))
    if num in src["px_el"]:
        told.append(("pyx12", *src["px_el"][num]))
    key = f"element {num}"
    if not told:
        if not bots:
            return {} if de.unverified else {f"{key} source": "no source has this element: "
                                             "mark it unverified"}
        # Bots alone gives the length and the type class: AN or ID (the same check when no
        # code list is attached), R or N0 (not the same: N0 refuses a decimal point).
        lo, hi = min(b[1] for b in bots), max(b[2] for b in bots)
        if (de.min_len, de.max_len) != (lo, hi):
            return {key: f"ours {de.min_len}/{de.max_len}, Bots (widest) {lo}/{hi}"}
        numeric = de.type in ("R", "N0")
        if numeric and not de.unverified:
            return {f"{key} source": f"{de.type}: only Bots has it, which does not tell R "
                    "from N0: mark it unverified"}
        if not numeric and de.unverified:
            return {f"{key} marker": "Bots gives its length and type class: drop the '?'"}
        return {}
    if de.unverified:
        return {f"{key} marker": "a source has this element: drop the '?'"}
    # The widest of every source, Bots' positions included (the wider length is kept).
    lo = min([t[2] for t in told] + [b[1] for b in bots])
    hi = max([t[3] for t in told] + [b[2] for b in bots])
    types = {t[1] for t in told}
    problems = []
    if de.type not in types:
        problems.append(f"type {de.type}")
    if (de.min_len, de.max_len) != (lo, hi):
        problems.append(f"length {de.min_len}/{de.max_len} (widest of the sources {lo}/{hi})")
    if not problems:
        return {}
    said = "; ".join(f"{t[0]} {t[1]} {t[2]}/{t[3]}" for t in told)
    return {key: f"ours {', '.join(problems)}; {said}"}


def _codes(segments: dict, src: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    used = used_segments()
    for version, lists in mapgen.load_codes().items():
        sv = SOURCE_VERSION.get(version)
        if sv is None:
            continue
        for xid, listed in sorted(lists.items()):
            seg_id, pos = xid[:-2], int(xid[-2:])
            if seg_id not in used[version]:
                continue
            seg = segments[version].get(seg_id)
            num = seg.refs[pos - 1].num if seg and pos <= len(seg.refs) else ""
            found = src["codes"].get((sv, xid), []) + src["codes"].get((sv, "#" + num), [])
            key = f"{version} codes {xid}"
            unverified = xid in mapgen.load_unverified_codes().get(version, set())
            if not found:
                if not unverified:
                    out[key] = "no source lists these codes: mark the list '?'"
                continue
            if unverified:
                out[f"{key} marker"] = "a source lists these codes: drop the '?'"
            ours = set(listed)
            missing = set().union(*found) - ours
            alone = {c for c in ours if not any(c in f for f in found)}
            if missing or alone:
                out[key] = (f"ours lacks {' '.join(sorted(missing)) or '-'}; no source has "
                            f"{' '.join(sorted(alone)) or '-'}")
    return out


def test_every_used_fact_agrees_with_the_recorded_sources() -> None:
    found = disagreements()
    unexplained = {k: v for k, v in found.items() if k not in EXCEPTIONS}
    assert not unexplained, "\n".join(f"{k}: {v}" for k, v in sorted(unexplained.items()))


def test_every_exception_still_applies() -> None:
    found = disagreements()
    stale = sorted(k for k in EXCEPTIONS if k not in found)
    assert not stale, f"exceptions that no longer disagree (remove them): {stale}"


def test_source_tables_name_their_commit() -> None:
    for path in sorted(SOURCES.glob("*.tsv")):
        head = path.read_text(encoding="utf-8").splitlines()[:3]
        if path.name.startswith("pages."):
            assert head[0].startswith("# source: published pages"), path.name
            assert all(r["address"].startswith("http") for r in _rows(path.name)), path.name
            continue
        assert head[0].startswith("# source: repository "), path.name
        assert head[1].startswith("# commit: ") and len(head[1].split()[-1]) == 40, path.name


def test_a_wrong_element_length_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mapgen.load_elements

    def wrong() -> dict[str, mapgen.DataElement]:
        table = real()
        table["687"] = mapgen.DataElement("687", "ID", 3, 3, "Class of Trade Code")
        return table

    monkeypatch.setattr(mapgen, "load_elements", wrong)
    assert "element 687" in disagreements()


def test_a_wrong_syntax_note_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = mapgen.load_segments

    def wrong() -> dict[str, dict[str, mapgen.SegmentDef]]:
        table = real()
        for version in table:
            seg = table[version]["REF"]
            table[version]["REF"] = mapgen.SegmentDef(seg.seg_id, seg.name, seg.refs, ["R0302"])
        return table

    monkeypatch.setattr(mapgen, "load_segments", wrong)
    assert "4010 REF syntax" in disagreements()


if __name__ == "__main__":  # python -m tests.unit.test_x12_spec_sources: list them all
    for k, v in sorted(disagreements().items()):
        print(f"{k}: {v}")
