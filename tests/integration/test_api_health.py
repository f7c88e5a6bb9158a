"""GET /healthz served by uvicorn: 200 while the PostgreSQL store answers, 503 when the
server it names is not there (a port nobody listens on), never a 500."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.store import db, health
from tests.store_support import migrated

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def closed_url() -> str:
    """A PostgreSQL URL whose port was free a moment ago: connecting is refused."""
    return f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/test?connect_timeout=5"


def _serve(store_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = ApiSettings(store_url=store_url, api_keys_file=tmp_path / "no-keys.yaml")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)


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
