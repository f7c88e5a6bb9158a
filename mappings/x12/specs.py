"""X12 transaction set maps (pyx12's XML format) compiled once into plain Python tables.

A map folder holds `maps.xml` (which map serves which ISA12 / GS08 / GS01), `dataele.xml`
(type and length of each data element), `codes.xml` (external code lists) and one XML
map per transaction set. Each map is compiled into a `TransactionSpec`: per segment node
its element rules and syntax notes, and the loop structure as a state machine whose
transitions reproduce pyx12's map walker (so both agree on where a segment belongs),
computed ahead for every state instead of walking the XML tree per segment.

Compiled specs and the folder index are cached in process (lru_cache) and on disk (a
pickle keyed by a hash of the map files); a cache file that cannot be read is ignored and
rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from canonical.errors import SpecificationError
from mappings.x12.charset import is_digits

if TYPE_CHECKING:
    from lxml import etree
# lxml is imported where the XML is read: with the caches current, validating a file
# never reads the XML, and the import alone is a good part of a short file's time.

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Bump when the compiled shape changes, so old pickles are not reused.
SPEC_FORMAT = 4
MAXINT = sys.maxsize
_OUR_MAPS = Path(__file__).resolve().parent / "maps"
_PYX12_MAPS_HINT = "pyx12/map"
UNVERIFIED = "unverified.json"  # written by mapgen beside the maps


def default_map_path() -> Path:
    """Our own maps when they are there; pyx12's shipped maps until then (development)."""
    if (_OUR_MAPS / "maps.xml").is_file():
        return _OUR_MAPS
    for entry in sys.path:
        candidate = Path(entry) / _PYX12_MAPS_HINT
        if (candidate / "maps.xml").is_file():
            return candidate
    raise SpecificationError(f"no X12 maps found: {_OUR_MAPS} has no maps.xml")


# -- compiled shapes ------------------------------------------------------------------


@dataclass(slots=True)
class ElementRule:
    """One simple element or composite (when `components` is set) of a segment."""

    ref: str  # e.g. "BEG03" or "C00301" for a component
    seq: int  # element position in the segment (component position in a composite)
    data_element: str  # reference number, e.g. "324"
    name: str
    type: str  # N0..N9, R, ID, AN, DT, TM, B; "" for a composite
    min_len: int
    max_len: int
    usage: str  # R, S or N
    codes: frozenset[str] | None = None  # valid codes, None when the map lists none
    regex: str | None = None
    repeat: int = 1  # repetitions allowed (5010 repeating elements)
    components: tuple[ElementRule, ...] | None = None
    unverified: bool = False  # its type, length, codes or place are in no source: it warns


@dataclass(slots=True)
class SegmentRule:
    """What one segment node allows: elements in order and syntax notes."""

    id: str
    name: str
    elements: tuple[ElementRule, ...]
    # (kind, positions): P paired, R required, C conditional, L list conditional, E exclusion
    syntax: tuple[tuple[str, tuple[int, ...]], ...] = ()
    # Facts in no source (maps/unverified.json): what only they find is a warning.
    unverified: bool = False  # the element list itself
    soft_syntax: frozenset[tuple[str, tuple[int, ...]]] = frozenset()


@dataclass(slots=True)
class Candidate:
    """Where a segment id leads from one state, if its qualifier (key) matches."""

    key_element: int  # 0 when the transition needs no qualifier check
    key_component: int  # 0 for a simple element
    key_codes: frozenset[str] | None
    target: int  # node index of the segment node reached
    enter_loop: int  # node index of the loop (re)entered, -1 when none
    missing: tuple[int, ...]  # node indexes of mandatory segments/loops skipped


