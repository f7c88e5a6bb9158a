"""Benchmark: sets per second end to end, and the gateway's overhead factor over the work itself.

Issue #12. Each cell starts a fresh gateway (`edigw run --workers N`, its own SQLite file or
PostgreSQL schema), waits until a warm-up file has gone through (process start and imports
are not counted: this is a running gateway), then drops its input into the partner's inbox
at once and times from the drop until the destination holds every set's event. Cells:

- store: SQLite with 1 worker, PostgreSQL with 1 and with 2 workers (--stores);
- destination: `file` (a JSON Lines file, events counted by line) and `http` (`edigw erp-sim`,
  a process of its own, events counted by its /_sim/stats) (--dests);
- input: --files single-set 850 interchanges (default 2,000), or one interchange of
  --large-sets 850s of --large-lines lines each (default 10,000 of 50: about 50 MB).

Per cell: sets/s; the peak RSS of the largest gateway process (VmHWM); and the OVERHEAD
FACTOR = the gateway's CPU per set (user + sys of the runner and all its descendants, from
/proc, between the drop and the last event) divided by the CPU per set of the work itself on
the same input: validate, build the acks, map and schema-check, called as library functions
in this process just before the cell (mappings.x12.validator.validate,
mappings.x12.acks.build_acknowledgments, mappings.translate.translate with acme's mappings;
time.process_time). On PostgreSQL the database backends' CPU per set is shown beside it
(not in the factor) when the server runs on this machine.

Targets (issue #12): overhead <= 2.5 on SQLite and <= 3 on PostgreSQL (single-set files);
>= 250 sets/s on SQLite with 1 worker; PostgreSQL with 2 workers >= 1.6x PostgreSQL with 1;
the large interchange under 300 MB peak RSS and within 1.5x of the work's CPU.

--commit-baseline adds issue #4's baseline (small commits/s on the same database) as a column;
it is no longer a target (it moves the wrong way when the disk is slow). --profile N runs N
files through the gateway in this process (`edigw run --once` with 1 worker: the inbox, then
the worker until idle) under cProfile and prints the top 15 entries by cumulative time.

    python bench/pipeline.py [--files 2000] [--large-sets 10000] [--large-lines 50]
        [--stores sqlite1,pg1,pg2] [--dests file,http] [--no-pg] [--keep]
        [--pg "host=127.0.0.1 port=5432 user=postgres dbname=test"] [--commit-baseline]
    python bench/pipeline.py --files 200 --large-sets 1000      # a smoke run, a few minutes
    python bench/pipeline.py --profile 200 [--dests http]       # where a worker's time goes
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from gateway import partners as partner_config  # noqa: E402
from gateway.store import db, migrate  # noqa: E402
from mappings import translate  # noqa: E402
from mappings.x12 import acks, validator  # noqa: E402
from mappings.x12.control_numbers import MemoryControlNumbers  # noqa: E402

SENDER = "ACMERETAIL"  # conf/partners/acme.yaml
PARTNER = "acme"
STORES = {"sqlite1": ("sqlite", 1), "pg1": ("postgresql", 1), "pg2": ("postgresql", 2)}
DESTS = ("file", "http")
RUN_TIMEOUT = 1800.0
LARGE_TIMEOUT = 5400.0
# Issue #12's targets.
OVERHEAD_LIMIT = {"sqlite": 2.5, "postgresql": 3.0}
SQLITE_RATE = 250.0  # sets/s, single-set files, SQLite with 1 worker
PG_SCALING = 1.6  # PostgreSQL 2 workers / 1 worker, single-set files
LARGE_RSS_LIMIT = 300 * 1024 * 1024
LARGE_OVERHEAD_LIMIT = 1.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- input generation ---------------------------------------------------------------

_BODY = [
    "BEG*00*SA*{po}**20261120", "CUR*BY*USD", "REF*DP*042", "PER*BD*Jane Buyer*TE*5551234567",
    "FOB*PP", "ITD*01*3*2**10**30", "DTM*002*20261201", "TD5****M*UPS GROUND",
    "N1*BY*Acme Retail*92*0001", "N1*ST*Acme Store 118*92*0118", "N3*400 Main Street",
    "N4*Springfield*IL*62701*US",
    "PO1*1*24*EA*4.25**BP*ACME-1001*VP*W-100*UP*012345678905", "PID*F****Widget, blue",
    "PO1*2*10*CA*38.5**BP*ACME-1002*VP*W-200", "PID*F****Widget, red, case of 12",
    "PO1*3*5*EA*12**BP*ACME-1003*VP*G-300", "CTT*3*39",
]


def _envelope(icn: int) -> list[str]:
    return [f"ISA*00*          *00*          *ZZ*{SENDER:<15}*ZZ*DISTRIBUTOR    *261120*0930*U*"
            f"00401*{icn:09d}*0*P*>",
            f"GS*PO*{SENDER}*DISTRIBUTOR*20261120*0930*{icn}*X*004010"]


def make_interchange(icn: int, sets: int) -> bytes:
    """One 004010 interchange from Acme of `sets` purchase orders; ISA13 = GS06 = icn."""
    out = _envelope(icn)
    for n in range(1, sets + 1):
        st02 = f"{n:04d}"
        out.append(f"ST*850*{st02}")
        out.extend(s.format(po=f"PO{icn:09d}{n:04d}") for s in _BODY)
        out.append(f"SE*{len(_BODY) + 2}*{st02}")
    out += [f"GE*{sets}*{icn}", f"IEA*1*{icn:09d}"]
    return ("~\n".join(out) + "~\n").encode("ascii")


def write_large_interchange(path: Path, icn: int, sets: int, lines: int = 50) -> int:
    """One interchange of `sets` purchase orders of `lines` lines each, written as it is made
    (the bench does not hold it either); its size in bytes."""
    with path.open("wb") as f:
        f.write(("~\n".join(_envelope(icn)) + "~\n").encode("ascii"))
        for n in range(1, sets + 1):
            st02 = f"{n:05d}"
            body = [s.format(po=f"PO{icn:09d}{n:05d}") for s in _BODY[:12]]
            for i in range(1, lines + 1):
                body += [f"PO1*{i}*{i % 9 + 1}*EA*{i % 50 + 1}.25**BP*ACME-{i:05d}*VP*W-{n:06d}",
                         f"PID*F****Widget number {i} of purchase order {n}"]
            body.append(f"CTT*{lines}")
            f.write(("~\n".join([f"ST*850*{st02}", *body, f"SE*{len(body) + 2}*{st02}"])
                     + "~\n").encode("ascii"))
        f.write(f"GE*{sets}*{icn}~\nIEA*1*{icn:09d}~\n".encode("ascii"))
    return path.stat().st_size


# -- the work itself ----------------------------------------------------------------

class Work:
    """Validate, acks, map and schema check of an input, as library calls in this process."""

    def __init__(self) -> None:
        partners = partner_config.load_all(REPO / "conf" / "partners",
                                           mappings_root=REPO / "mappings")
        self.partner = partners.get(PARTNER)
        self.refs = {k: str(v.resolve()) for k, v in self.partner.mappings.items()}
        self.cpu(make_interchange(999_999_999, 2), "warm-up.edi")  # maps and mapping loaded

    def cpu(self, source: bytes | Path, name: str) -> tuple[float, int]:
        """CPU seconds of this process for the work on one file; the events it made."""
        now = datetime.now(UTC)
        started = time.process_time()
        result = validator.validate(source, path=name,
                                    accept_with_errors=self.partner.accept_with_errors)
        numbers = MemoryControlNumbers()
        for ic in result.interchanges:
            acks.build_acknowledgments(ic, numbers, now)
        events = 0
        for r in translate.translate(source, fmt="x12", mappings=self.refs,
                                     partner=self.partner.id, name=name, time=now,
                                     verdicts=translate.verdicts_of(result),
                                     accept_with_errors=self.partner.accept_with_errors):
            if r.status == "translated" and r.event is not None:
                events += 1
        return time.process_time() - started, events


# -- processes: CPU and memory from /proc ---------------------------------------------

def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from the 3rd (state) on


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process and of its children it has waited for."""
    f = _stat(pid)
    if f is None:
        return 0.0
    return sum(int(x) for x in f[11:15]) / CLOCK_TICKS  # utime stime cutime cstime


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (children of every thread)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


