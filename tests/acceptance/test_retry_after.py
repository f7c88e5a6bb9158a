"""A huge Retry-After from the ERP is capped by the retry policy (issue #11, item 5).

The simulator answers 503 with `Retry-After: 100000000000000000000`. Each attempt must be
recorded, the next one scheduled no later than the policy's maximum delay, and no more
requests sent than the policy allows (1 + maximum_redeliveries) before the dead letter.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from channels.erp_sim import running_simulator
from gateway.store import db
from gateway.store.models import Delivery, DeliveryStatus
from tests.pipeline_support import SAMPLES, Site

pytestmark = pytest.mark.acceptance

MAX_DELAY = 0.3


def _delivery(site: Site) -> Delivery:
    engine = db.make_engine(site.store_url)
    try:
        with db.transaction(engine, write=False) as s:
            return s.scalars(select(Delivery)).one()
    finally:
        engine.dispose()


def test_a_huge_retry_after_is_capped_and_attempts_stay_bounded(tmp_path: Path) -> None:
    with running_simulator() as sim:
        retry = {"maximum_redeliveries": 1, "redelivery_delay": 0.1,
                 "maximum_redelivery_delay": MAX_DELAY, "jitter": 0, "max_age": None}
        site = Site(tmp_path, destinations={"erp": {"type": "http", "retry": retry,
                                                    "config": {"url": sim.events_url}}})
        site.drop("acme", SAMPLES / "acme-850-4010.edi")
        sim.set_fault("503", retry_after=10**20)
        out = site.run("--workers", "1", expect=3)  # a retry is scheduled: work left
        assert "left 1 work item(s) pending" in out
        first = _delivery(site)
        assert (first.status, first.attempts, first.last_status_code) == \
            (DeliveryStatus.PENDING, 1, 503)
        assert first.next_attempt_at is not None
        latest = datetime.now(UTC) + timedelta(seconds=MAX_DELAY)
        assert first.next_attempt_at.replace(tzinfo=UTC) <= latest  # capped, not 10^20 s
        while datetime.now(UTC) < first.next_attempt_at.replace(tzinfo=UTC):
            time.sleep(0.05)
        site.run("--workers", "1")
        last = _delivery(site)
        assert (last.status, last.attempts) == (DeliveryStatus.DEAD, 2)
        assert sim.stats()["requests"] == 2  # the first and the one redelivery, no more
    [letter] = site.dead_letters()
    assert letter.stage == "deliver" and letter.reason.startswith("gave up after 2 attempts")
