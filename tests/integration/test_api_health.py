"""GET /healthz served by uvicorn: 200 while the PostgreSQL store answers, 503 when the
server it names is not there (a port nobody listens on), never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.store import db, health
from tests.http_support import serving
from tests.sshd_support import free_port
from tests.store_support import migrated

pytestmark = pytest.mark.integration


@pytest.fixture
def closed_url() -> str:
    """A PostgreSQL URL whose port was free a moment ago: connecting is refused."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=5"


def _serve(store_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = ApiSettings(store_url=store_url, api_keys_file=tmp_path / "no-keys.yaml")
    with serving(create_app(settings), log_config=None) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_the_check_returns_on_a_store_that_answers_and_raises_on_one_that_does_not(
        pg_url: str, closed_url: str) -> None:
    engine = migrated(pg_url)
    try:
        health.check(engine)
    finally:
        engine.dispose()
    gone = db.make_engine(closed_url)
    try:
        with pytest.raises(db.StoreUnavailable, match="unavailable"):
            health.check(gone)
    finally:
        gone.dispose()


def test_healthz_is_200_with_the_store_and_503_without(pg_url: str, closed_url: str,
                                                       tmp_path: Path) -> None:
    migrated(pg_url).dispose()
    for client in _serve(pg_url, tmp_path):
        assert client.get("/healthz").json() == {"status": "ok"}
    for client in _serve(closed_url, tmp_path):
        r = client.get("/healthz")
        assert r.status_code == 503, r.text
        assert "the store is unreachable" in r.json()["detail"]
