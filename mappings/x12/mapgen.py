"""Generate the pyx12 maps folder (``maps/``) from the compact sources in ``spec/``.

``python -m mappings.x12.mapgen`` rewrites every file of ``maps/``;
``python -m mappings.x12.mapgen --check`` exits 1 when ``maps/`` differs from what
``spec/`` produces (a stale or hand-edited map).  See ``spec/README.md`` for the source
format and where its facts come from.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

HERE = Path(__file__).resolve().parent
SPEC_DIR = HERE / "spec"
MAPS_DIR = HERE / "maps"
UNVERIFIED = "unverified.json"

# version -> (ISA12 of the interchange pyx12 runs it in, GS08).  pyx12 knows only 00401 and
# 00501 interchanges, so 004030 groups are run in 00401 ones (the bridge rewrites ISA12).
VERSIONS = {"4010": ("00401", "004010"), "4030": ("00401", "004030"),
            "5010": ("00501", "005010")}

# (icvn, vriic, abbr, map file) rows of maps.xml, in order.  Each row's functional
# identifier (GS01) is not written here: it is the one fact of the set file's first
# line (`set 850 PO ...`), read by _fic(); the control maps have none.
INDEX: list[tuple[str, str, str, str]] = [
    ("00401", "004010", "850", "850.4010.xml"),
    ("00401", "004010", "855", "855.4010.xml"),
    ("00401", "004010", "856", "856.4010.xml"),
    ("00401", "004010", "810", "810.4010.xml"),
    ("00401", "004010", "997", "997.4010.xml"),
    ("00401", "004030", "850", "850.4030.xml"),
    ("00401", "004030", "855", "855.4030.xml"),
    ("00401", "004030", "856", "856.4030.xml"),
    ("00401", "004030", "810", "810.4030.xml"),
    ("00401", "004030", "997", "997.4030.xml"),
    ("00401", "", "X12", "x12.control.00401.xml"),
    ("00501", "005010", "850", "850.5010.xml"),
    ("00501", "005010", "855", "855.5010.xml"),
    ("00501", "005010", "856", "856.5010.xml"),
    ("00501", "005010", "810", "810.5010.xml"),
    ("00501", "005010", "999", "999.5010.xml"),
    ("00501", "005010X231", "999", "999.5010.xml"),
    ("00501", "005010X231A1", "999", "999.5010.xml"),
    ("00501", "005010X230", "997", "997.5010.xml"),
    ("00501", "", "X12", "x12.control.00501.xml"),
]

COMPOSITE_NAMES = {
    "C001": "Composite Unit of Measure",
    "C002": "Actions Indicated",
    "C030": "Position in Segment",
    "C040": "Reference Identifier",
    "C056": "Composite Race or Ethnicity Information",
    "C998": "Context Identification",
    "C999": "Reference in Segment",
}


class SpecError(Exception):
    """A spec/ source file is malformed."""


@dataclass
class DataElement:
    num: str
    type: str
    min_len: int
    max_len: int
    name: str
    unverified: bool = False  # type/length in no recorded source ("?" in elements.txt)


@dataclass
class Ref:
    """One element position of a segment: a simple element or a composite."""

    num: str
    mandatory: bool
    components: list[Ref] | None = None
    repeat: int = 1


@dataclass
class SegmentDef:
    seg_id: str
    name: str
    refs: list[Ref]
    syntax: list[str]  # verified notes
    unverified_syntax: list[str] = field(default_factory=list)  # notes marked "?"
    unverified: bool = False  # the element list itself is in no source ("ID?|...")


@dataclass
class Node:
    """A segment or a loop of a transaction set structure."""

    seg_id: str
    usage: str
    repeat: str
    is_loop: bool = False
    children: list[Node] = field(default_factory=list)


@dataclass
class SetDef:
    set_id: str
    fic: str
    name: str
    version: str
    nodes: list[Node]


def _lines(path: Path) -> list[tuple[int, str]]:
    out = []
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            out.append((no, raw.rstrip()))
    return out


def load_elements(path: Path = SPEC_DIR / "elements.txt") -> dict[str, DataElement]:
    out: dict[str, DataElement] = {}
    for no, line in _lines(path):
        parts = line.split(None, 4)
        if len(parts) != 5 or not re.fullmatch(r"AN|ID|DT|TM|R|B|N[0-9]", parts[1]):
            raise SpecError(f"{path.name}:{no}: bad data element line")
        num, typ, lo, hi, name = parts
        unverified = num.endswith("?")
        num = num.rstrip("?")
        if num in out:
            raise SpecError(f"{path.name}:{no}: data element {num} defined twice")
        out[num] = DataElement(num, typ, int(lo), int(hi), name, unverified)
    return out


def _parse_refs(text: str, where: str) -> list[Ref]:
    refs: list[Ref] = []
    for m in re.finditer(r"(\w+)(!?)(?:\{([^}]*)\})?(?:\*(\d+))?", text):
        num, bang, comp = m.group(1), m.group(2), m.group(3)
        repeat = int(m.group(4) or 1)
        components = None
        if comp is not None:
            components = _parse_refs(comp, where)
            if any(c.components for c in components):
                raise SpecError(f"{where}: nested composite")
        refs.append(Ref(num, bang == "!", components, repeat))
    return refs


def load_segments(path: Path = SPEC_DIR / "segments.txt") -> dict[str, dict[str, SegmentDef]]:
    """Return {version: {segment id: definition}}; "@5010 " lines override for 5010 (and
    "@4030 " ones for 4030) over the base lines, which are 004010's."""
    base: dict[str, SegmentDef] = {}
    overrides: dict[str, dict[str, SegmentDef]] = {v: {} for v in VERSIONS}
    for no, line in _lines(path):
        target = base
        if line.startswith("@"):
            ver, line = line[1:].split(None, 1)
            if ver not in VERSIONS:
                raise SpecError(f"{path.name}:{no}: unknown version {ver}")
            target = overrides[ver]
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 4:
            raise SpecError(f"{path.name}:{no}: expected 4 '|'-separated fields")
        seg_id, name, elems, syntax = parts
        unverified = seg_id.endswith("?")
        seg_id = seg_id.rstrip("?")
        notes = syntax.split()
        target[seg_id] = SegmentDef(
            seg_id, name, _parse_refs(elems, f"{path.name}:{no}"),
            [n for n in notes if not n.endswith("?")],
            [n.rstrip("?") for n in notes if n.endswith("?")], unverified,
        )
    return {v: {**base, **overrides[v]} for v in VERSIONS}


