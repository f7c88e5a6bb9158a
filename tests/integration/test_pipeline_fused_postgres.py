"""The fused batch gives what the one-by-one stages give, on PostgreSQL (the SQLite run and
what is compared: tests/unit/test_pipeline_fused.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.pipeline.worker import Worker
from gateway.store import claims, db
from gateway.store.models import Message
from tests.integration.conftest import pg_dsn  # noqa: F401 - fixture
from tests.store_support import migrated
from tests.unit import test_pipeline_fused as fused_tests

pytestmark = pytest.mark.integration


@pytest.fixture
def engines(pg_dsn: str) -> Iterator[tuple[Engine, Engine]]:  # noqa: F811
    """Two stores, each in a fresh schema of its own, dropped afterwards."""
    schemas = [f"edigw_fused_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    made = [migrated(f"postgresql+psycopg://{info.get('user', 'postgres')}@"
                     f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/"
                     f"{info.get('dbname', 'test')}?options=-csearch_path%3D{schema}")
            for schema in schemas]
    try:
        yield made[0], made[1]
    finally:
        for engine in made:
            engine.dispose()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_a_mixed_batch_gives_what_the_stages_give_one_by_one(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    one, batched, writes = fused_tests.run_both(tmp_path, *engines, monkeypatch,
                                                fused_tests.mixed_inputs())
    assert len(writes) == 1
    fused_tests.compare(one, batched)
    assert {status for _, _, status in one["messages"]} == {"done", "dead", "quarantined"}


def test_running_the_batch_again_changes_nothing(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    _, batched, _ = fused_tests.run_both(tmp_path, *engines, monkeypatch,
                                         fused_tests.mixed_inputs())
    engine = engines[1]
    with db.transaction(engine) as s:
        claims.enqueue_many(s, "validate", list(s.scalars(select(Message.id))))
    Worker(fused_tests.context(tmp_path / "again", engine, batch=50), "w1").run(until_idle=True)
    again = fused_tests.snapshot(engine)
    for key in ("interchanges", "acks", "control_numbers", "events", "deliveries"):
        assert again[key] == batched[key], key


def test_acks_built_ahead_are_built_again_when_another_took_the_numbers(
        tmp_path: Path, engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    fused_tests.test_acks_built_ahead_are_built_again_when_another_took_the_numbers(
        tmp_path, engines, monkeypatch)
