"""An ISA whose ids are longer than X12 allows, on PostgreSQL: recorded, rejected with the
reason, the item done; not a row the database refuses and an item retried forever."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import partners, settings
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import db, migrate
from gateway.store.models import DeadLetter, Interchange, WorkItem
from tests.conftest import REPO
from tests.unit.test_pipeline_stages import ACME, FakeOutput, _receive

pytestmark = pytest.mark.integration


def test_an_overlong_isa13_is_recorded_and_answered(pg_url: str, tmp_path: Path) -> None:
    migrate.upgrade(pg_url)
    engine = db.make_engine(pg_url)
    ctx = Context(settings.parse({"acks": {"folder": str(tmp_path / "outbox")}}, {}, None),
                  partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                  engine)
    ctx.outputs["erp"] = FakeOutput()  # type: ignore[assignment]
    # ISA13 and IEA02 of ten digits (X12 allows nine): the interchange is rejected (TA1 018;
    # no TA1 is sent, as it could not echo such an ISA13 legally), but first it is recorded
    # for the duplicate check, id and all.
    data = ACME.replace(b"*000001001*", b"*0000010010*").replace(b"IEA*1*000001001",
                                                                  b"IEA*1*0000010010")
    assert data != ACME
    try:
        _receive(ctx, data)
        Worker(ctx, "w1").run(until_idle=True)
        with db.transaction(engine, write=False) as s:
            assert s.scalars(select(Interchange.isa13)).all() == ["0000010010"]
            left = s.scalars(select(WorkItem.kind).where(WorkItem.status != "done")).all()
            letters = s.scalars(select(DeadLetter.reason)).all()
        assert left == [], (left, letters)
        [reason] = letters
        assert "TA1 R 018" in reason and "ISA13 is 10 characters wide" in reason
    finally:
        ctx.close()
