"""Real parts for integration tests: skipped locally when absent, required when CI says so."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.sshd_support import SshServer, sshd_available

# CI sets this, so that a missing PostgreSQL fails the run instead of skipping quietly.
REQUIRE_REAL_PARTS = os.environ.get("EDIGW_REQUIRE_REAL_PARTS") == "1"
PG_DSN = os.environ.get("EDIGW_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")


def missing(part: str, why: object) -> None:
    """Skip the test for lack of a real part, or fail it when real parts are required."""
    message = f"{part} is not available: {why}"
    if REQUIRE_REAL_PARTS:
        pytest.fail(message + " (EDIGW_REQUIRE_REAL_PARTS=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The libpq DSN of the test PostgreSQL, once it is known to answer."""
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        missing("PostgreSQL", exc)
    return PG_DSN


@pytest.fixture
def pg_url(pg_dsn: str) -> Iterator[str]:
    """A SQLAlchemy URL into a fresh, empty schema of its own, dropped afterwards."""
    schema = f"edigw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    info = psycopg.conninfo.conninfo_to_dict(pg_dsn)
    # search_path in the startup options: every connection of every process lands in it.
    url = (f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
           f":{info.get('port', 5432)}/{info.get('dbname', 'test')}"
           f"?options=-csearch_path%3D{schema}")
    try:
        yield url
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], SshServer]]:
    """Starts OpenSSH sshd servers of their own (host key, client key, log), each on a free
    loopback port; all are stopped at the end."""
    why = sshd_available()
    if why:
        missing("OpenSSH sshd", why)
    started: list[SshServer] = []

    def start() -> SshServer:
        server = SshServer(tmp_path_factory.mktemp("sshd"))
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def sshd(sshd_factory: Callable[[], SshServer]) -> SshServer:
    """One running sshd."""
    return sshd_factory()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each database in turn: a SQLite file in tmp_path, then a fresh
    PostgreSQL schema (pg_url)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")
