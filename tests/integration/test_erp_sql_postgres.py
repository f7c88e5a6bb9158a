"""The sql output on a real PostgreSQL: a fresh staging table per run, dropped afterwards."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from canonical import envelope, errors
from channels import registry

pytestmark = pytest.mark.integration

URL = os.environ.get("EDIGW_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WHEN = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}


def event(n: int = 1) -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=WHEN)


@pytest.fixture
def pg() -> Iterator[tuple[sa.Engine, str]]:
    """An engine on the test database and a table name of our own, dropped afterwards."""
    engine = sa.create_engine(URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as db:
            db.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        message = f"PostgreSQL is not available at {URL}: {exc.orig}"
        if os.environ.get("EDIGW_REQUIRE_REAL_PARTS") == "1":
            pytest.fail(message + " (EDIGW_REQUIRE_REAL_PARTS=1)", pytrace=False)
        pytest.skip(message)
    table = f"edigw_staging_{uuid.uuid4().hex[:12]}"
    try:
        yield engine, table
    finally:
        with engine.begin() as db:
            db.execute(sa.text(f'drop table if exists "{table}"'))
        engine.dispose()


def rows(engine: sa.Engine, table: str) -> list[tuple[str, str]]:
    with engine.connect() as db:
        return [tuple(r) for r in db.execute(sa.text(f'select event_id, type from "{table}"'))]


def test_insert_once_and_duplicates_are_success(pg: tuple[sa.Engine, str]) -> None:
    engine, table = pg
    out = registry.build_output("sql", {"url": URL, "table": table, "create_table": True})
    assert not out.write(event()).duplicate
    assert out.write(event()).duplicate
    out.close()
    again = registry.build_output("sql", {"url": URL, "table": table})  # the table exists now
    assert again.write(event()).duplicate
    assert not again.write(event(2)).duplicate
    again.close()
    assert sorted(rows(engine, table)) == sorted(
        [(event().id, event().type), (event(2).id, event(2).type)])


def test_racing_writers_give_one_row(pg: tuple[sa.Engine, str]) -> None:
    engine, table = pg
    registry.build_output("sql", {"url": URL, "table": table, "create_table": True}).connect()
    outcomes: list[bool] = []

    def deliver() -> None:
        out = registry.build_output("sql", {"url": URL, "table": table})
        outcomes.append(out.write(event()).duplicate)
        out.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False, True, True, True]
    assert len(rows(engine, table)) == 1


def test_a_missing_table_is_a_config_error(pg: tuple[sa.Engine, str]) -> None:
    _, table = pg
    out = registry.build_output("sql", {"url": URL, "table": table})
    with pytest.raises(errors.ConfigError, match="does not exist"):
        out.connect()


def test_an_unreachable_database_is_transient_and_hides_the_password() -> None:
    url = "postgresql+psycopg://postgres:hunter2-canary@127.0.0.1:9/test"
    out = registry.build_output("sql", {"url": url, "timeout": 1})
    with pytest.raises(errors.DeliveryUnavailable) as caught:
        out.connect()
    assert "hunter2-canary" not in str(caught.value)