def load_codes(path: Path = SPEC_DIR / "codes.txt") -> dict[str, dict[str, list[str]]]:
    """Return {version: {element xid (e.g. AK501): [codes]}}."""
    out: dict[str, dict[str, list[str]]] = {v: {} for v in VERSIONS}
    for no, line in _lines(path):
        key, *codes = line.split()
        m = re.fullmatch(r"([A-Z0-9]{2,3}\d\d)(?:@(\d{4}))?\??", key)
        if not m or not codes:
            raise SpecError(f"{path.name}:{no}: bad code list line")
        for ver in [m.group(2)] if m.group(2) else list(VERSIONS):
            out[ver][m.group(1)] = codes
    return out


def load_unverified_codes(path: Path = SPEC_DIR / "codes.txt") -> dict[str, set[str]]:
    """Return {version: {element xid whose code list is marked "?"}}."""
    out: dict[str, set[str]] = {v: set() for v in VERSIONS}
    for _no, line in _lines(path):
        key = line.split()[0]
        if key.endswith("?"):
            xid, _, ver = key.rstrip("?").partition("@")
            for v in [ver] if ver else list(VERSIONS):
                out[v].add(xid)
    return out


def load_set(path: Path) -> SetDef:
    lines = _lines(path)
    head = lines[0][1].split(None, 3)
    if head[0] != "set" or len(head) != 4:
        raise SpecError(f"{path.name}: first line must be 'set ID FIC Name'")
    set_id, version = path.name.split(".")[:2]
    root: list[Node] = []
    stack: list[tuple[int, list[Node]]] = [(-1, root)]
    for no, line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        parts = line.split()
        if len(parts) != 3 or parts[1] not in ("R", "S") or not re.fullmatch(r">1|\d+", parts[2]):
            raise SpecError(f"{path.name}:{no}: expected 'SEG usage max' or '[SEG] usage repeat'")
        while indent <= stack[-1][0]:
            stack.pop()
        is_loop = parts[0].startswith("[")
        node = Node(parts[0].strip("[]"), parts[1], parts[2], is_loop)
        stack[-1][1].append(node)
        if is_loop:
            stack.append((indent, node.children))
    return SetDef(set_id, head[2], head[3], version, root)