@dataclass
class TransactionSpec:
    """One compiled transaction set map: node tables plus the transition table."""

    set_id: str
    name: str
    map_file: str
    version: str  # base version of the map: "004010" or "005010"
    # Per node (segments and loops, in document order); index 0 is the ST_LOOP.
    kinds: list[str]  # "loop" or "segment"
    ids: list[str]
    names: list[str]
    usages: list[str]
    max_counts: list[int]  # max_use of a segment, repeat of a loop
    ends: list[int]  # a node's descendants are indexes (i, ends[i])
    loop_paths: list[str | None]  # loop a segment node is in, e.g. "N1" or "PO1/SCH"
    rules: list[SegmentRule | None]
    first_segment: list[int]  # for a loop, its first segment node (-1 for wrappers)
    start: int  # node index of ST
    transitions: list[dict[str, tuple[Candidate, ...]]]
    earlier_ids: list[frozenset[str]]  # segment ids placed before each node
    segment_ids: frozenset[str]
    extended_charset_5010: bool = False
    source_hash: str = ""
    _checkers: dict | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_checkers"] = None  # closures are rebuilt after loading, never pickled
        return state

    @property
    def map_name(self) -> str:
        return f"{self.set_id}.{self.version[2:6]}" if self.version else self.set_id


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One line of maps.xml: which map file serves an ISA12 / GS08 / GS01."""

    icvn: str
    vriic: str
    fic: str
    abbr: str
    file: str


@dataclass(slots=True)
class MapFolder:
    """The index of a map folder: data elements, external codes, map entries."""

    path: Path
    entries: tuple[MapEntry, ...]
    dataele: dict[str, tuple[str, int, int, str]]  # number -> (type, min, max, name)
    codes: dict[str, frozenset[str]]  # external code list id -> codes
    set_ids: dict[str, str]  # map file -> transaction set id (xid of <transaction>)
    known_segment_ids: frozenset[str] = frozenset()
    # map file -> segment id -> {"segment": bool, "elements": [positions], "syntax": [notes]}
    unverified: dict[str, dict[str, dict]] = field(default_factory=dict)


# -- loading the XML ------------------------------------------------------------------


def _parse(path: Path) -> etree._Element:
    from lxml import etree

    try:
        return etree.parse(str(path), etree.XMLParser(remove_comments=True)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise SpecificationError(f"cannot read X12 map {path}: {exc}") from exc


def _text(elem: etree._Element, tag: str, default: str = "") -> str:
    """An attribute or child element's text (pyx12 accepts both spellings)."""
    value = elem.get(tag)
    if value is None:
        value = elem.findtext(tag)
    return (value or default).strip()


def _count(value: str) -> int:
    if not value or value.startswith(">"):
        return MAXINT
    try:
        return int(value)
    except ValueError:
        return MAXINT


def _load_dataele(path: Path) -> dict[str, tuple[str, int, int, str]]:
    out = {}
    for e in _parse(path).iter("data_ele"):
        num = e.get("ele_num")
        if num:
            out[num] = (e.get("data_type") or "AN", int(e.get("min_len") or 0),
                        int(e.get("max_len") or MAXINT), e.get("name") or "")
    return out


def _load_codes(path: Path) -> dict[str, frozenset[str]]:
    if not path.is_file():
        return {}
    out = {}
    for cs in _parse(path).iter("codeset"):
        out[(cs.findtext("id") or "").strip()] = frozenset(
            (c.text or "").strip() for c in cs.iter("code"))
    return out


@functools.lru_cache(maxsize=8)
def load_folder(path: str | os.PathLike[str] | None = None) -> MapFolder:
    """A map folder's index (maps.xml, dataele.xml, codes.xml), from the disk cache when
    it is current: reading it from the XML means parsing every map, which is most of the
    time a short file takes to validate."""
    folder = Path(path) if path is not None else default_map_path()
    index = folder / "maps.xml"
    if not index.is_file():
        raise SpecificationError(f"{folder} is not an X12 map folder: maps.xml is missing")
    try:
        digest = _hash_folder(folder)
    except OSError as exc:
        raise SpecificationError(f"cannot read X12 maps in {folder}: {exc}") from exc
    # One cache file per folder (ours, pyx12's): a new version replaces only its own.
    family = "x12folder-" + hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    where = cache_dir()
    cached = where / f"{family}-{digest}.pickle" if where is not None else None
    found = _read_cache(cached, MapFolder)
    if found is not None:
        found.path = folder
        return found
    made = _read_folder(folder)
    if cached is not None:
        _write_cache(cached, made, f"{family}-*.pickle")
    return made