class CpuMeter:
    """CPU seconds of a set of processes between start() and stop(); processes that appear
    meanwhile count in full (a worker started again, a PostgreSQL backend connecting)."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.before: dict[int, float] = {}
        self.seconds = 0.0

    def _read(self) -> dict[int, float]:
        return {p: _cpu_of(p) for p in self.pids()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> float:
        after = self._read()
        self.seconds = sum(max(0.0, t - self.before.get(p, 0.0)) for p, t in after.items())
        return self.seconds


def _peak_rss(pid: int) -> int:
    """The peak RSS (VmHWM) of the largest process of the tree; bytes."""
    peaks = [0]
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        peaks += [int(line.split()[1]) * 1024 for line in status.splitlines()
                  if line.startswith("VmHWM:")]
    return max(peaks)


# -- baseline (extra information) ----------------------------------------------------

def commit_rate(url: str, seconds: float = 3.0, at_most: int = 5000) -> float:
    """Commits per second of one small row per transaction, with the store's engine."""
    engine = db.make_engine(url)
    table = sa.Table("edigw_bench_commit", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("note", sa.String(40), nullable=False))
    table.create(engine)
    try:
        n, started = 0, time.perf_counter()
        while n < at_most and time.perf_counter() - started < seconds:
            with db.transaction(engine) as s:
                s.execute(table.insert().values(note=f"row {n}"))
            n += 1
        rate = n / (time.perf_counter() - started)
    finally:
        table.drop(engine)
        engine.dispose()
    return rate


