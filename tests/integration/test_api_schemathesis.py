"""schemathesis against the OpenAPI document, on a real uvicorn server: no request gets a 5xx.

Issue #9 item 4. Every operation of the document (dead letters, messages, health, the
webhook) is called with generated parameters, headers and bodies, as an operator, as a
partner and with no key; the server is the one `edigw run` starts (gateway.api.serve).
The example count is kept small for CI time (EDIGW_SCHEMATHESIS_EXAMPLES raises it).
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from channels import signing
from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.api.serve import HttpServer
from tests import deadletter_support as seed
from tests.conftest import REPO
from tests.store_support import migrated

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("EDIGW_SCHEMATHESIS_EXAMPLES", "25"))
KEYS = {"operator": keys.new_key(), "partner": keys.new_key()}


@schemathesis.serializer("text/csv", "application/edi-x12")
def _text(ctx: object, value: object) -> bytes:
    # The webhook's CSV and X12 bodies are strings in the document; sent as UTF-8 bytes.
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(
        str(value), "utf-8")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{root / 'store.db'}"
    engine = migrated(url)
    seed.seed_many(engine, 3)
    engine.dispose()
    key_file = root / "api-keys.yaml"
    key_file.write_text("keys:\n" + "\n".join([
        keys.entry_line(keys.KeyEntry("ops", keys.hash_key(KEYS["operator"]), "operator")),
        keys.entry_line(keys.KeyEntry("acme", keys.hash_key(KEYS["partner"]), "partner",
                                      "acme"))]) + "\n")
    os.environ.setdefault("BRIGHTLINE_WEBHOOK_SECRET",
                          "whsec_" + base64.b64encode(b"s" * 32).decode())
    http = HttpServer(create_app(ApiSettings(store_url=url, api_keys_file=key_file,
                                             partners_dir=REPO / "conf" / "partners",
                                             mappings_root=REPO / "mappings")), "127.0.0.1", 0)
    http.start()
    try:
        yield http.url
    finally:
        http.stop()


# The document as the app generates it (no server needed to collect the tests); the
# calls go to the real server.
SCHEMA = schemathesis.openapi.from_dict(create_app(ApiSettings(store_url="sqlite://")).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
WEBHOOK = "POST /v1/partners/{partner}/messages"


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_5xx(server: str, operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        for who in ("operator", "partner", "anonymous"):
            headers = {"Authorization": f"Bearer {KEYS[who]}"} if who in KEYS else {}
            case.call_and_validate(base_url=server, headers=headers,
                                   checks=[not_a_server_error], timeout=30)
        if operation.label == WEBHOOK:
            _webhook_variants(case, server)

    call()


def _webhook_variants(case: schemathesis.Case, server: str) -> None:
    """A generated partner id is almost never a configured one: the same case again for
    brightline, as generated (its headers are not a signature) and signed with its secret,
    so that the checks past the signature and the store see generated bodies too."""
    case.path_parameters["partner"] = "brightline"
    case.call_and_validate(base_url=server, checks=[not_a_server_error], timeout=30)
    sent = case.as_transport_kwargs(base_url=server)
    body = (json.dumps(sent["json"]).encode() if "json" in sent
            else sent.get("data") or b"")
    headers = {"content-type": sent["headers"].get("Content-Type", "application/json")}
    if _utf8(body):
        secret = signing.Secret.parse(os.environ["BRIGHTLINE_WEBHOOK_SECRET"])
        headers.update(signing.headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()),
                                       body))
    answer = httpx.post(sent["url"], content=body, headers=headers, timeout=30)
    assert answer.status_code < 500, (answer.status_code, answer.text, body[:200])


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False  # signing needs text; sent unsigned, it must still be a 4xx
    return True


def test_every_operation_is_covered() -> None:
    labels = {op.label for op in OPERATIONS}
    assert {WEBHOOK, "GET /v1/messages/{message_id}",
            "GET /healthz", "GET /v1/dead-letters"} <= labels