def _hash_folder(folder: Path) -> str:
    h = hashlib.sha256(f"{SPEC_FORMAT}|{sys.version_info[:2]}".encode())
    for p in sorted(folder.glob("*.xml")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:32]


def _read_folder(folder: Path) -> MapFolder:
    from lxml import etree

    index = folder / "maps.xml"
    entries = []
    for version in _parse(index).iter("version"):
        for m in version.iter("map"):
            entries.append(MapEntry(version.get("icvn") or "", m.get("vriic") or "",
                                    m.get("fic") or "", m.get("abbr") or "", (m.text or "").strip()))
    set_ids: dict[str, str] = {}
    known: set[str] = set()
    for entry in entries:
        if entry.file in set_ids or not (folder / entry.file).is_file():
            continue
        # Only the root tag is needed; iterparse stops reading at the first element.
        for _, elem in etree.iterparse(str(folder / entry.file), events=("start",)):
            set_ids[entry.file] = elem.get("xid") or entry.abbr
            break
    for name in set(set_ids):
        for _, elem in etree.iterparse(str(folder / name), tag="segment"):
            known.add(elem.get("xid") or "")
            elem.clear()
    return MapFolder(folder, tuple(entries), _load_dataele(folder / "dataele.xml"),
                     _load_codes(folder / "codes.xml"), set_ids, frozenset(known),
                     _load_unverified(folder / UNVERIFIED))


def _load_unverified(path: Path) -> dict[str, dict[str, dict]]:
    """The facts our spec marks unverified; a folder without the file has none."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["maps"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecificationError(f"cannot read {path}: {exc}") from exc


def _note(text: str) -> tuple[str, tuple[int, ...]] | None:
    """A syntax note in pyx12's form (C0403) as (kind, positions)."""
    if len(text) >= 5 and text[0] in "PRCLE" and text[1:].isdigit():
        return (text[0], tuple(int(text[i:i + 2]) for i in range(1, len(text), 2)))
    return None


# -- the intermediate tree (compile time only) ----------------------------------------


class _Node:
    __slots__ = ("children", "elem", "first", "id", "index", "key", "kind", "max", "name",
                 "parent", "pos", "usage", "wrapper")

    def __init__(self, kind: str, elem: etree._Element, parent: _Node | None) -> None:
        self.kind = kind
        self.elem = elem
        self.parent = parent
        self.id = elem.get("xid") or ""
        self.name = _text(elem, "name")
        self.usage = _text(elem, "usage", "S")
        self.pos = int(_text(elem, "pos", "0") or 0)
        self.max = _count(_text(elem, "max_use" if kind == "segment" else "repeat"))
        self.children: list[_Node] = []
        self.index = -1
        self.key: tuple[int, int, frozenset[str]] | None = None
        self.first: _Node | None = None
        self.wrapper = False


def _build(elem: etree._Element, parent: _Node | None) -> _Node:
    node = _Node("loop", elem, parent)
    kids: list[tuple[int, int, _Node]] = []
    # pyx12 orders children by position, loops before segments at the same position.
    for order, child in enumerate(elem):
        if child.tag == "loop":
            kid = _build(child, node)
            kids.append((kid.pos, 0 * 100000 + order, kid))
        elif child.tag == "segment":
            kid = _Node("segment", child, node)
            kids.append((kid.pos, 100000 + order, kid))
    node.children = [k for _, _, k in sorted(kids, key=lambda t: (t[0], t[1]))]
    if node.children:
        node.first = node.children[0]
        node.wrapper = node.first.kind == "loop"
    return node