class LockProbe:
    """While a large file goes through on SQLite: a small write transaction every 0.2 s on
    the same store, as an API call (a dead-letter discard) makes; the longest wait, seconds."""

    def __init__(self, url: str) -> None:
        self.engine = db.make_engine(url)
        self.table = sa.Table("edigw_bench_probe", sa.MetaData(),
                              sa.Column("id", sa.Integer, primary_key=True))
        self.table.create(self.engine)
        self.longest, self.count, self.failed = 0.0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            started = time.perf_counter()
            try:
                with db.transaction(self.engine) as s:
                    s.execute(self.table.insert().values())
            except Exception:  # db.StoreBusy: the lock was held past the store's retries
                self.failed += 1
            self.longest = max(self.longest, time.perf_counter() - started)
            self.count += 1


# -- destinations ---------------------------------------------------------------------

class FileCount:
    """Events in the `file` destination's JSON Lines file, counted by newline as it grows."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def __call__(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return 0
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return self.lines


class ErpSim:
    """`edigw erp-sim` as a process of its own on a free loopback port."""

    def __init__(self, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.events_url = f"{self.base}/events"
        self._log = log.open("wb")
        self.proc = subprocess.Popen([*_edigw(), "erp-sim", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.effects()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"edigw erp-sim did not start (see {log})") from None
                time.sleep(0.1)

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def effects(self) -> int:
        return int(self._call("GET", "/_sim/stats")["effects"])

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# -- one cell -----------------------------------------------------------------------

@dataclass
class Cell:
    store: str
    workers: int
    dest: str
    files: int  # single-set files; 0 for the large cell
    large_sets: int = 0
    large_lines: int = 0
    large_bytes: int = 0
    sets: int = 0
    seconds: float = 0.0
    gateway_cpu: float = 0.0  # seconds, all the gateway's processes, over the cell
    db_cpu: float | None = None  # seconds, PostgreSQL backends of the gateway
    work_cpu: float = 0.0  # seconds, validate + acks + map + schema check in this process
    peak_rss: int = 0
    baseline: float = 0.0  # small commits/s on the same store (--commit-baseline)
    lock_wait: float | None = None
    note: str = ""

    @property
    def expected(self) -> int:
        return self.large_sets or self.files

    @property
    def label(self) -> str:
        return f"{self.store} {self.workers}w -> {self.dest}"

    @property
    def input(self) -> str:
        return (f"1 x {self.large_sets:,}-set ({self.large_bytes / 1e6:.0f} MB)"
                if self.large_sets else f"{self.files:,} x 1-set")

    @property
    def rate(self) -> float:
        return self.sets / self.seconds if self.seconds else 0.0

    @property
    def overhead(self) -> float:
        return self.gateway_cpu / self.work_cpu if self.work_cpu and self.sets else 0.0

    def per_set_ms(self, seconds: float | None) -> str:
        return f"{seconds / self.sets * 1000:.2f}" if seconds is not None and self.sets else "-"


def _edigw() -> list[str]:
    exe = Path(sys.executable).with_name("edigw")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gateway.cli"]


def _config(root: Path, url: str, dest: str, workers: int, sim: ErpSim | None,
            app_name: str | None) -> Path:
    if app_name and url.startswith("postgresql"):
        url += f"&application_name={app_name}"
    destination = ({"type": "http", "config": {"url": sim.events_url}} if sim is not None
                   else {"type": "file", "config": {"path": str(root / "erp.jsonl")}})
    config = root / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"url": url},
        "partners": {"folder": str(REPO / "conf" / "partners"),
                     "mappings": str(REPO / "mappings")},
        "inbound": {"folder": {"root": str(root / "inbox"), "stable_for": 0,
                               "poll_interval": 0.05}},
        "acks": {"folder": str(root / "outbox")},
        "destinations": {"erp": destination},
        "workers": {"count": workers, "idle_sleep": 0.05},
        "http": {"listen": "127.0.0.1:0"},
    }), encoding="utf-8")
    return config


def _wait(count: Callable[[], int], target: int, proc: subprocess.Popen, timeout: float) -> bool:
    started = time.perf_counter()
    while count() < target:
        if proc.poll() is not None or time.perf_counter() - started > timeout:
            return False
        time.sleep(0.01)
    return True


def run_cell(cell: Cell, url: str, root: Path, next_icn: int, work: Work, sim: ErpSim | None,
             pg: Postgres | None, commit_baseline: bool) -> int:
    """Measure the work on the cell's input, then the gateway on it; returns the next ISA13."""
    migrate.upgrade(url)
    if commit_baseline:
        cell.baseline = commit_rate(url)
    inbox, staging = root / "inbox" / PARTNER, root / "staging"
    inbox.mkdir(parents=True)
    staging.mkdir()
    if cell.large_sets:
        large = staging / "large.edi"
        cell.large_bytes = write_large_interchange(large, next_icn, cell.large_sets,
                                                   cell.large_lines)
        next_icn += 1
        cell.work_cpu, made = work.cpu(large, large.name)
    else:
        made = 0
        for _ in range(cell.files):
            data = make_interchange(next_icn, 1)
            name = f"po-{next_icn:09d}.edi"
            (staging / name).write_bytes(data)
            seconds, events = work.cpu(data, name)
            cell.work_cpu += seconds
            made += events
            next_icn += 1
    if made != cell.expected:
        cell.note = f"the work itself made {made} events of {cell.expected}"
    warm_up = make_interchange(next_icn, 1)
    next_icn += 1
    app_name = f"edigw-bench-{uuid.uuid4().hex[:8]}"
    config = _config(root, url, cell.dest, cell.workers, sim, app_name)
    if sim is not None:
        sim.reset()
    count = sim.effects if sim is not None else FileCount(root / "erp.jsonl")
    log = (root / "run.log").open("wb")
    proc = subprocess.Popen([*_edigw(), "run", "--config", str(config),
                             "--workers", str(cell.workers)], cwd=root,
                            stdout=log, stderr=subprocess.STDOUT)
    gateway = CpuMeter(lambda: _tree(proc.pid))
    backends = CpuMeter(lambda: pg.backends(app_name)) if pg is not None and pg.local else None
    try:
        (staging / "warm-up.edi").write_bytes(warm_up)
        (staging / "warm-up.edi").rename(inbox / "warm-up.edi")
        if not _wait(count, 1, proc, RUN_TIMEOUT):
            cell.note = f"the warm-up file did not get through (see {root / 'run.log'})"
            return next_icn
        time.sleep(0.5)  # the warm-up's acks and last commits
        gateway.start()
        if backends is not None:
            backends.start()
        started = time.perf_counter()
        for f in sorted(staging.iterdir()):
            f.rename(inbox / f.name)  # whole at once: written beside the inbox, then moved
        timeout = LARGE_TIMEOUT if cell.large_sets else RUN_TIMEOUT
        if cell.large_sets and cell.store == "sqlite":
            with LockProbe(url) as probe:
                _wait(count, cell.expected + 1, proc, timeout)
            cell.lock_wait = probe.longest
        else:
            _wait(count, cell.expected + 1, proc, timeout)
        cell.seconds = time.perf_counter() - started
        cell.gateway_cpu = gateway.stop()
        if backends is not None:
            cell.db_cpu = backends.stop()
        cell.sets = count() - 1
        cell.peak_rss = _peak_rss(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    if cell.sets != cell.expected:
        cell.note = (f"only {cell.sets} of {cell.expected} sets reached the {cell.dest} "
                     f"destination (exit {proc.returncode}; see {root / 'run.log'})")
    return next_icn


# -- stores -------------------------------------------------------------------------

class Postgres:
    """Fresh schemas in one PostgreSQL database, each dropped after its cell."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        self.psycopg, self.dsn = psycopg, dsn
        self.info = psycopg.conninfo.conninfo_to_dict(dsn)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            # The backends' CPU is read from /proc: only when the server runs here.
            self.local = (Path(f"/proc/{pid}/comm").exists()
                          and "postgres" in Path(f"/proc/{pid}/comm").read_text())
        self._conn = psycopg.connect(dsn, autocommit=True)

    def create(self) -> tuple[str, str]:
        schema = f"edigw_bench_{uuid.uuid4().hex[:8]}"
        self._conn.execute(f'CREATE SCHEMA "{schema}"')
        i = self.info
        url = (f"postgresql+psycopg://{i.get('user', 'postgres')}@{i.get('host', '127.0.0.1')}:"
               f"{i.get('port', 5432)}/{i.get('dbname', 'test')}"
               f"?options=-csearch_path%3D{schema}")
        return schema, url

    def backends(self, app_name: str) -> list[int]:
        rows = self._conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                  (app_name,)).fetchall()
        return [r[0] for r in rows]

    def drop(self, schema: str) -> None:
        self._conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- report -------------------------------------------------------------------------

def print_cell(c: Cell) -> None:
    print(f"{c.label:24} {c.input:24} {c.sets:>6} {c.seconds:>8.2f} {c.rate:>8.1f} "
          f"{c.per_set_ms(c.gateway_cpu):>8} {c.per_set_ms(c.work_cpu):>8} "
          f"{c.overhead:>8.2f}x {c.per_set_ms(c.db_cpu):>7} {c.peak_rss / 2**20:>6.0f} MB"
          f"{f'  commits/s {c.baseline:.0f}' if c.baseline else ''}"
          f"{f'  longest write wait {c.lock_wait:.2f} s' if c.lock_wait is not None else ''}"
          f"{'  ' + c.note if c.note else ''}", flush=True)


def targets(cells: list[Cell]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for every target the cells that ran can answer."""
    out = []
    for c in cells:
        ok = not c.note
        if c.large_sets:
            out.append((f"large interchange peak RSS < 300 MB ({c.label})",
                        f"{c.peak_rss / 2**20:.0f} MB", ok and 0 < c.peak_rss < LARGE_RSS_LIMIT))
            out.append((f"large interchange overhead <= {LARGE_OVERHEAD_LIMIT:g}x ({c.label})",
                        f"{c.overhead:.2f}x", ok and 0 < c.overhead <= LARGE_OVERHEAD_LIMIT))
            continue
        limit = OVERHEAD_LIMIT[c.store]
        out.append((f"overhead <= {limit:g}x ({c.label})", f"{c.overhead:.2f}x",
                    ok and 0 < c.overhead <= limit))
        if c.store == "sqlite" and c.workers == 1:
            out.append((f"single-set files >= {SQLITE_RATE:g} sets/s ({c.label})",
                        f"{c.rate:.1f} sets/s", ok and c.rate >= SQLITE_RATE))
    for dest in DESTS:
        pg = {c.workers: c for c in cells
              if c.store == "postgresql" and c.dest == dest and not c.large_sets}
        if 1 in pg and 2 in pg:
            ratio = pg[2].rate / pg[1].rate if pg[1].rate else 0.0
            out.append((f"postgresql 2w >= {PG_SCALING:g}x 1w, single-set files (-> {dest})",
                        f"{ratio:.2f}x", not pg[1].note and not pg[2].note
                        and ratio >= PG_SCALING))
    return out


# -- profile ------------------------------------------------------------------------

def profile(files: int, dest: str, tmp: Path) -> None:
    """N single-set files through `edigw run --once` with 1 worker in this process, under
    cProfile: the inbox takes them, then the worker works them until idle."""
    from gateway.pipeline import runner

    root = tmp / "profile"
    (root / "inbox" / PARTNER).mkdir(parents=True)
    work, work_cpu = Work(), 0.0
    for icn in range(1, files + 1):
        data = make_interchange(icn, 1)
        name = f"po-{icn:09d}.edi"
        work_cpu += work.cpu(data, name)[0]
        (root / "inbox" / PARTNER / name).write_bytes(data)
    sim = ErpSim(root / "erp-sim.log") if dest == "http" else None
    try:
        config = _config(root, f"sqlite:///{root / 'edigw.db'}", dest, 1, sim, None)
        prof = cProfile.Profile()  # wall clock: a CPU timer costs more than most calls
        started = time.process_time()
        prof.enable()
        summary = runner.run(str(config), workers=1, once=True)
        prof.disable()
        cpu = time.process_time() - started
    finally:
        if sim is not None:
            sim.close()
    print(f"profile: {files} single-set files, SQLite, 1 worker in this process, -> {dest}: "
          f"{summary.delivered} delivered; CPU {cpu / files * 1000:.2f} ms/set against the "
          f"work's {work_cpu / files * 1000:.2f} ms/set ({cpu / work_cpu:.1f}x, profiler "
          f"included); top 15 by cumulative time:")
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    print(out.getvalue())
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.print_stats(r"gateway/pipeline/(stages|outbound|routing|intake|inbox)", 12)
    print("the stages' functions, top 12 by cumulative time:")
    print(out.getvalue().split("filename:lineno(function)", 1)[-1].rstrip() + "\n")
    total = sum(tt for _, _, tt, _, _ in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    where: dict[str, float] = {}
    for (file, _, func), (_, _, tt, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        where[_area(file, func)] = where.get(_area(file, func), 0.0) + tt
    print("own time by area (top 12): " + "; ".join(
        f"{area} {t / files * 1000:.2f} ms/set ({t / total:.0%})"
        for area, t in sorted(where.items(), key=lambda kv: -kv[1])[:12]))


def _area(file: str, func: str) -> str:
    """Where a profiled function belongs, for the profile's summary."""
    for needle, area in (("sqlalchemy", "SQLAlchemy"), ("sqlite3", "database driver"),
                         ("psycopg", "database driver"), ("/mappings/", "the work"),
                         ("/canonical/", "the work"), ("jsonschema", "the work"),
                         ("/gateway/", "gateway code"), ("/channels/", "channels"),
                         ("posix.", "system calls"), ("httpx", "HTTP client"),
                         ("httpcore", "HTTP client")):
        if needle in file or needle in func:
            return area
    if any(w in func for w in ("acquire", "sleep", "wait", "select", "poll")):
        return "waiting"
    if "site-packages/" in file:  # by package
        return file.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    if "/python3." in file:  # the standard library, by module
        return file.split("/python3.")[1].split("/", 2)[1].removesuffix(".py")
    return func if file == "~" else file


# -- main ---------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000,
                        help="single-set interchanges per cell (default 2000; 0: no such cells)")
    parser.add_argument("--large-sets", type=int, default=10000,
                        help="sets of the one large interchange (default 10000; 0: no such cells)")
    parser.add_argument("--large-lines", type=int, default=50,
                        help="lines per purchase order in the large interchange (default 50)")
    parser.add_argument("--stores", default="sqlite1,pg1,pg2",
                        help="which of sqlite1, pg1, pg2 (default all three)")
    parser.add_argument("--dests", default="file,http",
                        help="which of file, http (default both)")
    parser.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--no-pg", action="store_true", help="SQLite cells only")
    parser.add_argument("--commit-baseline", action="store_true",
                        help="also measure small commits/s on each cell's store (extra column)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: cProfile N files through 1 worker in this process")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = parser.parse_args()
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    dests = [d.strip() for d in args.dests.split(",") if d.strip()]
    for bad in [s for s in stores if s not in STORES] + [d for d in dests if d not in DESTS]:
        parser.error(f"unknown store or destination {bad!r}: stores are "
                     f"{', '.join(STORES)}; destinations {', '.join(DESTS)}")

    tmp = Path(tempfile.mkdtemp(prefix="edigw-bench-"))
    try:
        if args.profile:
            profile(args.profile, dests[0], tmp)
            return
        run_all(args, stores, dests, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_all(args: argparse.Namespace, stores: list[str], dests: list[str], tmp: Path) -> None:
    pg = None
    if not args.no_pg and any(STORES[s][0] == "postgresql" for s in stores):
        try:
            pg = Postgres(args.pg)
        except Exception as exc:  # reported; the SQLite cells still run
            print(f"PostgreSQL skipped: {exc}")
    plan = [STORES[s] for s in stores if STORES[s][0] == "sqlite" or pg is not None]
    inputs = ([(args.files, 0)] if args.files else []) + ([(0, args.large_sets)]
                                                          if args.large_sets else [])
    work = Work()
    print(f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores; gateway CPU = "
          "runner + workers, user + sys; work = validate + acks + map + schema check")
    print(f"{'cell':24} {'input':24} {'sets':>6} {'seconds':>8} {'sets/s':>8} "
          f"{'gw ms/set':>8} {'work ms/set':>8} {'overhead':>9} {'db ms/set':>7} {'peak RSS':>9}")
    cells: list[Cell] = []
    icn = 1
    for dest in dests:
        sim = ErpSim(tmp / f"erp-sim-{len(cells)}.log") if dest == "http" else None
        try:
            for store, workers in plan:
                for files, large_sets in inputs:
                    cell = Cell(store, workers, dest, files, large_sets=large_sets,
                                large_lines=args.large_lines if large_sets else 0)
                    root = tmp / f"{store}-w{workers}-{dest}-{'large' if large_sets else 'files'}"
                    root.mkdir()
                    if store == "sqlite":
                        icn = run_cell(cell, f"sqlite:///{root / 'edigw.db'}", root, icn, work,
                                       sim, None, args.commit_baseline)
                    else:
                        assert pg is not None
                        schema, url = pg.create()
                        try:
                            icn = run_cell(cell, url, root, icn, work, sim, pg,
                                           args.commit_baseline)
                        finally:
                            pg.drop(schema)
                    cells.append(cell)
                    print_cell(cell)
        finally:
            if sim is not None:
                sim.close()
    results = targets(cells)
    width = max((len(t) for t, _, _ in results), default=10)
    print(f"\n{'target (issue #12)':{width}}  {'measured':>14}")
    for target, measured, met in results:
        print(f"{target:{width}}  {measured:>14}  {'MET' if met else 'MISSED'}")
    print(f"{sum(m for _, _, m in results)} of {len(results)} targets met")


if __name__ == "__main__":
    main()
