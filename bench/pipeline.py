"""Benchmark: transaction sets per second end to end, as ratios against a baseline of the same run.

Issue #4. For each cell (SQLite with 1 worker; PostgreSQL with 1 and 2 workers; interchanges
of 1 set and of 100 sets) this starts a fresh gateway (`edigw run --workers N`, its own
SQLite file or PostgreSQL schema, delivering over HTTP to an ERP simulator in this
process), waits until a warm-up file has gone through (so process start and imports are
not counted: this is the rate of a running gateway), then drops the cell's 850 files into
the partner's inbox at once and times from the drop until the ERP simulator has applied
every set's event. The time counts polling the inbox, receiving, validating and the
997s, mapping, the schema check, routing and delivering.

The baseline, measured on the same database just before each cell: a loop committing one
small row per transaction with the store's own engine (SQLite WAL synchronous=FULL;
PostgreSQL defaults). Targets: sets/s >= 0.25x the baseline's commits/s for 1-set
interchanges, and > 1x for 100-set interchanges (batching).

Issue #11: one more cell drops a single 100 MB interchange (about 10,000 purchase orders
of 100 lines each) on SQLite with 1 worker, and reports its sets/s against the same
baseline and the peak RSS of the largest gateway process (target: under 300 MB).

    python bench/pipeline.py [--one-set-files 200] [--hundred-set-files 10]
        [--pg "host=127.0.0.1 port=5432 user=postgres dbname=test"] [--no-pg] [--keep]
        [--large-mb 100] [--only-large]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from channels.erp_sim import running_simulator  # noqa: E402
from gateway.store import db, migrate  # noqa: E402

# What each ratio must reach, by sets per interchange: (threshold, strictly above).
TARGETS = {1: (0.25, False), 100: (1.0, True)}
SENDER = "ACMERETAIL"  # conf/partners/acme.yaml
RUN_TIMEOUT = 600.0
# The large-file cell (issue #11): one 100 MB interchange through the whole pipeline.
LARGE_RSS_LIMIT = 300 * 1024 * 1024
LARGE_TIMEOUT = 5400.0
LARGE_LOCK_WAIT = 1.0  # the API answers within a second meanwhile


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


def make_interchange(icn: int, sets: int) -> bytes:
    """One 004010 interchange from Acme of `sets` purchase orders; ISA13 = GS06 = icn."""
    out = [f"ISA*00*          *00*          *ZZ*{SENDER:<15}*ZZ*DISTRIBUTOR    *261120*0930*U*"
           f"00401*{icn:09d}*0*P*>",
           f"GS*PO*{SENDER}*DISTRIBUTOR*20261120*0930*{icn}*X*004010"]
    for n in range(1, sets + 1):
        st02 = f"{n:04d}"
        out.append(f"ST*850*{st02}")
        out.extend(s.format(po=f"PO{icn:09d}{n:04d}") for s in _BODY)
        out.append(f"SE*{len(_BODY) + 2}*{st02}")
    out += [f"GE*{sets}*{icn}", f"IEA*1*{icn:09d}"]
    return ("~\n".join(out) + "~\n").encode("ascii")


def write_large_interchange(path: Path, icn: int, size: int, lines: int = 100) -> int:
    """One interchange of about `size` bytes of `lines`-line purchase orders, written as it
    is made (the bench does not hold it either); the number of sets."""
    head = [f"ISA*00*          *00*          *ZZ*{SENDER:<15}*ZZ*DISTRIBUTOR    *261120*0930*U*"
            f"00401*{icn:09d}*0*P*>", f"GS*PO*{SENDER}*DISTRIBUTOR*20261120*0930*{icn}*X*004010"]
    written, sets = 0, 0
    with path.open("wb") as f:
        f.write(("~\n".join(head) + "~\n").encode("ascii"))
        while written < size - 200:
            sets += 1
            st02 = f"{sets:05d}"
            body = [s.format(po=f"PO{icn:09d}{sets:05d}") for s in _BODY[:12]]
            for i in range(1, lines + 1):
                body += [f"PO1*{i}*{i % 9 + 1}*EA*{i % 50 + 1}.25**BP*ACME-{i:05d}*VP*W-{sets:06d}",
                         f"PID*F****Widget number {i} of purchase order {sets}"]
            body.append(f"CTT*{lines}")
            text = "~\n".join([f"ST*850*{st02}", *body, f"SE*{len(body) + 2}*{st02}"]) + "~\n"
            written += f.write(text.encode("ascii"))
        f.write(f"GE*{sets}*{icn}~\nIEA*1*{icn:09d}~\n".encode("ascii"))
    return sets


# -- baseline -----------------------------------------------------------------------

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


# -- one cell -----------------------------------------------------------------------

@dataclass
class Cell:
    store: str
    workers: int
    sets_per_file: int
    files: int
    sets: int = 0
    seconds: float = 0.0
    baseline: float = 0.0
    note: str = ""

    large_bytes: int = 0  # the one file's size, for the large-file cell
    peak_rss: int = 0  # the largest gateway process's peak RSS, bytes
    lock_wait: float = 0.0  # the longest wait of a small write meanwhile, seconds
    lock_at: float = 0.0  # when that wait began, seconds after the drop

    @property
    def rate(self) -> float:
        return self.sets / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
        if self.large_bytes:
            return 0 < self.peak_rss < LARGE_RSS_LIMIT and self.lock_wait < LARGE_LOCK_WAIT
        threshold, strict = TARGETS.get(self.sets_per_file, (1.0, True))
        return self.ratio > threshold if strict else self.ratio >= threshold


def _edigw() -> list[str]:
    exe = shutil.which("edigw")
    return [exe] if exe else [sys.executable, "-c", "from gateway.cli import app; app()"]


def _drop(inbox: Path, name: str, data: bytes) -> None:
    # Written under a name the inbox skips, then renamed: the gateway takes it whole.
    part = inbox / f"{name}.part"
    part.write_bytes(data)
    part.rename(inbox / name)


def _wait(sim_state: object, count: int, proc: subprocess.Popen, timeout: float) -> bool:
    started = time.perf_counter()
    while len(sim_state.effects) < count:  # type: ignore[attr-defined]
        if proc.poll() is not None or time.perf_counter() - started > timeout:
            return False
        time.sleep(0.002)
    return True


def _peak_rss(pid: int) -> int:
    """The peak RSS (VmHWM) of a process and of each of its children, the largest; bytes."""
    peaks = []
    for p in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) * 1024)
    return max(peaks, default=0)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


class LockProbe:
    """While the large file goes through: a small write transaction every 0.2 s on the same
    store, as an API call (a dead-letter discard) makes; the longest wait for it, seconds."""

    def __init__(self, url: str) -> None:
        self.engine = db.make_engine(url)
        self.table = sa.Table("edigw_bench_probe", sa.MetaData(),
                              sa.Column("id", sa.Integer, primary_key=True))
        self.table.create(self.engine)
        self.longest, self.count, self.failed = 0.0, 0, 0
        self.began, self.longest_at = time.perf_counter(), 0.0
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
            waited = time.perf_counter() - started
            if waited > self.longest:
                self.longest, self.longest_at = waited, started - self.began
            self.count += 1


def run_cell(cell: Cell, url: str, root: Path, next_icn: int) -> int:
    """Measure the baseline on the cell's store, then the pipeline; returns the next ISA13."""
    migrate.upgrade(url)
    cell.baseline = commit_rate(url)
    inbox = root / "inbox" / "acme"
    inbox.mkdir(parents=True)
    files = []
    large: Path | None = None
    if cell.large_bytes:
        large = root / "large.edi"
        cell.sets_per_file = write_large_interchange(large, next_icn, cell.large_bytes)
        cell.large_bytes = large.stat().st_size
        next_icn += 1
    for _ in range(cell.files if large is None else 0):
        files.append((f"po-{next_icn:09d}.edi", make_interchange(next_icn, cell.sets_per_file)))
        next_icn += 1
    warm_up = make_interchange(next_icn, 1)
    next_icn += 1
    expected = cell.files * cell.sets_per_file
    with running_simulator() as sim:
        config = root / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "store": {"url": url},
            "partners": {"folder": str(REPO / "conf" / "partners"),
                         "mappings": str(REPO / "mappings")},
            "inbound": {"folder": {"root": str(root / "inbox"), "stable_for": 0,
                                   "poll_interval": 0.05}},
            "acks": {"folder": str(root / "outbox")},
            "destinations": {"erp": {"type": "http", "config": {"url": sim.events_url}}},
            "workers": {"count": cell.workers, "idle_sleep": 0.05},
            "http": {"listen": "127.0.0.1:0"},
        }), encoding="utf-8")
        log = (root / "run.log").open("wb")
        proc = subprocess.Popen([*_edigw(), "run", "--config", str(config),
                                 "--workers", str(cell.workers)], cwd=root,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _drop(inbox, "warm-up.edi", warm_up)
            if not _wait(sim.state, 1, proc, RUN_TIMEOUT):
                cell.note = f"the warm-up file did not get through (see {root / 'run.log'})"
                return next_icn
            started = time.perf_counter()
            for name, data in files:
                _drop(inbox, name, data)
            if large is not None:
                large.rename(inbox / large.name)  # whole at once, as _drop does
                with LockProbe(url) as probe:
                    _wait(sim.state, expected + 1, proc, LARGE_TIMEOUT)
                cell.lock_wait, cell.lock_at = probe.longest, probe.longest_at
                cell.note = (f"{probe.failed} of {probe.count} probe writes failed"
                             if probe.failed else "")
            else:
                _wait(sim.state, expected + 1, proc, RUN_TIMEOUT)
            cell.seconds = time.perf_counter() - started
            cell.sets = len(sim.state.effects) - 1
            cell.peak_rss = _peak_rss(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    if cell.sets != expected:
        cell.note = (f"only {cell.sets} of {expected} sets reached the ERP "
                     f"(exit {proc.returncode}; see {root / 'run.log'})")
    return next_icn


# -- stores -------------------------------------------------------------------------

class Postgres:
    """Fresh schemas in one PostgreSQL database, each dropped after its cell."""

    def __init__(self, dsn: str) -> None:
        import psycopg
        self.psycopg, self.dsn = psycopg, dsn
        self.info = psycopg.conninfo.conninfo_to_dict(dsn)
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")

    def create(self) -> tuple[str, str]:
        schema = f"edigw_bench_{uuid.uuid4().hex[:8]}"
        with self.psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        i = self.info
        url = (f"postgresql+psycopg://{i.get('user', 'postgres')}@{i.get('host', '127.0.0.1')}:"
               f"{i.get('port', 5432)}/{i.get('dbname', 'test')}"
               f"?options=-csearch_path%3D{schema}")
        return schema, url

    def drop(self, schema: str) -> None:
        with self.psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-set-files", type=int, default=200,
                        help="interchanges of 1 set per cell (default 200)")
    parser.add_argument("--hundred-set-files", type=int, default=10,
                        help="interchanges of 100 sets per cell (default 10 = 1,000 sets)")
    parser.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--large-mb", type=float, default=100.0,
                        help="size of the one-file cell's interchange in MB (0: no such cell)")
    parser.add_argument("--only-large", action="store_true", help="the large-file cell alone")
    parser.add_argument("--no-pg", action="store_true", help="SQLite cells only")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = parser.parse_args()

    pg = None
    if not args.no_pg:
        try:
            pg = Postgres(args.pg)
        except Exception as exc:  # reported; the SQLite cells still run
            print(f"PostgreSQL skipped: {exc}")
    plan = [("sqlite", 1)] + ([("postgresql", 1), ("postgresql", 2)] if pg else [])
    sizes = [(1, args.one_set_files), (100, args.hundred_set_files)]
    tmp = Path(tempfile.mkdtemp(prefix="edigw-bench-"))
    cells: list[Cell] = []
    icn = 1
    if args.only_large:
        plan, sizes = [], []
    print(f"{'store':10} {'workers':>7} {'sets/ic':>7} {'sets':>6} {'seconds':>8} "
          f"{'sets/s':>8} {'commits/s':>10} {'ratio':>7}  target")
    try:
        if args.large_mb > 0:
            # One 100 MB interchange on SQLite with 1 worker: its rate against the same
            # baseline, and the peak RSS of the largest gateway process.
            cell = Cell("sqlite", 1, 0, 1, large_bytes=int(args.large_mb * 1_000_000))
            root = tmp / "sqlite-w1-large"
            root.mkdir()
            icn = run_cell(cell, f"sqlite:///{root / 'edigw.db'}", root, icn)
            cells.append(cell)
            verdict = "MET" if cell.met and not cell.note else "MISSED"
            print(f"{'sqlite':10} {1:>7} {cell.sets_per_file:>7} {cell.sets:>6} "
                  f"{cell.seconds:>8.2f} {cell.rate:>8.1f} {cell.baseline:>10.1f} "
                  f"{cell.ratio:>6.2f}x  one {cell.large_bytes / 1e6:.1f} MB file: peak RSS "
                  f"{cell.peak_rss / 2**20:.0f} MB < {LARGE_RSS_LIMIT / 2**20:.0f} MB; "
                  f"longest wait of a write meanwhile {cell.lock_wait:.2f} s "
                  f"({cell.lock_at:.0f} s after the drop) "
                  f"{verdict}{'  ' + cell.note if cell.note else ''}", flush=True)
        for store, workers in plan:
            for per_file, files in sizes:
                cell = Cell(store, workers, per_file, files)
                root = tmp / f"{store}-w{workers}-s{per_file}"
                root.mkdir()
                if store == "sqlite":
                    icn = run_cell(cell, f"sqlite:///{root / 'edigw.db'}", root, icn)
                else:
                    assert pg is not None
                    schema, url = pg.create()
                    try:
                        icn = run_cell(cell, url, root, icn)
                    finally:
                        pg.drop(schema)
                cells.append(cell)
                threshold, strict = TARGETS[per_file]
                verdict = "MET" if cell.met and not cell.note else "MISSED"
                print(f"{store:10} {workers:>7} {per_file:>7} {cell.sets:>6} "
                      f"{cell.seconds:>8.2f} {cell.rate:>8.1f} {cell.baseline:>10.1f} "
                      f"{cell.ratio:>6.2f}x  {'>' if strict else '>='}{threshold:g}x "
                      f"{verdict}{'  ' + cell.note if cell.note else ''}", flush=True)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    missed = [c for c in cells if not c.met or c.note]
    print(f"{len(cells) - len(missed)} of {len(cells)} targets met")


if __name__ == "__main__":
    main()
