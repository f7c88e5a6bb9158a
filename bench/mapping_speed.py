"""Benchmark: the compiled base 850 mapping against the same mapping by hand and in JSONata.

One run, one 50-line purchase order, documents per second for:
  (a) the compiled mapping (tests/data/mapping/850-base.yaml), loop tree building included;
  (b) the same mapping written by hand in Python over the segment list;
  (c) an equivalent jsonata-python expression over a prepared JSON tree (tree not timed).
Targets: compiled >= 0.5x hand-written, compiled >= 30x jsonata-python.

    python bench/mapping_speed.py [--lines 50] [--seconds 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mappings.language import load_mapping  # noqa: E402
from mappings.sources.x12_tree import build_tree, split_sets  # noqa: E402
from mappings.x12.reader import X12Reader  # noqa: E402

MAPPING = REPO / "tests" / "data" / "mapping" / "850-base.yaml"


def make_po(lines: int) -> bytes:
    """An 850 with `lines` PO1/PID lines and the header segments the mapping reads."""
    body = ["BEG*00*SA*4500012345**20261120", "CUR*BY*USD", "REF*DP*042", "REF*IA*V7781",
            "DTM*002*20261201", "N1*BY*Acme Retail*92*0001", "N1*ST*Acme Store 118*92*0118",
            "N3*400 Main Street*Dock 7", "N4*Springfield*IL*62701*US"]
    for i in range(1, lines + 1):
        body.append(f"PO1*{i}*{i * 2}*EA*{i}.25**BP*ACME-{i:04d}*VP*W-{i}*UP*0123456789{i % 10}5")
        body.append(f"PID*F****Widget number {i}")
    body.append(f"CTT*{lines}*{lines * (lines + 1)}")
    segs = ["ISA*00*          *00*          *ZZ*ACME           *ZZ*DIST           *261120*0930*U*"
            "00401*000000001*0*P*>", "GS*PO*ACME*DIST*20261120*0930*1*X*004010", "ST*850*0001",
            *body, f"SE*{len(body) + 2}*0001", "GE*1*1", "IEA*1*000000001"]
    return ("~\n".join(segs) + "~\n").encode()


# -- (b) by hand --------------------------------------------------------------------

PURPOSE = {"00": "original", "05": "replace", "01": "cancel", "04": "change"}
ROLE = {"BY": "buyer", "SE": "seller", "ST": "ship_to", "BT": "bill_to", "VN": "vendor"}
UOM = {"EA": "EA", "CA": "CA", "CS": "CA", "DZ": "DZ"}
KIND = {"BP": "buyer_part", "IN": "buyer_part", "VP": "vendor_part", "VN": "vendor_part",
        "UP": "upc", "UK": "gtin"}
DTM_KIND = {"002": "requested_delivery", "010": "requested_ship"}


def _el(f: list[str], n: int) -> str | None:
    return (f[n] or None) if n < len(f) else None


def _date(v: str | None) -> str | None:
    return datetime.date(int(v[:4]), int(v[4:6]), int(v[6:8])).isoformat() if v else None


def _num(v: str | None) -> str | None:
    if not v:
        return None
    whole, _, frac = v.partition(".")
    whole = whole.lstrip("0") or "0"
    return whole + ("." + frac if frac else "")


def _drop(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def by_hand(segments: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"references": [], "dates": [], "parties": [], "lines": []}
    party: dict[str, Any] | None = None
    line: dict[str, Any] | None = None
    currency = None
    for seg in segments:
        f = seg.fields
        sid = f[0]
        if sid == "BEG":
            out["po_number"] = _el(f, 3)
            out["po_date"] = _date(_el(f, 5))
            code = _el(f, 1)
            out["purpose"] = PURPOSE.get(code, "other") if code else None
            out["purpose_code"] = code
            out["order_type"] = _el(f, 2)
        elif sid == "CUR" and _el(f, 1) == "BY":
            currency = _el(f, 2)
        elif sid == "REF" and line is None and party is None:
            out["references"].append(_drop({"qualifier": _el(f, 1), "value": _el(f, 2)}))
        elif sid == "DTM" and line is None and party is None:
            q = _el(f, 1)
            out["dates"].append(_drop({"kind": DTM_KIND.get(q, "other") if q else None,
                                       "qualifier": q, "date": _date(_el(f, 2))}))
        elif sid == "N1":
            code = _el(f, 1)
            party = {"role": ROLE.get(code, "other") if code else None, "role_code": code,
                     "name": _el(f, 2), "address": {}}
            out["parties"].append(party)
        elif sid == "N3" and party is not None:
            party["address"]["lines"] = [v for v in (_el(f, 1), _el(f, 2)) if v]
        elif sid == "N4" and party is not None:
            party["address"].update(_drop({"city": _el(f, 1), "region": _el(f, 2),
                                           "postal_code": _el(f, 3), "country": _el(f, 4)}))
        elif sid == "PO1":
            party = None
            unit = _el(f, 3)
            if unit is not None and unit not in UOM:
                raise ValueError(f"unit {unit}")
            ids = []
            for q in (6, 8, 10):
                if _el(f, q + 1):
                    code = _el(f, q)
                    ids.append(_drop({"kind": KIND.get(code, "other") if code else None,
                                      "qualifier": code, "id": _el(f, q + 1)}))
            line = {"line_number": _el(f, 1),
                    "quantity": _drop({"value": _num(_el(f, 2)), "unit": UOM.get(unit) if unit else None}),
                    "unit_price": _drop({"value": _num(_el(f, 4)), "basis": _el(f, 5)}),
                    "item_ids": ids}
            out["lines"].append(line)
        elif sid == "PID" and line is not None:
            d = _el(f, 5)
            line["description"] = d.strip() or None if d else None
        elif sid == "CTT":
            line = None
            out["totals"] = _drop({"line_count": int(f[1]) if _el(f, 1) else None,
                                   "quantity_total": _num(_el(f, 2))})
    out["currency"] = currency or "USD"
    out["parties"] = [_drop({**p, "address": _drop(p["address"])}) for p in out["parties"]]
    out["lines"] = [_drop(x) for x in out["lines"]]
    return _drop(out)


# -- (c) JSONata --------------------------------------------------------------------

JSONATA = """(
  $purpose := {"00": "original", "05": "replace", "01": "cancel", "04": "change"};
  $role := {"BY": "buyer", "SE": "seller", "ST": "ship_to", "BT": "bill_to", "VN": "vendor"};
  $uom := {"EA": "EA", "CA": "CA", "CS": "CA", "DZ": "DZ"};
  $kind := {"BP": "buyer_part", "IN": "buyer_part", "VP": "vendor_part", "VN": "vendor_part",
            "UP": "upc", "UK": "gtin"};
  $date := function($v) { $v ? $substring($v, 0, 4) & "-" & $substring($v, 4, 2) & "-" & $substring($v, 6, 2) };
  $num := function($v) { $v ? $string($number($v)) };
  $kindOf := function($q) { $q ? ($lookup($kind, $q) ? $lookup($kind, $q) : "other") };
  {
    "po_number": BEG[0][3],
    "po_date": $date(BEG[0][5]),
    "purpose": $lookup($purpose, BEG[0][1]),
    "purpose_code": BEG[0][1],
    "order_type": BEG[0][2],
    "currency": (CUR[$[1] = "BY"])[0][2] ? (CUR[$[1] = "BY"])[0][2] : "USD",
    "references": [REF.{"qualifier": $[1], "value": $[2]}],
    "dates": [DTM.{"kind": $lookup({"002": "requested_delivery", "010": "requested_ship"}, $[1]),
                    "qualifier": $[1], "date": $date($[2])}],
    "parties": [N1.{"role": $lookup($role, N1[1]), "role_code": N1[1], "name": N1[2],
                    "address": N3 or N4 ? {"lines": [N3[1], N3[2]], "city": N4[1], "region": N4[2],
                                           "postal_code": N4[3], "country": N4[4]}}],
    "lines": [PO1.{
        "line_number": PO1[1],
        "quantity": {"value": $num(PO1[2]), "unit": $lookup($uom, PO1[3])},
        "unit_price": {"value": $num(PO1[4]), "basis": PO1[5]},
        "item_ids": [
          PO1[7] ? {"kind": $kindOf(PO1[6]), "qualifier": PO1[6], "id": PO1[7]},
          PO1[9] ? {"kind": $kindOf(PO1[8]), "qualifier": PO1[8], "id": PO1[9]},
          PO1[11] ? {"kind": $kindOf(PO1[10]), "qualifier": PO1[10], "id": PO1[11]}
        ],
        "description": $trim(PID[5])
    }],
    "totals": {"line_count": $number(CTT[0][1]), "quantity_total": $num(CTT[0][2])}
  }
)"""


def as_json(node: Any) -> dict[str, Any]:
    """The loop tree as JSON for JSONata: segments as arrays, a loop as an object per instance."""
    out: dict[str, Any] = {}
    for seg in node.segments:
        out.setdefault(seg.fields[0], []).append(seg.fields)
    for loop in node.loops:
        child = as_json(loop)
        child[loop.id] = loop.segments[0].fields
        out.setdefault(loop.id, []).append(child)
    return out


def rate(fn: Callable[[], Any], seconds: float) -> float:
    """Documents per second, running fn for about `seconds`."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            fn()
        n += 10
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    segments = next(split_sets(X12Reader(make_po(args.lines))))
    mapping = load_mapping(MAPPING)
    spec = mapping.x12_spec("850")
    compiled = mapping.map_x12(segments, spec)
    hand = by_hand(segments)
    if compiled != hand:
        raise SystemExit(f"the hand-written mapping disagrees:\n{compiled}\n{hand}")
    # Interleaved rounds, best of each: other load on the machine hits all three alike.
    r_compiled = r_tree = r_hand = 0.0
    for _ in range(args.rounds):
        r_compiled = max(r_compiled, rate(lambda: mapping.map_x12(segments, spec), args.seconds))
        r_tree = max(r_tree, rate(lambda: build_tree(segments, spec), args.seconds))
        r_hand = max(r_hand, rate(lambda: by_hand(segments), args.seconds))
    try:
        import jsonata
    except ImportError:
        r_jsonata = None
    else:
        expr = jsonata.Jsonata(JSONATA)
        doc = as_json(build_tree(segments, spec))
        r_jsonata = rate(lambda: expr.evaluate(doc), args.seconds)
    print(f"850 with {args.lines} lines, {len(segments)} segments")
    print(f"  compiled mapping   {r_compiled:10.0f} docs/s  (loop tree alone {r_tree:.0f}/s)")
    print(f"  hand-written       {r_hand:10.0f} docs/s")
    ratio_hand = r_compiled / r_hand
    print(f"  compiled / hand    {ratio_hand:10.2f}   target >= 0.5")
    if r_jsonata is None:
        print("  jsonata-python not installed (pip install jsonata-python)")
    else:
        print(f"  jsonata-python     {r_jsonata:10.0f} docs/s")
        print(f"  compiled / jsonata {r_compiled / r_jsonata:10.1f}   target >= 30")


if __name__ == "__main__":
    main()
