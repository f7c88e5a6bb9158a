"""A large file on PostgreSQL: stored in parts, each stage streaming in pages, nothing doubled."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import partners, settings
from gateway.pipeline import streaming
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.store import db, migrate, payloads
from gateway.store.models import Delivery, Event, Message
from tests.conftest import REPO
from tests.unit.test_pipeline_large import _count, _receive, purchase_orders
from tests.unit.test_pipeline_stages import FakeOutput

pytestmark = pytest.mark.integration
SETS = 120  # just over a megabyte: two parts


def test_a_large_file_streams_through_postgres(pg_url: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "PAGE_EVENTS", 25)
    monkeypatch.setattr(streaming, "ROUTE_PAGE", 25)
    migrate.upgrade(pg_url)
    engine = db.make_engine(pg_url)
    ctx = Context(settings.parse({"acks": {"folder": str(tmp_path / "outbox")}}, {}, None),
                  partners.load_all(REPO / "conf" / "partners", mappings_root=REPO / "mappings"),
                  engine)
    ctx.outputs["erp"] = FakeOutput()  # type: ignore[assignment]
    path = tmp_path / "po.edi"
    path.write_bytes(purchase_orders(SETS))
    try:
        message_id = _receive(ctx, path)
        # The same file again: the same message, its parts kept once.
        assert _receive(ctx, path, expect="duplicate") == message_id
        Worker(ctx, "w1").run(until_idle=True)
        with db.transaction(engine, write=False) as s:
            digest = s.scalar(select(Message.payload_sha256).where(Message.id == message_id))
            assert payloads.read_all(s, digest) == path.read_bytes()
            assert payloads.stored_parts(s, digest) == 1
        assert _count(engine, Message) == 1
        assert _count(engine, Event) == SETS and _count(engine, Delivery) == SETS
        written = ctx.outputs["erp"].written  # type: ignore[attr-defined]
        assert len(written) == len(set(written)) == SETS
    finally:
        ctx.close()