class _Compiler:
    """Turn one map file into a TransactionSpec."""

    def __init__(self, folder: MapFolder, map_file: str) -> None:
        self.folder = folder
        self.map_file = map_file
        self.nodes: list[_Node] = []

    def element_rule(self, e: etree._Element, ref: str) -> ElementRule:
        num = _text(e, "data_ele")
        dtype, lo, hi, dname = self.folder.dataele.get(num, ("AN", 0, MAXINT, ""))
        codes: frozenset[str] | None = None
        vc = e.find("valid_codes")
        if vc is not None:
            listed = frozenset((c.text or "").strip() for c in vc.iter("code"))
            external = vc.get("external")
            if external and external in self.folder.codes:
                listed |= self.folder.codes[external]
            codes = listed or None
        regex = _text(e, "regex") or None
        repeat = _count(_text(e, "max_use") or _text(e, "repeat") or "1")
        return ElementRule(ref, int(_text(e, "seq", "0")), num, _text(e, "name") or dname, dtype,
                           lo, hi, _text(e, "usage", "S"), codes, regex, repeat)

    def segment_rule(self, node: _Node) -> SegmentRule:
        elements = []
        for child in node.elem:
            if child.tag == "element":
                seq = int(_text(child, "seq", "0"))
                elements.append(self.element_rule(child, f"{node.id}{seq:02d}"))
            elif child.tag == "composite":
                seq = int(_text(child, "seq", "0"))
                comps = tuple(self.element_rule(c, f"{node.id}{seq:02d}-{i:02d}")
                              for i, c in enumerate(child.findall("element"), 1))
                for i, c in enumerate(comps, 1):
                    c.seq = i
                elements.append(ElementRule(
                    f"{node.id}{seq:02d}", seq, _text(child, "data_ele"), _text(child, "name"),
                    "", 0, MAXINT, _text(child, "usage", "S"), None, None,
                    _count(_text(child, "repeat") or _text(child, "max_use") or "1"), comps))
        elements.sort(key=lambda r: r.seq)
        syntax = [n for s in node.elem.findall("syntax") if (n := _note((s.text or "").strip()))]
        soft = self.folder.unverified.get(self.map_file, {}).get(node.id)
        if not soft:
            return SegmentRule(node.id, node.name, tuple(elements), tuple(syntax))
        # Unverified notes are not in the XML (pyx12 would enforce them): added here, soft.
        soft_notes = [n for t in soft.get("syntax", ()) if (n := _note(t))]
        whole = bool(soft.get("segment"))
        marked = set(soft.get("elements", ()))
        for r in elements:
            if whole or r.seq in marked:
                r.unverified = True
                for c in r.components or ():
                    c.unverified = True
        return SegmentRule(node.id, node.name, tuple(elements), tuple(syntax + soft_notes),
                           whole, frozenset(soft_notes))

    @staticmethod
    def key_of(node: _Node, rule: SegmentRule) -> tuple[int, int, frozenset[str]] | None:
        """The qualifier that tells apart segments with the same id (pyx12's is_match)."""
        els = {r.seq: r for r in rule.elements}
        c0, c1, c2 = els.get(1), els.get(2), els.get(3)
        if c0 and c0.components is None and c0.type == "ID" and c0.usage == "R" and c0.codes:
            return (1, 0, c0.codes)
        if node.id == "ENT" and c1 and c1.components is None and c1.type == "ID" and c1.codes:
            return (2, 0, c1.codes)
        if c0 and c0.components:
            first = c0.components[0]
            if first.codes and (first.type == "ID" or (node.id == "CTX" and first.type == "AN")):
                return (1, 1, first.codes)
        if node.id == "HL" and c2 and c2.components is None and c2.codes:
            return (3, 0, c2.codes)
        return None

    def number(self, node: _Node) -> None:
        node.index = len(self.nodes)
        self.nodes.append(node)
        for child in node.children:
            self.number(child)

    def compile(self) -> TransactionSpec:
        root_elem = _parse(self.folder.path / self.map_file)
        st_loop = next((e for e in root_elem.iter("loop") if e.get("xid") == "ST_LOOP"), None)
        if st_loop is None:
            raise SpecificationError(f"{self.map_file} has no ST_LOOP")
        root = _build(st_loop, None)
        self.number(root)
        rules: list[SegmentRule | None] = []
        ends: list[int] = [0] * len(self.nodes)
        for node in self.nodes:
            if node.kind == "segment":
                rule = self.segment_rule(node)
                node.key = self.key_of(node, rule)
                rules.append(rule)
            else:
                rules.append(None)
        for node in reversed(self.nodes):
            ends[node.index] = max([node.index + 1] + [ends[c.index] for c in node.children])
        st = next((n for n in root.children if n.kind == "segment" and n.id == "ST"), None)
        if st is None:
            raise SpecificationError(f"{self.map_file} has no ST segment in its ST_LOOP")

        def loop_path(node: _Node) -> str | None:
            names = []
            p = node.parent
            while p is not None and p.parent is not None:
                if not p.wrapper and p.elem.get("type") != "wrapper":
                    names.append(p.id)
                p = p.parent
            return "/".join(reversed(names)) or None

        seen: set[str] = set()
        earlier = []
        for node in self.nodes:
            earlier.append(frozenset(seen))
            if node.kind == "segment" and node.id not in ("ST", "SE"):
                seen.add(node.id)
        transitions = [self.transitions_from(n) if n.kind == "segment" else {}
                       for n in self.nodes]
        version = self.version_of()
        seg_ids = frozenset(n.id for n in self.nodes if n.kind == "segment")
        return TransactionSpec(
            set_id=root_elem.get("xid") or "", name=_text(root_elem, "name"),
            map_file=self.map_file, version=version,
            kinds=[n.kind for n in self.nodes], ids=[n.id for n in self.nodes],
            names=[n.name for n in self.nodes], usages=[n.usage for n in self.nodes],
            max_counts=[n.max for n in self.nodes], ends=ends,
            loop_paths=[loop_path(n) for n in self.nodes], rules=rules,
            first_segment=[self.first_seg(n).index if n.kind == "loop" and self.first_seg(n)
                           else -1 for n in self.nodes],
            start=st.index, transitions=transitions, earlier_ids=earlier, segment_ids=seg_ids,
            extended_charset_5010=version >= "005010")

    def version_of(self) -> str:
        versions = sorted({(e.vriic or e.icvn)[:6] for e in self.folder.entries
                           if e.file == self.map_file})
        if versions:
            v = versions[0]
            return v if len(v) == 6 else {"00401": "004010", "00501": "005010"}.get(v, v)
        return ""

    @staticmethod
    def first_seg(loop: _Node) -> _Node | None:
        first = loop.first
        return first if first is not None and first.kind == "segment" else None

    # -- the walker, run ahead of time --------------------------------------------------

    def entries(self, loop: _Node) -> list[tuple[_Node, _Node, list[_Node]]]:
        """Segments that can open `loop`, in pyx12's order: (first segment, loop entered,
        mandatory loops passed over before it)."""
        if not loop.children:
            return []
        if not loop.wrapper:
            return [(loop.first, loop, [])]  # type: ignore[list-item]
        out = []
        passed: list[_Node] = []
        for child in loop.children:
            if child.kind != "loop":
                continue
            for first, entered, before in self.entries(child):
                out.append((first, entered, passed + before))
            if child.usage == "R" and not child.wrapper and child.first is not None:
                passed = [*passed, child]
        return out

    def transitions_from(self, start: _Node) -> dict[str, tuple[Candidate, ...]]:
        """Every place a segment can go from `start`, in pyx12's scan order."""
        found: dict[str, list[Candidate]] = {}
        closed: set[str] = set()  # ids already given an unconditional candidate
        missing: list[_Node] = []  # segment nodes, or loops, passed over while scanning

        def add(seg: _Node, enter: _Node | None, passed: list[_Node]) -> None:
            if seg.id in closed or seg.id in ("ST",):
                return
            if enter is None:
                miss = [m for m in passed if m is not seg and self.miss_pos(m) != seg.pos]
            else:
                miss = list(passed)
            key = seg.key
            cand = Candidate(key[0] if key else 0, key[1] if key else 0, key[2] if key else None,
                             seg.index, enter.index if enter is not None else -1,
                             tuple(m.index for m in miss))
            found.setdefault(seg.id, []).append(cand)
            if key is None:
                closed.add(seg.id)

        loop = start.parent
        node_pos = start.pos
        while loop is not None:
            for child in loop.children:
                if child.pos < node_pos:
                    continue
                if child.kind == "segment":
                    if child is loop.first and loop.parent is not None:
                        add(child, loop, missing)  # a new iteration of the loop being scanned
                    else:
                        add(child, None, missing)
                    if child.usage == "R" and child.pos > node_pos:
                        missing = [*missing, child]
                else:
                    fresh = child.pos > node_pos  # a loop at node_pos was already entered
                    for first, entered, before in self.entries(child):
                        add(first, entered, missing + (before if fresh else []))
                    if child.pos > node_pos and child.usage == "R":
                        if not child.wrapper:
                            missing = [*missing, child]
                        else:
                            missing = missing + [c for c in child.children
                                                 if c.kind == "loop" and c.usage == "R"
                                                 and not c.wrapper]
            if loop.parent is None:
                break
            node_pos = loop.pos
            loop = loop.parent
        return {k: tuple(v) for k, v in found.items()}

    @staticmethod
    def miss_pos(node: _Node) -> int:
        """pyx12 files a missing loop under its first segment, so compares that one's pos."""
        if node.kind == "loop" and node.first is not None:
            return node.first.pos
        return node.pos