class _Writer:
    def __init__(self) -> None:
        self.out: list[str] = []

    def line(self, depth: int, text: str) -> None:
        self.out.append("  " * depth + text)

    def leaf(self, depth: int, tag: str, value: str) -> None:
        self.line(depth, f"<{tag}>{escape(value)}</{tag}>")


class MapBuilder:
    def __init__(self, version: str) -> None:
        self.version = version
        self.elements = load_elements()
        self.segments = load_segments()[version]
        self.codes = load_codes()[version]
        self.pos = 0

    def _next_pos(self) -> str:
        self.pos += 10
        return f"{self.pos:04d}"

    def _element(self, w: _Writer, d: int, xid: str, ref: Ref, seq: int, codes: list[str]) -> None:
        de = self.elements.get(ref.num)
        if de is None:
            raise SpecError(f"{xid}: data element {ref.num} not in elements.txt")
        w.line(d, f"<element xid={quoteattr(xid)}>")
        w.leaf(d + 1, "data_ele", ref.num)
        w.leaf(d + 1, "name", de.name)
        w.leaf(d + 1, "usage", "R" if ref.mandatory else "S")
        w.leaf(d + 1, "seq", f"{seq:02d}")
        if ref.repeat > 1:
            w.leaf(d + 1, "repeat", str(ref.repeat))
        if codes:
            w.line(d + 1, "<valid_codes>")
            for c in codes:
                w.leaf(d + 2, "code", c)
            w.line(d + 1, "</valid_codes>")
        w.line(d, "</element>")

    def segment(
        self, w: _Writer, d: int, seg_id: str, usage: str, max_use: str, pos: str,
        extra_codes: dict[str, list[str]] | None = None, end_tag: str | None = None,
    ) -> None:
        seg = self.segments.get(seg_id)
        if seg is None:
            raise SpecError(f"segment {seg_id} not in segments.txt ({self.version})")
        codes = {**self.codes, **(extra_codes or {})}
        w.line(d, f"<segment xid={quoteattr(seg_id)}>")
        w.leaf(d + 1, "name", seg.name)
        if end_tag:
            w.leaf(d + 1, "end_tag", end_tag)
        w.leaf(d + 1, "usage", usage)
        w.leaf(d + 1, "pos", pos)
        w.leaf(d + 1, "max_use", max_use)
        for syn in seg.syntax:
            w.leaf(d + 1, "syntax", syn)
        for i, ref in enumerate(seg.refs, 1):
            xid = f"{seg_id}{i:02d}"
            if ref.components is None:
                self._element(w, d + 1, xid, ref, i, codes.get(xid, []))
                continue
            w.line(d + 1, "<composite>")
            w.leaf(d + 2, "data_ele", ref.num)
            w.leaf(d + 2, "name", COMPOSITE_NAMES.get(ref.num, ref.num))
            w.leaf(d + 2, "usage", "R" if ref.mandatory else "S")
            w.leaf(d + 2, "seq", f"{i:02d}")
            if ref.repeat > 1:
                w.leaf(d + 2, "repeat", str(ref.repeat))
            for j, comp in enumerate(ref.components, 1):
                cxid = f"{xid}-{j:02d}"
                self._element(w, d + 2, cxid, comp, j, codes.get(cxid, []))
            w.line(d + 1, "</composite>")
        w.line(d, "</segment>")

    def _loop_open(self, w: _Writer, d: int, xid: str, name: str, usage: str, pos: str,
                   repeat: str, explicit: bool = False) -> None:
        typ = ' type="explicit"' if explicit else ""
        w.line(d, f"<loop xid={quoteattr(xid)}{typ}>")
        w.leaf(d + 1, "name", name)
        w.leaf(d + 1, "usage", usage)
        w.leaf(d + 1, "pos", pos)
        w.leaf(d + 1, "repeat", repeat)

    def _nodes(self, w: _Writer, d: int, nodes: list[Node], st_codes: dict[str, list[str]]) -> None:
        for node in nodes:
            pos = self._next_pos()
            if not node.is_loop:
                self.segment(w, d, node.seg_id, node.usage, node.repeat, pos, st_codes)
                continue
            name = self.segments[node.seg_id].name
            self._loop_open(w, d, node.seg_id, f"{name} Loop", node.usage, pos, node.repeat)
            self.segment(w, d + 1, node.seg_id, "R", "1", pos, st_codes)
            self._nodes(w, d + 1, node.children, st_codes)
            w.line(d, "</loop>")

    def envelope(self, title: str, xid: str, body: SetDef | None) -> str:
        icvn = VERSIONS[self.version][0]
        w = _Writer()
        w.out.append('<?xml version="1.0" encoding="UTF-8"?>')
        w.out.append("<!-- Generated by mappings/x12/mapgen.py from mappings/x12/spec/; do not edit. -->")
        w.line(0, f"<transaction xid={quoteattr(xid)}>")
        w.leaf(1, "name", title)
        self._loop_open(w, 1, "ISA_LOOP", "Interchange Control Header", "R", "001", ">1", True)
        self.segment(w, 2, "ISA", "R", "1", "010", {"ISA12": [icvn]}, end_tag="IEA")
        self.segment(w, 2, "TA1", "S", ">1", "020")
        self._loop_open(w, 2, "GS_LOOP", "Functional Group Header", "S", "030", ">1", True)
        self.segment(w, 3, "GS", "R", "1", "010")
        if body is not None:
            self._loop_open(w, 3, "ST_LOOP", "Transaction Set Header", "R", "020", ">1", True)
            self.pos = 0
            self._nodes(w, 4, body.nodes, {"ST01": [body.set_id]})
            w.line(3, "</loop>")
        self.segment(w, 3, "GE", "R", "1", "030")
        w.line(2, "</loop>")
        self.segment(w, 2, "IEA", "R", "1", "040")
        w.line(1, "</loop>")
        w.line(0, "</transaction>")
        return "\n".join(w.out) + "\n"


