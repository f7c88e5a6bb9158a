"""The pyx12 bridge: the only module of the gateway that imports pyx12.

``run_pyx12(data)`` validates an X12 interchange with pyx12 against the project's own
maps (``mappings/x12/maps``, generated from ``spec/`` by ``mapgen``) and returns a
:class:`Pyx12Verdict`: for every transaction set, keyed by (interchange control number,
group control number, set control number), whether pyx12 accepted it and pyx12's errors,
plus the 997/999 text pyx12 generated.

pyx12 picks a map by exact ISA12 / GS01 / GS08 values, so the bridge runs pyx12 on a
normalised **copy** of the input (the caller's bytes are never changed):

* a leading UTF-8 byte order mark and blanks before the ISA are dropped; when CR and LF
  are not delimiters, every CR/LF is removed (line breaks between or inside segments),
  and blanks (space, tab) before a segment id are removed when they are not delimiters;
  a missing terminator after the last segment is added;
* ISA12 becomes ``00401`` or ``00501`` (same five bytes, so the ISA keeps its length):
  pyx12 reads no other interchange version, so 004030 groups go in an ``00401`` one;
* GS08 becomes the nearest of our maps, as ``specs.select_map`` picks it: before 004030
  -> ``004010``, ``004030``..``004xxx`` -> ``004030`` (so ``004030VICS`` is validated
  as ``004030``), ``005xxx`` and later -> ``005010``; a functional acknowledgment group
  keeps an exact ``005010X230``/``005010X231``/``005010X231A1`` and otherwise gets ``005010X230`` for a
  997 and ``005010X231`` for a 999 at 5010.  The interchange's version family is taken
  from its first group's GS08 (then ISA12); a group of the other family (005010 in an
  00401 interchange, or the reverse) follows the interchange's;
* GS01 is set to the functional identifier of the group's first ST01 (850 -> PO,
  855 -> PR, 856 -> SH, 810 -> IN, 997/999 -> FA) when it is not already that.

So pyx12 does not judge the version fields themselves, nor the GS01/ST01 pairing; the
gateway's own reader and validator do.  pyx12 failures are translated: input pyx12
cannot read raises :class:`canonical.errors.X12ReadError`; a missing or broken map
raises :class:`canonical.errors.SpecificationError`.  Nothing else escapes.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonical.errors import SpecificationError, X12ReadError
from mappings.x12 import specs
from mappings.x12.charset import is_digits

_MAPS_DIR = Path(__file__).resolve().parent / "maps"

_EXACT_FA_5010 = {"005010X230", "005010X231", "005010X231A1"}


def map_path() -> str:
    """The folder holding our pyx12 maps (maps.xml, dataele.xml, codes.xml, *.xml)."""
    return str(_MAPS_DIR)


@dataclass(frozen=True)
class Pyx12Error:
    """One error pyx12 reported inside a transaction set."""

    code: str
    message: str
    segment_id: str | None = None
    segment_position: int | None = None  # position of the segment within the set (ST = 1)
    element_position: int | None = None
    component_position: int | None = None
    value: str | None = None


@dataclass
class SetVerdict:
    interchange_control_number: str
    group_control_number: str
    set_control_number: str
    set_id: str
    accepted: bool
    ack_code: str | None
    errors: list[Pyx12Error] = field(default_factory=list)


@dataclass
class Pyx12Verdict:
    """pyx12's judgement of one interchange file."""

    valid: bool
    sets: dict[tuple[str, str, str], SetVerdict]
    envelope_errors: list[Pyx12Error]
    ack_text: str

    def accepted(self, key: tuple[str, str, str]) -> bool:
        return self.sets[key].accepted


def _normalise(text: str) -> str:
    """Return the copy of ``text`` pyx12 is run on (see the module docstring)."""
    text = text.lstrip(" \t\r\n")
    if not text.startswith("ISA") or len(text) < 106:
        return text
    elem = text[3]
    if "\r" not in text[:105] and "\n" not in text[:105]:
        isa = text[:106]
    else:  # hard-wrapped ISA: look past the line breaks
        isa = text.replace("\r", "").replace("\n", "")[:106]
    comp, term = isa[104], isa[105]
    if elem.isalnum() or term.isalnum() or elem == term:
        return text
    delims = {elem, comp, term}
    if not delims & {"\r", "\n"}:
        text = text.replace("\r", "").replace("\n", "")
    segs = text.split(term)
    blanks = "".join(c for c in " \t\r\n" if c not in delims)
    segs = [s.lstrip(blanks) for s in segs]
    ids = [s.strip().split(elem, 1)[0] for s in segs]
    family: str | None = None
    for i, sid in enumerate(ids):
        fields = segs[i].split(elem)
        if sid == "ISA" and len(fields) == 17:
            family = _interchange_family(segs, ids, i, elem)
            fields[12] = "00501" if family == "5010" else "00401"
            segs[i] = elem.join(fields)
        elif sid == "GS" and len(fields) >= 9:
            st01 = _first_st01(segs, ids, i, elem)
            gs08 = fields[8].strip()
            fam = own = _family_of(gs08)
            if family is not None and ("5010" in (family, own) or not is_digits(gs08[:6])):
                fam = family  # 00401 and 00501 control maps do not mix in one interchange
            fields[8] = _vriic(gs08, fam, st01)
            fic = specs.functional_id_for(st01) if st01 else None
            if fic and fields[1].strip() != fic:
                lead = fields[1][: len(fields[1]) - len(fields[1].lstrip())]
                fields[1] = lead + fic
            segs[i] = elem.join(fields)
    out = term.join(segs)
    if out.rstrip(blanks) and not out.rstrip(blanks).endswith(term):
        out = out.rstrip(blanks) + term  # last segment without its terminator
    return out