# -- caching --------------------------------------------------------------------------


def _private(path: Path) -> bool:
    """A folder we own that nobody else can write: only then are its pickles trusted."""
    try:
        st = path.stat()
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return owner_ok and not st.st_mode & 0o022 and os.access(path, os.W_OK)


def cache_dir() -> Path | None:
    """Where compiled specs are kept, or None when no private folder can be had.

    Loading a pickle runs code, so a folder someone else could have planted files in
    (a shared temp folder made by another user, say) is never used.
    """
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    candidates = [root / "edigw",
                  Path(tempfile.gettempdir()) / f"edigw-{os.getuid() if hasattr(os, 'getuid') else 0}"]
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _private(path):
            return path
    return None


def _hash_inputs(folder: Path, map_file: str) -> str:
    h = hashlib.sha256(f"{SPEC_FORMAT}|{sys.version_info[:2]}|{map_file}".encode())
    for name in ("dataele.xml", "codes.xml", "maps.xml", UNVERIFIED, map_file):
        p = folder / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    return h.hexdigest()[:32]


@functools.lru_cache(maxsize=64)
def load_spec(folder_path: str, map_file: str, use_disk_cache: bool = True) -> TransactionSpec:
    """The compiled spec of one map file, from the disk cache when it is current."""
    folder = load_folder(folder_path)
    digest = _hash_inputs(folder.path, map_file)
    where = cache_dir() if use_disk_cache else None
    use_disk_cache = where is not None
    cached = (where or Path(".")) / f"x12spec-{Path(map_file).stem}-{digest}.pickle"
    if use_disk_cache:
        spec = _read_cache(cached, TransactionSpec)
        if spec is not None and spec.source_hash == digest:
            return spec
    spec = _Compiler(folder, map_file).compile()
    spec.source_hash = digest
    if use_disk_cache:
        _write_cache(cached, spec, f"x12spec-{Path(map_file).stem}-*.pickle")
    return spec