def render_dataele(elements: dict[str, DataElement]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- Generated by mappings/x12/mapgen.py from spec/elements.txt; do not edit. -->",
           "<dataele>"]
    for de in elements.values():
        out.append(
            f"  <data_ele ele_num={quoteattr(de.num)} data_type={quoteattr(de.type)}"
            f' min_len="{de.min_len}" max_len="{de.max_len}" name={quoteattr(de.name)}/>'
        )
    out.append("</dataele>")
    return "\n".join(out) + "\n"


def render_codes() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- Generated by mappings/x12/mapgen.py.  No external code sets: the maps carry\n"
        "     only the few code lists the X12 standard fixes (spec/codes.txt). -->\n"
        "<codesets>\n</codesets>\n"
    )


def render_index() -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           "<!-- Generated by mappings/x12/mapgen.py; do not edit.",
           "     icvn = ISA12, vriic = GS08, fic = GS01; pyx12 matches them exactly. -->",
           "<maps>"]
    current = None
    for icvn, vriic, abbr, fname in INDEX:
        fic = _fic(fname)
        if icvn != current:
            if current is not None:
                out.append("  </version>")
            out.append(f"  <version icvn={quoteattr(icvn)}>")
            current = icvn
        out.append(
            f"    <map vriic={quoteattr(vriic)} fic={quoteattr(fic)} abbr={quoteattr(abbr)}>"
            f"{escape(fname)}</map>"
        )
    out.append("  </version>")
    out.append("</maps>")
    return "\n".join(out) + "\n"


