"""Benchmark: correlating documents into PO chains stays linear in the number of documents.

Makes canonical events for POs of four documents each (850, 855, 856, 810; one PO in ten
has an 855 cutting a line beyond tolerance, so exceptions are emitted and routed), in the
order traffic brings them: POs one after another, each one's documents scattered over the
next ~1,000 POs' worth of traffic, so that some arrive before their PO and wait (with
--shuffle: all documents in random order, the worst case for the store's page cache), and
joins them to their chains
(gateway.chains.correlate.observe) a page of 500 events per transaction, as the map stage
of a large message does. Two runs in one process, each on a fresh SQLite store (or a fresh
PostgreSQL schema with --pg): the small one (10,000 documents over 2,500 POs) and the large
one (100,000 over 25,000). Prints the time per document of each and their ratio; the
chains are linear when the ratio stays within 1.5.

    python bench/chains.py [--small 10000] [--large 100000] [--pg "host=127.0.0.1 user=postgres dbname=test"] [--shuffle]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from canonical import envelope  # noqa: E402
from canonical.envelope import Event  # noqa: E402
from gateway import partners as partners_mod  # noqa: E402
from gateway import settings as settings_mod  # noqa: E402
from gateway.chains import correlate  # noqa: E402
from gateway.store import db, migrate  # noqa: E402

PAGE = 500
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _line(n: int, qty: int, price: str = "4.25") -> dict:
    return {"line_number": str(n), "item_ids": [{"kind": "buyer_part", "id": f"SKU-{n}"}],
            "quantity": {"value": str(qty), "unit": "EA"}, "unit_price": {"value": price}}


WINDOW = 1000  # POs over which one PO's documents are spread


def documents(pos: int, *, shuffle: bool = False, seed: int = 7) -> list[Event]:
    """Four events per PO (two lines each), in arrival order."""
    rng = random.Random(seed)
    out: list[tuple[float, Event]] = []
    for p in range(pos):
        po = f"B{p:07d}"
        cut = 7 if p % 10 == 0 else 10
        made = [
            ("purchase_order", {"po_number": po, "lines": [_line(1, 10), _line(2, 20)]}),
            ("po_acknowledgment", {"po_number": po, "lines": [
                {**_line(1, 10), "status": "accepted"}, {**_line(2, 20), "status": "accepted",
                 "acknowledgments": [{"status": "quantity_changed",
                                      "quantity": {"value": str(cut * 2), "unit": "EA"}}]}]}),
            ("ship_notice", {"shipment_id": f"S{p}", "orders": [
                {"po_number": po, "items": [_line(1, 10), _line(2, cut * 2)]}]}),
            ("invoice", {"invoice_number": f"I{p}", "po_number": po,
                         "lines": [_line(1, 10), _line(2, cut * 2)]}),
        ]
        for n, (kind, data) in enumerate(made):
            # The n-th document comes some way after its PO, give or take (an 855 may
            # overtake the 850 it answers).
            arrives = rng.random() if shuffle else p + n * WINDOW / 4 + rng.uniform(-300, 300)
            out.append((arrives, envelope.make_event(kind, data, partner="globex", check=False,
                                                     keys={"doc": f"{po}:{n}"},
                                                     time=T0 + timedelta(hours=n))))
    out.sort(key=lambda pair: pair[0])
    return [event for _, event in out]


def _store(pg: str | None) -> tuple[str, object]:
    if pg is None:
        folder = tempfile.mkdtemp(prefix="edigw-bench-chains-")
        return f"sqlite:///{folder}/store.db", None
    import psycopg

    schema = f"edigw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    info = psycopg.conninfo.conninfo_to_dict(pg)
    url = (f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
           f":{info.get('port', 5432)}/{info.get('dbname', 'test')}"
           f"?options=-csearch_path%3D{schema}")
    return url, schema


def run(count: int, pg: str | None, shuffle: bool = False) -> tuple[float, int]:
    """Seconds per document for count documents on a fresh store; exceptions emitted."""
    events = documents(count // 4, shuffle=shuffle)
    url, schema = _store(pg)
    migrate.upgrade(url)
    engine = db.make_engine(url)
    partners = partners_mod.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings")
    routes = settings_mod.parse({}, {}, None).routes
    emitted = 0
    # The input is made before the clock starts; frozen, the collector does not walk its
    # objects again and again, which would charge the large run for its own input's size.
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    for at in range(0, len(events), PAGE):
        with db.transaction(engine, durable=False) as s:
            emitted += len(correlate.observe(s, partners, events[at:at + PAGE], routes=routes))
    took = time.perf_counter() - started
    gc.unfreeze()
    engine.dispose()
    if schema is not None:
        import psycopg

        with psycopg.connect(pg, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return took / len(events), emitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--pg", help="a libpq DSN: run on PostgreSQL instead of SQLite")
    ap.add_argument("--shuffle", action="store_true",
                    help="all documents in random order instead of traffic's order")
    args = ap.parse_args()
    backend = "PostgreSQL" if args.pg else "SQLite"
    small, e_small = run(args.small, args.pg, args.shuffle)
    print(f"{backend}: {args.small} documents over {args.small // 4} POs: "
          f"{small * 1e6:.0f} us per document ({e_small} exceptions)", flush=True)
    large, e_large = run(args.large, args.pg, args.shuffle)
    print(f"{backend}: {args.large} documents over {args.large // 4} POs: "
          f"{large * 1e6:.0f} us per document ({e_large} exceptions)")
    ratio = large / small
    print(f"ratio large/small per document: {ratio:.2f} "
          f"({'linear: within 1.5' if ratio <= 1.5 else 'NOT linear: above 1.5'})")


if __name__ == "__main__":
    main()
