"""Benchmark: how long a newcomer waits for `edigw --help` and for `edigw validate` on a 1 KB file.

Each command runs as a whole process, as a user types it, and so does the floor,
`python -c pass` (the interpreter starting and stopping). The three are interleaved round
by round, so a busy machine slows all of them alike; the medians and their ratios to the
floor are printed. Targets (issue #11): --help under 0.3 s, a 1 KB validate under 0.5 s.

The compiled-map cache (~/.cache/edigw) is warmed by one untimed validate first: that is
the state every run after the first is in. One run with an empty cache folder is timed
apart, for the very first run after installing or after a map change.

    python bench/cli_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIME = Path("/usr/bin/time")
TARGETS = {"edigw --help": 0.3, "edigw validate (1 KB)": 0.5}


def one_kb_850() -> bytes:
    """An accepted 850 of about 1 KB (a few PO1 lines)."""
    body = ["BEG*00*SA*4500012345**20261120", "REF*DP*042", "DTM*002*20261201",
            "N1*BY*Acme Retail*92*0001", "N1*ST*Acme Store 118*92*0118",
            "N3*400 Main Street", "N4*Springfield*IL*62701*US"]
    lines = 0
    while True:
        lines += 1
        body.append(f"PO1*{lines}*{lines * 2}*EA*{lines}.25**BP*ACME-{lines:04d}*VP*W-{lines}")
        body.append(f"PID*F****Widget number {lines}")
        segs = ["ISA*00*          *00*          *ZZ*ACMERETAIL     *ZZ*DISTRIBUTOR    *261120*"
                "0930*U*00401*000000001*0*P*>", "GS*PO*ACMERETAIL*DISTRIBUTOR*20261120*0930*1*X*"
                "004010", "ST*850*0001", *body, f"CTT*{lines}", f"SE*{len(body) + 3}*0001",
                "GE*1*1", "IEA*1*000000001"]
        data = ("~\n".join(segs) + "~\n").encode()
        if len(data) >= 1000:
            return data


def edigw() -> list[str]:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).with_name("edigw")
    if not exe.is_file():
        sys.exit(f"no {exe}: install the project first (make .venv/bin/.installed)")
    return [str(exe)]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one whole process (its output thrown away; a failure stops the run)."""
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=REPO)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return took


def peak_rss_mb(argv: list[str]) -> float | None:
    """Peak RSS of one run, from /usr/bin/time (None where it is not installed)."""
    if not TIME.is_file():
        return None
    done = subprocess.run([str(TIME), "-f", "%M", *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, cwd=REPO, text=True)
    last = done.stderr.strip().splitlines()[-1]
    return int(last) / 1024 if last.isdigit() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edigw-bench-cli-"))
    try:
        sample = work / "po-1kb.edi"
        sample.write_bytes(one_kb_850())
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "edigw --help": [*edigw(), "--help"],
            "edigw validate (1 KB)": [*edigw(), "validate", str(sample)],
        }
        timed(commands["edigw validate (1 KB)"])  # warms the compiled-map cache
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(timed(argv))
        cold_env = {**os.environ, "XDG_CACHE_HOME": str(work / "empty-cache")}
        cold = timed(commands["edigw validate (1 KB)"], cold_env)
        floor = statistics.median(times["python -c pass"])
        print(f"edigw CLI start-up, {args.rounds} interleaved rounds, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.1f}, {datetime.date.today()}; {sample.stat().st_size}"
              f"-byte 850")
        print(f"{'command':<24}{'median s':>10}{'min s':>8}{'x floor':>9}{'peak RSS':>10}  target")
        for name, argv in commands.items():
            med = statistics.median(times[name])
            rss = peak_rss_mb(argv)
            target = TARGETS.get(name)
            verdict = "" if target is None else (
                f"< {target} s: {'met' if med < target else 'missed'}")
            print(f"{name:<24}{med:>10.3f}{min(times[name]):>8.3f}{med / floor:>8.1f}x"
                  f"{f'{rss:.0f} MB' if rss else '-':>10}  {verdict}")
        print(f"{'validate, empty cache':<24}{cold:>10.3f}{'':>8}{cold / floor:>8.1f}x"
              f"{'':>10}  (first run after installing or a map change: compiles the maps)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
