"""`edigw run` serves the webhooks (issue #9 items 1 and 2) on a real loopback port, beside its workers.

Each test starts the CLI as a user does (`edigw run --listen 127.0.0.1:0`, a subprocess of
its own) in a site folder, reads the port from its log, and talks HTTP to it.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from channels import signing
from gateway.api import keys
from gateway.store import db
from gateway.store.models import Message, MessageStatus, WebhookId, WorkItem
from tests.conftest import REPO
from tests.pipeline_support import Site

pytestmark = pytest.mark.integration

KEY = b"brightline-serve-key-0123456789a"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
INVOICE = (REPO / "mappings/partners/brightline/examples/invoice-BL-20417.json").read_bytes()
PATH = "/v1/partners/brightline/messages"
STARTUP = 90.0  # a spawned worker and the app's imports on a busy 2-core machine


def signed(body: bytes, msg_id: str, content_type: str = "application/json") -> dict[str, str]:
    return {**signing.headers(signing.Secret(KEY), msg_id, int(time.time()), body),
            "content-type": content_type}


class Running:
    """`edigw run` in a site's folder, its HTTP address read from its log."""

    def __init__(self, site: Site, *args: str, env: dict[str, str] | None = None,
                 log: str = "run.log") -> None:
        self.site = site
        self.log = site.root / log
        self.operator = keys.new_key()
        key_file = site.root / "api-keys.yaml"
        key_file.write_text("keys:\n" + keys.entry_line(
            keys.KeyEntry("ops", keys.hash_key(self.operator), "operator")) + "\n")
        self.env = {**os.environ, "BRIGHTLINE_WEBHOOK_SECRET": SECRET,
                    "EDIGW_API_KEYS": str(key_file), **(env or {})}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(site.config),
                 *args], cwd=site.root, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.url = ""

    def wait_ready(self) -> str:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            found = re.search(r"HTTP on (http://\S+)", self.text())
            if found:
                self.url = found.group(1)
                return self.url
            if self.proc.poll() is not None:
                pytest.fail(f"edigw run exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.1)
        pytest.fail(f"edigw run did not serve within {STARTUP} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(params=["sqlite", "postgresql"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    url = None if request.param == "sqlite" else request.getfixturevalue("pg_url")
    site = Site(tmp_path, store_url=url, workers={"idle_sleep": 0.1})
    running = Running(site, "--listen", "127.0.0.1:0")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _message(site: Site, message_id: int) -> tuple[Message, list[WorkItem]]:
    engine = db.make_engine(site.store_url)
    try:
        with db.transaction(engine, write=False) as s:
            m = s.get(Message, message_id)
            assert m is not None
            return m, list(s.scalars(select(WorkItem).where(WorkItem.message_id == message_id)))
    finally:
        engine.dispose()


def _count(site: Site, model: type) -> int:
    engine = db.make_engine(site.store_url)
    try:
        with db.transaction(engine, write=False) as s:
            return len(s.scalars(select(model)).all())
    finally:
        engine.dispose()


def _settled(site: Site, message_id: int, timeout: float = 60.0) -> Message:
    deadline = time.monotonic() + timeout
    while True:
        m, _ = _message(site, message_id)
        if m.status in (MessageStatus.DONE, MessageStatus.DEAD, MessageStatus.QUARANTINED) or (
                time.monotonic() > deadline):
            return m
        time.sleep(0.2)


def test_healthz_answers_and_a_signed_invoice_is_stored_and_validated(gateway: Running) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    r = httpx.post(gateway.url + PATH, content=INVOICE, headers=signed(INVOICE, "msg_a1"))
    assert r.status_code == 202, r.text
    message_id = r.json()["message_id"]
    m, items = _message(gateway.site, message_id)
    assert (m.partner, m.channel) == ("brightline", "webhook:/v1/partners/brightline/messages")
    assert [i.kind for i in items][:1] == ["validate"]
    assert _settled(gateway.site, message_id).stage != "received"  # a worker took it
    shown = httpx.get(gateway.url + r.json()["status_url"],
                      headers={"X-API-Key": gateway.operator})
    assert shown.status_code == 200
    assert shown.json()["message"]["id"] == message_id


def test_concurrent_requests_with_one_webhook_id_make_one_message(gateway: Running) -> None:
    def post(n: int) -> httpx.Response:
        # The same id for every request, as a sender retrying on a timeout would.
        return httpx.post(gateway.url + PATH, content=INVOICE, headers=signed(INVOICE, "dup"),
                          timeout=60)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(8)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["message_id"] for a in answers}) == 1
    assert (_count(gateway.site, Message), _count(gateway.site, WebhookId)) == (1, 1)


def test_a_streamed_body_past_the_limit_is_cut_off_with_413(gateway: Running) -> None:
    # conf/partners/brightline.yaml: max_bytes 1,000,000; no Content-Length, so the server
    # counts what arrives and answers once past it.
    def chunks() -> Iterator[bytes]:
        for _ in range(80):
            yield b" " * 65536

    try:
        r = httpx.post(gateway.url + PATH, content=chunks(), headers=signed(b"", "big"),
                       timeout=30)
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
    except httpx.HTTPError:
        pass  # the server may close the connection while the client is still sending
    assert "POST /v1/partners/brightline/messages HTTP/1.1\" 413" in gateway.text()
    assert _count(gateway.site, Message) == 0