def _family_of(version: str) -> str:
    if version[:3] >= "005":
        return "5010"
    return "4030" if version[:6] >= "004030" else "4010"


def _interchange_family(segs: list[str], ids: list[str], i: int, elem: str) -> str:
    for j in range(i + 1, len(ids)):
        if ids[j] == "IEA":
            break
        if ids[j] == "GS":
            f = segs[j].split(elem)
            if len(f) >= 9 and f[8].strip():
                return _family_of(f[8].strip())
    isa12 = segs[i].split(elem)[12]
    return _family_of(isa12 + "0")


def _first_st01(segs: list[str], ids: list[str], i: int, elem: str) -> str | None:
    for j in range(i + 1, len(ids)):
        if ids[j] in ("GE", "GS", "IEA"):
            return None
        if ids[j] == "ST":
            f = segs[j].split(elem)
            return f[1].strip() if len(f) > 1 else None
    return None


def _vriic(gs08: str, family: str, st01: str | None) -> str:
    if family in ("4010", "4030"):
        return "00" + family
    if st01 == "997":
        return gs08 if gs08 == "005010X230" else "005010X230"
    if st01 == "999":
        return gs08 if gs08 in _EXACT_FA_5010 - {"005010X230"} else "005010X231"
    return "005010"


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _collect(doc: dict[str, Any]) -> tuple[dict[tuple[str, str, str], SetVerdict], list[Pyx12Error]]:
    sets: dict[tuple[str, str, str], SetVerdict] = {}
    envelope: list[Pyx12Error] = []
    for isa in doc.get("interchanges", []):
        icn = str(isa.get("isa_trn_set_id") or "")
        envelope += [Pyx12Error(str(e["err_cde"]), str(e["err_str"]), "ISA") for e in isa["errors"]]
        for gs in isa.get("groups", []):
            gcn = str(gs.get("gs_control_num") or "")
            envelope += [Pyx12Error(str(e["err_cde"]), str(e["err_str"]), "GS") for e in gs["errors"]]
            for st in gs.get("transactions", []):
                errors = [Pyx12Error(str(e["err_cde"]), str(e["err_str"]), "ST")
                          for e in st["errors"]]
                for seg in st.get("segments", []):
                    pos = _int(seg.get("seg_count"))
                    for e in seg.get("errors", []):
                        errors.append(Pyx12Error(str(e["err_cde"]), str(e["err_str"]),
                                                 seg.get("seg_id"), pos, value=e.get("err_val")))
                    for ele in seg.get("elements", []):
                        for e in ele.get("errors", []):
                            errors.append(Pyx12Error(
                                str(e["err_cde"]), str(e["err_str"]), seg.get("seg_id"), pos,
                                _int(ele.get("ele_pos")), _int(ele.get("subele_pos")),
                                e.get("err_val")))
                key = (icn, gcn, str(st.get("trn_set_control_num") or ""))
                ack = st.get("ack_code")
                verdict = SetVerdict(
                    icn, gcn, key[2], str(st.get("trn_set_id") or ""),
                    accepted=not errors and ack in (None, "A", "E"), ack_code=ack, errors=errors)
                if key in sets:  # duplicate control numbers: one entry for all of them
                    prev = sets[key]
                    prev.errors += verdict.errors
                    prev.accepted = prev.accepted and verdict.accepted
                else:
                    sets[key] = verdict
    return sets, envelope


def run_pyx12(data: bytes, *, map_path: str | None = None) -> Pyx12Verdict:
    """Validate ``data`` with pyx12 against our maps; see the module docstring."""
    import pyx12.errors
    import pyx12.params
    import pyx12.x12n_document

    folder = map_path or str(_MAPS_DIR)
    if not Path(folder, "maps.xml").is_file():
        raise SpecificationError(f"no pyx12 maps.xml in {folder}")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    text = _normalise(data.decode("latin-1"))
    if "ISA" not in text[:1024]:
        raise X12ReadError("pyx12 cannot read this input: no ISA segment at the start")
    param = pyx12.params.params()
    fd_ack, fd_json = io.StringIO(), io.StringIO()
    logger = logging.getLogger("pyx12")
    old_level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        ok = pyx12.x12n_document.x12n_document(
            param, io.StringIO(text, newline=""), fd_ack, None, None, fd_json, map_path=folder)
    except pyx12.errors.EngineError as exc:
        if "Map not found" in str(exc):
            raise SpecificationError(f"pyx12 has no map for this group: {exc}") from exc
        raise X12ReadError(f"pyx12 cannot read this input: {exc}") from exc
    except (OSError, SyntaxError) as exc:  # map files missing or not XML
        raise SpecificationError(f"pyx12 could not load its maps: {exc}") from exc
    except (pyx12.errors.X12Error, ValueError, IndexError, KeyError, AttributeError,
            TypeError, AssertionError, RecursionError, UnicodeError) as exc:
        raise X12ReadError(f"pyx12 failed on this input: {type(exc).__name__}: {exc}") from exc
    finally:
        logger.setLevel(old_level)
    raw = fd_json.getvalue()
    try:
        doc = json.loads(raw) if raw else {"interchanges": []}
    except ValueError as exc:
        raise X12ReadError(f"pyx12 produced no readable verdict: {exc}") from exc
    sets, envelope = _collect(doc)
    if not doc.get("interchanges"):
        raise X12ReadError("pyx12 could not read an interchange from this input")
    return Pyx12Verdict(bool(ok), sets, envelope, fd_ack.getvalue())