def _read_cache(cached: Path | None, kind: type[_T]) -> _T | None:
    """What a cache file holds, or None when it is missing, damaged or of another kind."""
    if cached is None or not cached.is_file():
        return None
    try:
        with open(cached, "rb") as fh:
            found = pickle.load(fh)
    except Exception as exc:  # a damaged cache only costs a rebuild
        log.warning("ignoring unreadable X12 spec cache %s: %s", cached, exc)
        return None
    return found if isinstance(found, kind) else None


def _write_cache(cached: Path, value: object, family: str) -> None:
    """Write a cache file atomically and drop the older ones of its family."""
    try:
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, cached)
        for stale in cached.parent.glob(family):
            if stale != cached:  # an older version of these maps: never read again
                stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot write X12 spec cache %s: %s", cached, exc)


# -- choosing a map -------------------------------------------------------------------

def _version_digits(gs08: str, isa12: str = "") -> str:
    """The six-digit version of a GS08 (004030VICS -> 004030), else of an ISA12, else ""."""
    if len(gs08) >= 6 and is_digits(gs08[:6]):
        return gs08[:6]
    if len(isa12) == 5 and is_digits(isa12):
        return isa12 + "0"
    return ""


def base_version(gs08: str, isa12: str = "") -> str:
    """The version family of a GS08 (or ISA12), "004010" or "005010": the base mappings
    (mappings/base/<set>.4010.yaml, .5010.yaml) are kept per family."""
    digits = _version_digits(gs08, isa12)
    if not digits:
        return ""
    return "005010" if digits >= "005000" else "004010"


