"""Record X12 facts from independent published tables as TSV files, with their provenance.

    python tools/x12_spec_sources.py STUPIDEDI_GIT BOTS_GIT PYX12_GIT

Each argument is a git directory (bare or not) of kputnam/stupidedi, bots-edi/bots-grammars
and azoner/pyx12.  The files are read at the commit each one's HEAD names, with `git show`,
and only their facts are written to mappings/x12/spec/sources/ (nothing of their code):

- stupidedi.elements.tsv   version element type min max name   (versions/*/element_defs.rb)
- stupidedi.segments.tsv   version segment position element requirement repeat
                           (segment_defs/*.rb; composites expanded as position 05-01 ...)
- stupidedi.syntax.tsv     version segment note                (syntax notes, pyx12 form)
- bots.segments.tsv        version segment position requirement type min max
                           (x12/4010/records004010.py, x12/5010/records005010.py)
- pyx12.elements.tsv       element type min max name           (pyx12/map/dataele.xml)
- pyx12.segments.tsv       version segment position element    (pyx12/map/*.xml, standard
                           maps and implementation guides; usage is not recorded because a
                           guide narrows it)
- pyx12.syntax.tsv         version segment note

The recorded tables are what tests/unit/test_x12_spec_sources.py compares spec/ with.
sources/pages.syntax.tsv is kept by hand (notes read on published pages) and not written here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from lxml import etree

OUT = Path(__file__).resolve().parent.parent / "mappings" / "x12" / "spec" / "sources"
VERSIONS = {"004010": "4010", "005010": "5010"}
INTERCHANGES = {"00401": "4010", "00501": "5010"}


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", _gitdir(repo), *args], check=True,
                          capture_output=True, text=True).stdout


def _gitdir(repo: str) -> str:
    p = Path(repo)
    return str(p / ".git") if (p / ".git").exists() else str(p)


def head(repo: str) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def files(repo: str, commit: str, folder: str) -> list[str]:
    out = git(repo, "ls-tree", "-r", "--name-only", commit, folder)
    return [line for line in out.splitlines() if line]


def show(repo: str, commit: str, path: str) -> str:
    return git(repo, "show", f"{commit}:{path}")


def write(name: str, header: list[str], columns: list[str], rows: list[tuple]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = [f"# {h}" for h in header]
    lines.append("\t".join(columns))
    lines += ["\t".join(str(c) for c in row) for row in rows]
    (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{name}: {len(rows)} rows")


# -- stupidedi --------------------------------------------------------------------------

_SD_ELEMENT = re.compile(
    r'\b([EI]\d+)\s*=\s*t::\s*(ID|AN|Nn|R|DT|TM|B)\.new\(\s*:[EI]\d+\s*,\s*"((?:[^"\\]|\\.)*)"'
    r"\s*,\s*(\d+)\s*,\s*(\d+)(?:\s*,\s*(\d+))?")
_SD_COMPOSITE = re.compile(r"\b(C\d+)\s*=\s*Schema::CompositeElementDef\.build\(")
_SD_COMPONENT = re.compile(r"\b([EI]\d+)\s*\.\s*component_use\(\s*r::(\w+)")
_SD_SEGMENT = re.compile(r"\b(\w+)\s*=\s*s::SegmentDef\.build\(\s*:(\w+)")
_SD_USE = re.compile(r"e::([EIC]\d+)\s*\.\s*simple_use\(\s*r::(\w+)\s*,\s*"
                     r"s::RepeatCount\.(bounded\((\d+)\)|unbounded)")
_SD_NOTE = re.compile(r"SyntaxNotes::([PRCLE])\.build\(([\d,\s]+)\)")
_REQ = {"Mandatory": "M", "Optional": "O", "Relational": "X"}


def _num(ref: str) -> str:
    return ref[1:] if ref.startswith("E") else ref


def stupidedi(repo: str) -> None:
    commit = head(repo)
    elements, segments, syntax, codes = [], [], [], []
    read = []
    for version, short in VERSIONS.items():
        path = f"lib/stupidedi/versions/{version}/element_defs.rb"
        read.append(path)
        text = show(repo, commit, path)
        found = list(_SD_ELEMENT.finditer(text))
        for i, m in enumerate(found):
            ref, typ, name, lo, hi, prec = m.groups()
            if typ == "Nn":
                typ = f"N{prec or 0}"
            elements.append((version, _num(ref), typ, int(lo), int(hi), name))
            tail = text[m.end(): found[i + 1].start() if i + 1 < len(found) else len(text)]
            listed = _sd_codes(tail)
            if listed:
                codes.append((version, _num(ref), " ".join(listed)))
        composites = {}
        starts = list(_SD_COMPOSITE.finditer(text))
        for i, m in enumerate(starts):
            body = text[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            composites[m.group(1)] = [(_num(c), _REQ.get(r, r))
                                      for c, r in _SD_COMPONENT.findall(body)]
        folders = [f"lib/stupidedi/versions/{version}/segment_defs/"]
        icvn = next(k for k, v in INTERCHANGES.items() if v == short)
        folders.append(f"lib/stupidedi/interchanges/{icvn}/segment_defs/")
        ipath = f"lib/stupidedi/interchanges/{icvn}/element_defs.rb"
        read.append(ipath)
        itext = show(repo, commit, ipath)
        found = list(_SD_ELEMENT.finditer(itext))
        for i, m in enumerate(found):
            ref, typ, name, lo, hi, prec = m.groups()
            typ = f"N{prec or 0}" if typ == "Nn" else typ
            elements.append((version, ref, typ, int(lo), int(hi), name))
            tail = itext[m.end(): found[i + 1].start() if i + 1 < len(found) else len(itext)]
            listed = _sd_codes(tail)
            if listed:
                codes.append((version, ref, " ".join(listed)))
        for folder in folders:
            read.append(folder + "*.rb")
            for path in files(repo, commit, folder):
                if not path.endswith(".rb"):
                    continue
                src = show(repo, commit, path)
                for seg in _SD_SEGMENT.finditer(src):
                    seg_id = seg.group(2)
                    body = src[seg.end():]
                    for pos, use in enumerate(_SD_USE.finditer(body), 1):
                        ref, req, _rep, count = use.groups()
                        repeat = count if count else ">1"
                        segments.append((version, seg_id, f"{pos:02d}", _num(ref),
                                         _REQ.get(req, req), repeat))
                        for k, (comp, creq) in enumerate(composites.get(ref, []), 1):
                            segments.append((version, seg_id, f"{pos:02d}-{k:02d}", comp, creq, 1))
                    for kind, nums in _SD_NOTE.findall(body):
                        note = kind + "".join(f"{int(n):02d}" for n in nums.split(","))
                        syntax.append((version, seg_id, note))
    header = ["source: repository kputnam/stupidedi", f"commit: {commit}",
              "paths: " + ", ".join(read),
              "requirement: M mandatory, O optional, X relational (syntax note decides)",
              "note: some segment_defs are trimmed to what one implementation needed; "
              "element_defs are fuller"]
    write("stupidedi.elements.tsv", header,
          ["version", "element", "type", "min", "max", "name"], sorted(set(elements), key=_key))
    write("stupidedi.segments.tsv", header,
          ["version", "segment", "position", "element", "requirement", "repeat"], segments)
    write("stupidedi.syntax.tsv", header, ["version", "segment", "note"], syntax)
    write("stupidedi.codes.tsv", [*header, "note: code lists are often only the codes one "
                                  "implementation needed"],
          ["version", "element", "codes"], codes)


def _sd_codes(tail: str) -> list[str]:
    """The codes of a CodeList.build right after an element definition, if any."""
    m = re.match(r"\s*,\s*s::CodeList\.build\(", tail)
    if not m:
        return []
    body = tail[m.end():]
    end = body.find("))")
    return re.findall(r'"([^"]+)"\s*=>', body[: end if end >= 0 else len(body)])


def _key(row: tuple) -> tuple:
    num = row[1]
    return (row[0], num[:1].isdigit(), int(re.sub(r"\D", "", num) or 0), num)


# -- Bots -------------------------------------------------------------------------------


def bots(repo: str) -> None:
    commit = head(repo)
    rows = []
    paths = {"004010": "x12/4010/records004010.py", "005010": "x12/5010/records005010.py"}
    for version, path in paths.items():
        text = show(repo, commit, path)
        start = text.index("{", text.index("recorddefs"))
        records = ast.literal_eval(text[start:])
        for seg_id, fields in records.items():
            for field in fields:
                name, req, size, *rest = field
                if name == "BOTSID":
                    continue
                if isinstance(size, list):  # a composite: its components follow
                    rows.append((version, seg_id, name[len(seg_id):], req, "composite", "", ""))
                    for comp in size:
                        cname, creq, csize, ctype = comp
                        lo, hi = csize if isinstance(csize, tuple) else (1, csize)
                        pos = cname[len(seg_id):].replace(".", "-")
                        rows.append((version, seg_id, pos, creq, ctype, lo, hi))
                    continue
                lo, hi = size if isinstance(size, tuple) else (1, size)
                rows.append((version, seg_id, name[len(seg_id):], req, rest[0], lo, hi))
    header = ["source: repository bots-edi/bots-grammars", f"commit: {commit}",
              "paths: " + ", ".join(paths.values()),
              "requirement: M mandatory, C conditional/optional; no element numbers, no "
              "syntax notes",
              "type: Bots writes ID as AN and N0 as R; a bare length is max with min 1"]
    write("bots.segments.tsv", header,
          ["version", "segment", "position", "requirement", "type", "min", "max"], rows)


# -- pyx12 ------------------------------------------------------------------------------


def pyx12(repo: str) -> None:
    commit = head(repo)
    root = etree.fromstring(show(repo, commit, "pyx12/map/dataele.xml").encode())
    elements = []
    for e in root.iter("data_ele"):
        elements.append(("", e.get("ele_num"), e.get("data_type"), int(e.get("min_len")),
                         int(e.get("max_len")), e.get("name") or ""))
    header = ["source: repository azoner/pyx12", f"commit: {commit}"]
    write("pyx12.elements.tsv", [*header, "paths: pyx12/map/dataele.xml"],
          ["element", "type", "min", "max", "name"],
          [row[1:] for row in sorted(elements, key=_key)])
    segs: set[tuple] = set()
    notes: set[tuple] = set()
    codes: set[tuple] = set()
    maps = [p for p in files(repo, commit, "pyx12/map/")
            if p.count("/") == 2 and p.endswith(".xml")
            and re.search(r"\.(4010|5010)", p) and "control" not in p]
    maps += [f"pyx12/map/x12.control.{i}.xml" for i in INTERCHANGES]
    for path in maps:
        m = re.search(r"\.(4010|5010|00401|00501)", path)
        short = INTERCHANGES.get(m.group(1), m.group(1))
        version = next(k for k, v in VERSIONS.items() if v == short)
        tree = etree.fromstring(show(repo, commit, path).encode())
        for seg in tree.iter("segment"):
            seg_id = seg.get("xid")
            for child in seg:
                seq = child.findtext("seq")
                if child.tag == "element" and seq:
                    segs.add((version, seg_id, f"{int(seq):02d}", child.findtext("data_ele")))
                    listed = [c.text.strip() for c in child.iter("code") if c.text]
                    if listed and ("control" in path or re.search(r"/99[79]\.", path)):
                        codes.add((version, f"{seg_id}{int(seq):02d}", " ".join(listed)))
                elif child.tag == "composite" and seq:
                    segs.add((version, seg_id, f"{int(seq):02d}", child.findtext("data_ele")))
                    for k, comp in enumerate(child.findall("element"), 1):
                        segs.add((version, seg_id, f"{int(seq):02d}-{k:02d}",
                                  comp.findtext("data_ele")))
            for s in seg.findall("syntax"):
                notes.add((version, seg_id, (s.text or "").strip()))
    mheader = [*header, "paths: " + ", ".join(sorted(maps)),
               "note: one row per distinct fact over all the maps; usage is left out because "
               "an implementation guide narrows it"]
    write("pyx12.segments.tsv", mheader, ["version", "segment", "position", "element"],
          sorted(segs))
    write("pyx12.syntax.tsv", mheader, ["version", "segment", "note"], sorted(notes))
    cheader = [*header, "paths: pyx12/map/997.4010.xml, 999.5010.xml, 999.5010X231.A1.xml, "
               "x12.control.00401.xml, x12.control.00501.xml",
               "note: code lists of the envelope and acknowledgment maps only (the others are "
               "implementation guides, which narrow them)"]
    write("pyx12.codes.tsv", cheader, ["version", "element", "codes"], sorted(codes))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    stupidedi(argv[0])
    bots(argv[1])
    pyx12(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