def _fic(map_file: str) -> str:
    """The GS01 of a set map, from its spec file's first line; "" for a control map."""
    spec = SPEC_DIR / "sets" / map_file.replace(".xml", ".txt")
    return load_set(spec).fic if spec.is_file() else ""


def render_unverified(map_versions: dict[str, str]) -> str:
    """maps/unverified.json: the facts marked "?" in spec/, which the validator reports as
    warnings only (pyx12's map schema has no place for them)."""
    elements = load_elements()
    segments = load_segments()
    soft_codes = load_unverified_codes()
    maps: dict[str, dict[str, dict]] = {}
    for map_file, version in sorted(map_versions.items()):
        entry: dict[str, dict] = {}
        for seg_id, seg in sorted(segments[version].items()):
            positions = []
            for i, ref in enumerate(seg.refs, 1):
                nums = [c.num for c in ref.components] if ref.components else [ref.num]
                if any(elements[n].unverified for n in nums if n in elements) or (
                        f"{seg_id}{i:02d}" in soft_codes[version]):
                    positions.append(i)
            if seg.unverified or positions or seg.unverified_syntax:
                entry[seg_id] = {"segment": seg.unverified, "elements": positions,
                                 "syntax": seg.unverified_syntax}
        maps[map_file] = entry
    doc = {"comment": "Generated by mappings/x12/mapgen.py from the '?' marks of spec/; "
                      "do not edit. Findings that rest only on these facts are warnings.",
           "maps": maps}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def render_all() -> dict[str, str]:
    """Return {file name in maps/: content}."""
    files: dict[str, str] = {
        "maps.xml": render_index(),
        "dataele.xml": render_dataele(load_elements()),
        "codes.xml": render_codes(),
    }
    map_versions: dict[str, str] = {}
    for ver, (icvn, _vriic) in VERSIONS.items():
        if f"x12.control.{icvn}.xml" not in files:  # one per interchange version, the first
            files[f"x12.control.{icvn}.xml"] = MapBuilder(ver).envelope("X12 Control", "X12",
                                                                        None)
            map_versions[f"x12.control.{icvn}.xml"] = ver
    for path in sorted((SPEC_DIR / "sets").glob("*.txt")):
        sd = load_set(path)
        files[f"{sd.set_id}.{sd.version}.xml"] = MapBuilder(sd.version).envelope(
            f"{sd.set_id} {sd.name} ({VERSIONS[sd.version][1]})", sd.set_id, sd
        )
        map_versions[f"{sd.set_id}.{sd.version}.xml"] = sd.version
    files[UNVERIFIED] = render_unverified(map_versions)
    return files


def referenced_data_elements() -> set[str]:
    """Every data element number the segment dictionary refers to."""
    out: set[str] = set()
    for segs in load_segments().values():
        for seg in segs.values():
            for ref in seg.refs:
                for r in ref.components or [ref]:
                    out.add(r.num)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mappings.x12.mapgen", description=__doc__)
    ap.add_argument("--check", action="store_true", help="exit 1 if maps/ is stale")
    args = ap.parse_args(argv)
    files = render_all()
    stale = []
    for name, text in files.items():
        path = MAPS_DIR / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    extra = sorted(p.name for p in [*MAPS_DIR.glob("*.xml"), *MAPS_DIR.glob("*.json")]
                   if p.name not in files)
    if args.check:
        for name in stale:
            print(f"stale: maps/{name}", file=sys.stderr)
        for name in extra:
            print(f"not generated: maps/{name}", file=sys.stderr)
        return 1 if stale or extra else 0
    MAPS_DIR.mkdir(exist_ok=True)
    for name in stale:
        (MAPS_DIR / name).write_text(files[name], encoding="utf-8")
    for name in extra:
        (MAPS_DIR / name).unlink()
    print(f"maps/: {len(files)} files, {len(stale)} rewritten, {len(extra)} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