def select_map(set_id: str, gs08: str, isa12: str = "", *,
               maps: str | os.PathLike[str] | None = None) -> tuple[TransactionSpec | None, str | None]:
    """The spec for a transaction set and a warning when it is not an exact version match.

    A GS08 whose first six digits name a version with a map of its own is validated
    against it (004030VICS against 004030).  Any other version gets the nearest map: the
    latest version at or below it (004060 -> 004030, 003050 -> the earliest there is),
    and a warning naming both.  (None, reason) when no map exists for the set id: the set
    is rejected (AK502 1).
    """
    folder = load_folder(maps)
    wanted = _version_digits(gs08, isa12)
    files = [(e, f) for e in folder.entries
             if (f := e.file) in folder.set_ids and folder.set_ids[f] == set_id]
    if not files:
        return None, f"transaction set {set_id or '(empty)'} is not supported: no map for it"
    exact = [f for e, f in files if gs08 and e.vriic == gs08]
    if exact:
        return load_spec(str(folder.path), exact[0]), None

    def version_of(e: MapEntry) -> str:
        return _version_digits(e.vriic, e.icvn)

    # The plain map of a version (vriic 005010) before its implementations (005010X231).
    ranked = sorted(files, key=lambda ef: (version_of(ef[0]), len(ef[0].vriic) != 6,
                                           ef[0].vriic))
    at_or_below = [ef for ef in ranked if version_of(ef[0]) <= wanted] if wanted else []
    if at_or_below:
        top = version_of(at_or_below[-1][0])
        chosen = next(f for e, f in at_or_below if version_of(e) == top)
    else:
        chosen = ranked[0][1]
    spec = load_spec(str(folder.path), chosen)
    if _version_digits(gs08) == spec.version:  # an empty GS08 is worth a word too
        return spec, None
    return spec, (f"version {gs08 or isa12 or '(none)'} has no {set_id} map of its own; "
                  f"validated against the nearest map, {_describe(folder, chosen)}")


def _describe(folder: MapFolder, map_file: str) -> str:
    spec = load_spec(str(folder.path), map_file)
    return f"{spec.map_name} (version {spec.version})"


def functional_id_for(set_id: str, maps: str | os.PathLike[str] | None = None) -> str | None:
    """The GS01 a transaction set belongs under, when a map knows it (the fact is written
    once, in the first line of spec/sets/<set>.<version>.txt, and carried by maps.xml)."""
    folder = load_folder(maps)
    for e in folder.entries:
        if e.fic and folder.set_ids.get(e.file) == set_id:
            return e.fic
    return None
