"""Benchmark: work-queue throughput (claim, then complete in a second transaction).

For SQLite (a temp file) and PostgreSQL (a temp schema of the `test` database, when it
answers), with 1 and 4 worker processes and batches of 1 and 20, prints items per second
and transactions per second. Each batch is two commits, as in a stage: claim, then
output + complete.

    python bench/store_claims.py [--items 4000] [--pg "host=127.0.0.1 user=postgres dbname=test"]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from gateway.store import claims, db, migrate, models  # noqa: E402


def _work(url: str, worker: str, batch: int) -> int:
    engine = db.make_engine(url)
    done = 0
    while True:
        with db.transaction(engine) as s:
            got = [i.id for i in claims.claim(s, ["bench"], worker, 60, batch)]
        if not got:
            break
        with db.transaction(engine) as s:
            claims.complete(s, worker, got)
        done += len(got)
    engine.dispose()
    return done


def _run(url: str, items: int, workers: int, batch: int) -> tuple[float, float]:
    engine = db.make_engine(url)
    with db.transaction(engine) as s:
        s.execute(models.WorkItem.__table__.delete())
        s.execute(insert(models.WorkItem), [{"kind": "bench"}] * items)
    engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pool.apply(time.sleep, (0,))  # start-up is not what is measured
        started = time.perf_counter()
        done = sum(pool.starmap(_work, [(url, f"w{n}", batch) for n in range(workers)]))
        elapsed = time.perf_counter() - started
    assert done == items, (done, items)
    commits = 2 * -(-items // batch)
    return items / elapsed, commits / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    args = parser.parse_args()
    import psycopg

    stores: list[tuple[str, str]] = []
    tmp = tempfile.TemporaryDirectory()
    stores.append(("sqlite", f"sqlite:///{tmp.name}/bench.db"))
    schema = f"edigw_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(args.pg, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        info = psycopg.conninfo.conninfo_to_dict(args.pg)
        stores.append(("postgresql", f"postgresql+psycopg://{info.get('user', 'postgres')}@"
                       f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/"
                       f"{info.get('dbname', 'test')}?options=-csearch_path%3D{schema}"))
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {exc}")
        schema = ""
    try:
        for name, url in stores:
            migrate.upgrade(url)
            for workers in (1, 4):
                for batch in (1, 20):
                    per_item, per_commit = _run(url, args.items, workers, batch)
                    print(f"{name:10} workers={workers} batch={batch:2}: "
                          f"{per_item:8.0f} items/s  {per_commit:6.0f} commits/s")
    finally:
        tmp.cleanup()
        if schema:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