def test_sigterm_stops_the_server_and_the_workers(tmp_path: Path) -> None:
    running = Running(Site(tmp_path), "--listen", "127.0.0.1:0")
    url = running.wait_ready()
    assert running.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=2)
    assert "Finished server process" in running.text()


# `edigw run` in process, sent SIGTERM the moment its HTTP server is up (before its loop).
_TERM_AT_ONCE = """
import contextlib, os, signal, sys
from gateway.api import serve
from gateway.pipeline import runner
real = serve.serving
@contextlib.contextmanager
def serving(*args, **kwargs):
    with real(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        yield
serve.serving = serving
runner.run(sys.argv[1], listen="127.0.0.1:0")
print("stopped in order")
"""


def test_sigterm_as_soon_as_http_is_up_still_stops_in_order(tmp_path: Path) -> None:
    # The handler must be in place before "HTTP on" is logged: a supervisor that stops the
    # gateway as soon as it answers must not meet the default action (killed, -15).
    site = Site(tmp_path)
    done = subprocess.run([sys.executable, "-c", _TERM_AT_ONCE, str(site.config)],
                          cwd=site.root, capture_output=True, text=True, timeout=STARTUP,
                          env={**os.environ, "BRIGHTLINE_WEBHOOK_SECRET": SECRET})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopped in order" in done.stdout


def test_a_port_in_use_is_an_error_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        running = Running(Site(tmp_path), "--listen", f"127.0.0.1:{port}")
        assert running.proc.wait(timeout=STARTUP) == 2
    said = running.text()
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in said
    assert "Traceback" not in said


def test_http_listen_in_the_configuration_is_used(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port, to name in the file
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    site = Site(tmp_path, http={"listen": f"127.0.0.1:{port}"})
    running = Running(site)
    try:
        assert running.wait_ready() == f"http://127.0.0.1:{port}"
    finally:
        running.stop()


def test_the_guides_curl_and_python_examples_are_accepted(gateway: Running) -> None:
    page = (REPO / "docs" / "channels" / "webhook.md").read_text("utf-8")
    shell = re.search(r"```sh\n(.*?)```", page, re.S)
    python = re.search(r"```python\n(.*?)```", page, re.S)
    assert shell and python
    env = {**gateway.env, "GATEWAY": gateway.url}
    out = subprocess.run(["bash", "-euc", shell.group(1)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status_url"].startswith("/v1/messages/")
    out = subprocess.run([sys.executable, "-c", python.group(1)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("202 {'message_id': ")


@pytest.mark.parametrize("point", ["after_download_before_commit", "after_commit_before_answer"])
def test_a_crash_before_or_after_the_commit_is_one_message_once_the_sender_retries(
        tmp_path: Path, point: str) -> None:
    site = Site(tmp_path)
    crashing = Running(site, "--listen", "127.0.0.1:0", env={"EDIGW_CRASH": point},
                       log="crash.log")
    crashing.wait_ready()
    headers = signed(INVOICE, "msg_crash")
    with pytest.raises(httpx.HTTPError):  # killed before it answered
        httpx.post(crashing.url + PATH, content=INVOICE, headers=headers, timeout=30)
    assert crashing.proc.wait(timeout=30) == -signal.SIGKILL
    stored = _count(site, Message)
    assert stored == (1 if point == "after_commit_before_answer" else 0)
    again = Running(site, "--listen", "127.0.0.1:0", log="again.log")
    try:
        again.wait_ready()
        r = httpx.post(again.url + PATH, content=INVOICE, headers=headers, timeout=30)
        assert r.status_code == 202, r.text
        assert (r.headers.get("idempotent-replayed") == "true") == bool(stored)
    finally:
        again.stop()
    assert (_count(site, Message), _count(site, WebhookId)) == (1, 1)


def test_the_brightline_invoice_reaches_the_erp_once(tmp_path: Path) -> None:
    site = Site(tmp_path)
    running = Running(site, "--listen", "127.0.0.1:0")
    try:
        running.wait_ready()
        first = httpx.post(running.url + PATH, content=INVOICE,
                           headers=signed(INVOICE, "msg_bl_20417"))
        again = httpx.post(running.url + PATH, content=INVOICE,
                           headers=signed(INVOICE, "msg_bl_20417"))
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json()
        m = _settled(site, first.json()["message_id"], timeout=120)
        assert m.status == MessageStatus.DONE, [d.reason for d in site.dead_letters()]
        deadline = time.monotonic() + 60
        while not site.events() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        running.stop()
    [event] = site.events()
    expected = json.loads((REPO / "mappings/partners/brightline/examples/"
                           "invoice-BL-20417.expected.json").read_text("utf-8"))
    assert event["type"].endswith("invoice.v1")
    assert event["data"] == expected  # the mapping's own example, as `edigw mapping test` has it
