"""PO chains on PostgreSQL: two workers firing at once emit each missed deadline's
exception exactly once (SKIP LOCKED); documents of one chain arriving at once keep one
chain and are checked one after another (none misses the others)."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.chains import correlate, deadlines
from gateway.chains.agreement import ChainPolicy
from gateway.store import db
from gateway.store.models import Delivery, Event, PoChain, PoChainDeadline, PoChainFinding
from tests.chain_support import T0, context, story_events
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
CHAINS = 60


def test_two_workers_fire_each_missed_deadline_once(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    setup = context(pg_url, tmp_path)
    data = story_events()[0].data
    with db.transaction(setup.engine) as s:
        for n in range(CHAINS):
            correlate.po_sent(s, "globex", data | {"po_number": f"PO-{n:03d}"}, T0,
                              ChainPolicy(ack_within_hours=1, po_ack_within_hours=2))
    workers = [context(pg_url, tmp_path) for _ in range(2)]
    start, first_batch = threading.Barrier(2), threading.Barrier(2)
    fired = [0, 0]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for round_ in itertools.count():
                got = deadlines.fire_due(workers[n], T0 + timedelta(hours=3), limit=3)
                fired[n] += got
                if round_ == 0:
                    # Both take part whatever the scheduler does: there are more deadlines
                    # than two first batches, so each thread's first batch fires some.
                    first_batch.wait(timeout=60)
                with db.transaction(workers[n].engine, write=False) as s:
                    left = s.scalar(select(func.count()).select_from(PoChainDeadline)
                                    .where(PoChainDeadline.state == "pending"))
                if not left:
                    return
        except BaseException as exc:  # reported below
            first_batch.abort()  # the other thread must not wait for this one
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sum(fired) == 2 * CHAINS and all(fired), fired  # both took part
    with db.transaction(setup.engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(PoChainFinding)) == 2 * CHAINS
        assert s.scalar(select(func.count()).select_from(Event)) == 2 * CHAINS
        assert s.scalar(select(func.count()).select_from(Delivery)) == 2 * CHAINS
        assert set(s.scalars(select(PoChainDeadline.state))) == {"fired"}
    for c in [setup, *workers]:
        c.close()


def test_documents_of_one_chain_at_once_keep_one_chain(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    ctxs = [context(pg_url, tmp_path) for _ in range(4)]
    events = story_events()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def observe(n: int) -> None:
        try:
            start.wait()
            with db.transaction(ctxs[n].engine) as s:
                correlate.observe(s, ctxs[n].partners, [events[n]], routes=ctxs[n].settings.routes)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=observe, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db.transaction(ctxs[0].engine, write=False) as s:
        assert s.scalar(select(func.count()).select_from(PoChain)) == 1
        # Each saw the documents committed before it: the 855's cut is found, once.
        assert list(s.scalars(select(PoChainFinding.kind))) == ["acknowledged_quantity"]
    for c in ctxs:
        c.close()
