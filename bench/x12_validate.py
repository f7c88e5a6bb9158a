"""Benchmark: X12 validation speed and memory, as ratios against baselines measured in the same run.

Generates an 850 and an 856 interchange of about 1,000,000 segments each, then for each file
measures, every one in a fresh process so that peak RSS is its own:
  (a) the floor: plain str.split tokenizing of the same bytes (no validation at all);
  (b) pyx12 validating with our maps (the reference engine);
  (c) edigw validating.
Prints segments per second, peak RSS, and the ratios the targets speak of:
  edigw / pyx12 speed   >= 20
  floor / edigw time    <= 5   (edigw no slower than 5x the str.split floor)
  edigw peak RSS        < 150 MB

    python bench/x12_validate.py [--segments 1000000] [--pyx12-segments N] [--keep DIR]

pyx12 is slow: --pyx12-segments runs it on a smaller file of the same shape (its rate is
per segment, so the ratio still holds; its RSS is then not comparable and is marked so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# -- input generation ---------------------------------------------------------------

def _envelope(fic: str, sets: list[list[str]], version: str = "004010") -> str:
    isa = ("ISA*00*          *00*          *ZZ*BENCHSENDER    *ZZ*BENCHRECEIVER  *261123*1200*U*"
           "00401*000000001*0*P*>")
    out = [isa, f"GS*{fic}*BENCHSENDER*BENCHRECEIVER*20261123*1200*1*X*{version}"]
    for n, body in enumerate(sets, 1):
        cn = f"{n:04d}"
        out.append(f"ST*{(fic == 'PO' and '850') or '856'}*{cn}")
        out.extend(body)
        out.append(f"SE*{len(body) + 2}*{cn}")
    out.append(f"GE*{len(sets)}*1")
    out.append("IEA*1*000000001")
    return "~\n".join(out) + "~\n"


def make_850(segments: int) -> str:
    """Purchase orders of 5,000 segments each: header, N1 loops, PO1/PID lines, CTT."""
    per_set = 5000
    header = ["BEG*00*SA*4500012345**20261120", "CUR*BY*USD", "REF*DP*042",
              "DTM*002*20261201", "N1*ST*Store 118*92*0118", "N3*400 Main Street",
              "N4*Springfield*IL*62701*US"]
    lines = (per_set - len(header) - 3) // 2
    body = list(header)
    for i in range(1, lines + 1):
        body.append(f"PO1*{i}*{i % 97 + 1}*EA*{i % 50 + 1}.25**BP*ITEM-{i:06d}*VP*V{i:07d}")
        body.append(f"PID*F****Item number {i}")
    body.append(f"CTT*{lines}")
    n_sets = max(1, segments // (len(body) + 2))
    return _envelope("PO", [body] * n_sets)


def make_856(segments: int) -> str:
    """Ship notices in S-O-P-I shape: each order holds cartons of one item each."""
    body = ["BSN*00*SHP000001*20261122*1405*0001", "DTM*011*20261122"]
    hl = 1
    body += [f"HL*{hl}**S", "TD1*CTN25*2****G*31.5*LB", "TD5*B*2*UPSN*M*UPS GROUND",
             "REF*BM*1Z999AA10123456784", "N1*ST*Distributor DC*92*DC01"]
    ship = hl
    while len(body) < 4990:
        hl += 1
        order = hl
        body += [f"HL*{order}*{ship}*O", "PRF*4500012345***20261120"]
        for c in range(20):
            hl += 1
            pack = hl
            body += [f"HL*{pack}*{order}*P", f"MAN*GM*{hl:020d}"]
            hl += 1
            body += [f"HL*{hl}*{pack}*I", f"LIN*{c + 1}*BP*ITEM-{c:06d}", f"SN1*{c + 1}*24*EA"]
    body.append(f"CTT*{hl}")
    n_sets = max(1, segments // (len(body) + 2))
    return _envelope("SH", [body] * n_sets)


# -- measurements, each run in a child process ----------------------------------------

def measure(engine: str, path: str) -> dict:
    """Run one engine over one file in this process; return segments and seconds."""
    if engine == "floor":
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            text = fh.read().decode("ascii")
        n = 0
        for seg in text.split("~"):
            seg = seg.strip()
            if seg:
                seg.split("*")
                n += 1
        return {"segments": n, "seconds": time.perf_counter() - t0}
    if engine in ("make-850", "make-856"):
        # Generated in a child so the parent never holds the text: a child forked from a
        # large parent would count the parent's pages in its own peak RSS.
        count = int(os.environ["EDIGW_BENCH_SEGMENTS"])
        text = (make_850 if engine == "make-850" else make_856)(count)
        Path(path).write_text(text)
        return {"segments": 0, "seconds": 0.0}
    if engine == "edigw":
        from mappings.x12 import validator
        t0 = time.perf_counter()
        result = validator.validate(path)
        seconds = time.perf_counter() - t0
        sets = result.sets()
        return {"segments": sum(s.segment_count for s in sets) + 3 * len(result.interchanges),
                "seconds": seconds, "accepted": sum(1 for s in sets if s.accepted),
                "sets": len(sets)}
    if engine == "pyx12":
        from mappings.x12 import pyx12_bridge
        data = Path(path).read_bytes()
        t0 = time.perf_counter()
        verdict = pyx12_bridge.run_pyx12(data)
        seconds = time.perf_counter() - t0
        n = sum(1 for line in data.split(b"~") if line.strip())
        return {"segments": n, "seconds": seconds,
                "accepted": sum(1 for v in verdict.sets.values() if v.accepted),
                "sets": len(verdict.sets)}
    raise SystemExit(f"unknown engine {engine}")


def run_child(engine: str, path: str) -> dict:
    """Measure in a fresh interpreter and add its peak RSS (from wait4)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", engine, path],
                            stdout=subprocess.PIPE, cwd=REPO)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{engine} failed on {path} (status {status})")
    result = json.loads(out)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--segments", type=int, default=1_000_000)
    ap.add_argument("--pyx12-segments", type=int, default=None,
                    help="run pyx12 on a smaller file of the same shape")
    ap.add_argument("--keep", type=Path, default=None, help="write the generated files here")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(measure(*args.child)))
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="edigw-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    baseline = run_child("floor", __file__)  # an interpreter doing nearly nothing: RSS floor
    print(f"python interpreter alone: peak RSS {baseline['peak_rss_mb']:.0f} MB")
    # The first run after a map change compiles the maps (lxml, ~95 MB peak) and caches
    # them; measure the steady state, as a running gateway sees it.
    warm = run_child("edigw", str(REPO / "samples" / "x12" / "acme-850-4010.edi"))
    print(f"edigw warm-up (compiles maps into the cache if stale): peak RSS "
          f"{warm['peak_rss_mb']:.0f} MB")
    run_child("edigw", str(REPO / "samples" / "x12" / "globex-856-4010-sopi.edi"))
    rows = []
    for name in ("850", "856"):
        big = folder / f"bench-{name}.edi"
        os.environ["EDIGW_BENCH_SEGMENTS"] = str(args.segments)
        run_child(f"make-{name}", str(big))
        small = big
        if args.pyx12_segments:
            small = folder / f"bench-{name}-small.edi"
            os.environ["EDIGW_BENCH_SEGMENTS"] = str(args.pyx12_segments)
            run_child(f"make-{name}", str(small))
        floor = run_child("floor", str(big))
        edigw = run_child("edigw", str(big))
        pyx12 = run_child("pyx12", str(small))
        for r in (floor, edigw, pyx12):
            r["rate"] = r["segments"] / r["seconds"]
        rows.append((name, floor, edigw, pyx12, small != big))
        print(f"\n{name}: {floor['segments']:,} segments ({big.stat().st_size / 1e6:.0f} MB)")
        print(f"  (a) str.split floor : {floor['rate']:>12,.0f} seg/s  {floor['seconds']:7.2f} s  "
              f"peak RSS {floor['peak_rss_mb']:6.0f} MB")
        print(f"  (b) pyx12, our maps : {pyx12['rate']:>12,.0f} seg/s  {pyx12['seconds']:7.2f} s  "
              f"peak RSS {pyx12['peak_rss_mb']:6.0f} MB"
              + (f"  (on {pyx12['segments']:,} segments)" if small != big else "")
              + f"  sets accepted {pyx12.get('accepted')}/{pyx12.get('sets')}")
        print(f"  (c) edigw           : {edigw['rate']:>12,.0f} seg/s  {edigw['seconds']:7.2f} s  "
              f"peak RSS {edigw['peak_rss_mb']:6.0f} MB"
              f"  sets accepted {edigw.get('accepted')}/{edigw.get('sets')}")
        speedup = edigw["rate"] / pyx12["rate"]
        vs_floor = floor["rate"] / edigw["rate"]
        print(f"  edigw / pyx12 speed        = {speedup:6.1f}x  (target >= 20x)"
              f"  {'MET' if speedup >= 20 else 'MISSED'}")
        print(f"  edigw time / floor time    = {vs_floor:6.1f}x  (target <= 5x)"
              f"  {'MET' if vs_floor <= 5 else 'MISSED'}")
        print(f"  edigw peak RSS             = {edigw['peak_rss_mb']:6.0f} MB (target < 150 MB)"
              f"  {'MET' if edigw['peak_rss_mb'] < 150 else 'MISSED'}")


if __name__ == "__main__":
    main()
