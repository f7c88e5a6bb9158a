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

    python bench/pipeline.py [--one-set-files 200] [--hundred-set-files 10]
        [--pg "host=127.0.0.1 port=5432 user=postgres dbname=test"] [--no-pg] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
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

    @property
    def rate(self) -> float:
        return self.sets / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
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


def run_cell(cell: Cell, url: str, root: Path, next_icn: int) -> int:
    """Measure the baseline on the cell's store, then the pipeline; returns the next ISA13."""
    migrate.upgrade(url)
    cell.baseline = commit_rate(url)
    inbox = root / "inbox" / "acme"
    inbox.mkdir(parents=True)
    files = []
    for _ in range(cell.files):
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
            _wait(sim.state, expected + 1, proc, RUN_TIMEOUT)
            cell.seconds = time.perf_counter() - started
            cell.sets = len(sim.state.effects) - 1
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
    print(f"{'store':10} {'workers':>7} {'sets/ic':>7} {'sets':>6} {'seconds':>8} "
          f"{'sets/s':>8} {'commits/s':>10} {'ratio':>7}  target")
    try:
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
