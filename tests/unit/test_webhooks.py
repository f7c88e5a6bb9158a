"""Partners' signed webhooks (issue #9 item 2): what is taken, what is refused, and what is stored.

The clock is the app's (app.state.clock), fixed here; the secrets are in the environment
as the partner file names them. Every refusal is checked to have stored nothing.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from canonical import errors
from channels import registry, signing, webhook
from gateway.api import keys
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.store import db
from gateway.store.models import Audit, Message, Payload, WebhookId, WorkItem
from tests.conftest import REPO
from tests.store_support import migrated

pytestmark = pytest.mark.unit

NOW = 1_764_400_000  # 2025-11-29, the app's clock in these tests
KEY = b"brightline-test-key-0123456789ab"
NEW_KEY = b"brightline-next-key-0123456789ab"
CANARY = base64.b64encode(KEY).decode()
INVOICE = (REPO / "mappings/partners/brightline/examples/invoice-BL-20417.json").read_bytes()
PATH = "/v1/partners/brightline/messages"


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def signed(body: bytes, *, key: bytes = KEY, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
           ts: int = NOW, content_type: str = "application/json") -> dict[str, str]:
    return {**signing.headers(signing.Secret(key), msg_id, ts, body),
            "content-type": content_type}


@dataclass
class Rig:
    client: TestClient
    engine: Any
    partners: Path
    operator: dict[str, str]

    def count(self, model: type) -> int:
        with db.transaction(self.engine, write=False) as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)

    def stored_nothing(self) -> bool:
        return self.count(Message) == self.count(Payload) == self.count(WebhookId) == 0


def partner_file(folder: Path, webhook_options: Any, pid: str = "brightline") -> None:
    doc = {"id": pid, "name": "Brightline", "channels": {"webhook": webhook_options},
           "mappings": {"invoice": "partners/brightline/invoice.yaml"}}
    (folder / f"{pid}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("BRIGHTLINE_WEBHOOK_SECRET", whsec(KEY))
    partners = tmp_path / "partners"
    partners.mkdir()
    partner_file(partners, {"secret": {"env": "BRIGHTLINE_WEBHOOK_SECRET"}, "max_bytes": 4096})
    (partners / "acme.yaml").write_text("id: acme\nname: Acme Retail\n")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = migrated(url)
    op = keys.new_key()
    key_file = tmp_path / "api-keys.yaml"
    key_file.write_text("keys:\n" + keys.entry_line(
        keys.KeyEntry("ops", keys.hash_key(op), "operator")) + "\n")
    app = create_app(ApiSettings(store_url=url, api_keys_file=key_file, partners_dir=partners,
                                 mappings_root=REPO / "mappings"))
    app.state.clock = lambda: float(NOW)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield Rig(c, engine, partners, {"Authorization": f"Bearer {op}"})
    engine.dispose()


def test_a_signed_invoice_is_stored_once_with_its_validation_enqueued(rig: Rig) -> None:
    r = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body == {"message_id": body["message_id"],
                    "status_url": f"/v1/messages/{body['message_id']}"}
    with db.transaction(rig.engine, write=False) as s:
        m = s.get(Message, body["message_id"])
        assert (m.partner, m.channel, m.source_name) == (
            "brightline", "webhook:/v1/partners/brightline/messages",
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.json")
        [item] = s.scalars(select(WorkItem)).all()
        assert (item.kind, item.message_id) == ("validate", m.id)
    shown = rig.client.get(body["status_url"], headers=rig.operator)
    assert shown.status_code == 200
    assert shown.json()["message"]["partner"] == "brightline"


def test_the_same_webhook_id_again_answers_the_first_message_and_stores_nothing(
        rig: Rig) -> None:
    first = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE))
    other = INVOICE.replace(b"BL-20417", b"BL-20418")
    for body in (INVOICE, other):  # a retry, and a sender reusing the id for other bytes
        again = rig.client.post(PATH, content=body, headers=signed(body, ts=NOW + 60))
        assert again.status_code == 202
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
    # The other bytes were stored optimistically, then rolled back with their transaction.
    assert (rig.count(Message), rig.count(WorkItem), rig.count(WebhookId)) == (1, 1, 1)
    assert rig.count(Payload) == 1


def test_the_same_bytes_under_a_new_webhook_id_are_the_same_message(rig: Rig) -> None:
    first = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE, msg_id="a"))
    second = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE, msg_id="b"))
    assert second.json()["message_id"] == first.json()["message_id"]
    assert (rig.count(Message), rig.count(WorkItem), rig.count(WebhookId)) == (1, 1, 2)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@pytest.mark.parametrize("case", [
    "flipped body byte", "wrong secret", "301 s old", "301 s ahead", "no webhook-id",
    "no webhook-timestamp", "no webhook-signature", "bad base64", "not v1", "no comma",
    "timestamp not a number", "signature of another id", "empty signature"])
def test_a_bad_missing_or_stale_signature_is_401_and_stores_nothing(
        rig: Rig, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body, headers = INVOICE, signed(INVOICE)
    if case == "flipped body byte":
        body = _flip(INVOICE, len(INVOICE) // 2)
    elif case == "wrong secret":
        headers = signed(INVOICE, key=NEW_KEY)
    elif case == "301 s old":
        headers = signed(INVOICE, ts=NOW - 301)
    elif case == "301 s ahead":
        headers = signed(INVOICE, ts=NOW + 301)
    elif case.startswith("no webhook-"):
        del headers[case[3:]]
    elif case == "bad base64":
        headers["webhook-signature"] = "v1,@@not*base64=="
    elif case == "not v1":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    elif case == "no comma":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v1")
    elif case == "timestamp not a number":
        headers["webhook-timestamp"] = "1764400000.5"
    elif case == "signature of another id":
        headers["webhook-id"] = "msg_other"
    elif case == "empty signature":
        headers["webhook-signature"] = ""
    r = rig.client.post(PATH, content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Standard-Webhooks")
    assert rig.stored_nothing()
    with db.transaction(rig.engine, write=False) as s:
        [row] = s.scalars(select(Audit)).all()
    assert (row.action, row.target) == ("webhook.auth_failed", "partner:brightline")
    assert row.reason == r.json()["detail"]
    assert CANARY not in caplog.text and CANARY not in r.text


def test_a_timestamp_at_the_edge_of_the_tolerance_is_taken(rig: Rig) -> None:
    for n, ts in enumerate((NOW - 300, NOW + 300)):
        body = INVOICE + b" " * n
        r = rig.client.post(PATH, content=body, headers=signed(body, ts=ts, msg_id=f"m{n}"))
        assert r.status_code == 202, r.text


def test_a_rotated_secret_takes_messages_signed_with_either_key(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIGHTLINE_WEBHOOK_SECRET_NEW", whsec(NEW_KEY))
    partner_file(rig.partners, {"secrets": [{"env": "BRIGHTLINE_WEBHOOK_SECRET"},
                                            {"env": "BRIGHTLINE_WEBHOOK_SECRET_NEW"}]})
    rig.client.app.state.webhooks._partners = None  # as after a restart  # type: ignore[attr-defined]
    rig.client.app.state.webhooks._channels.clear()  # type: ignore[attr-defined]
    old = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE, msg_id="old"))
    body = INVOICE + b"\n"
    new = rig.client.post(PATH, content=body, headers=signed(body, key=NEW_KEY, msg_id="new"))
    # A sender rotating lists both signatures, space-separated; either one matching is enough.
    both = INVOICE + b"\n\n"
    headers = signed(both, key=NEW_KEY, msg_id="both")
    stranger = signed(both, key=b"x" * 32, msg_id="both")["webhook-signature"]
    headers["webhook-signature"] = f"{stranger} {headers['webhook-signature']}"
    two = rig.client.post(PATH, content=both, headers=headers)
    assert [old.status_code, new.status_code, two.status_code] == [202, 202, 202]
    assert rig.count(Message) == 3
    gone = INVOICE + b"\n\n\n"
    assert rig.client.post(PATH, content=gone, headers=signed(gone, key=b"y" * 32)
                           ).status_code == 401


def test_x12_and_csv_bodies_are_taken_under_their_content_types(rig: Rig) -> None:
    x12 = (REPO / "samples" / "x12" / "acme-850-4010.edi").read_bytes()
    csv = b"invoice_number,sku,quantity\nBL-1,KX-1,3\n"
    for n, (data, ctype, ext) in enumerate([(x12, "application/edi-x12", "edi"),
                                            (csv, "text/csv; charset=utf-8", "csv")]):
        r = rig.client.post(PATH, content=data, headers=signed(data, content_type=ctype,
                                                               msg_id=f"m/../{n}"))
        assert r.status_code == 202, r.text
        with db.transaction(rig.engine, write=False) as s:
            assert s.get(Message, r.json()["message_id"]).source_name == f"m_.._{n}.{ext}"


@pytest.mark.parametrize(("ctype", "body", "status", "says"), [
    ("text/plain", INVOICE, 415, "Content-Type 'text/plain'"),
    (None, INVOICE, 415, "Content-Type '(none)'"),
    ("text/csv; charset=latin-1", b"a,b\n", 415, "only UTF-8"),
    ("application/json", b'{"data": ', 400, "not JSON: Expecting value: line 1 column 10"),
    ("application/json", b"\xff\xfe{}", 401, "not UTF-8"),
])
def test_bodies_not_taken_say_why_and_store_nothing(rig: Rig, ctype: str | None, body: bytes,
                                                    status: int, says: str) -> None:
    headers = {**signing.headers(signing.Secret(KEY), "m1", NOW, b""), "webhook-signature":
               signing.sign(signing.Secret(KEY), "m1", NOW, body) if status != 401 else "v1,AA=="}
    if ctype:
        headers["content-type"] = ctype
    r = rig.client.post(PATH, content=body, headers=headers)
    assert (r.status_code, r.headers["content-type"]) == (status, "application/problem+json")
    assert says in r.json()["detail"]
    assert rig.stored_nothing()


def test_a_body_over_the_partners_limit_is_413_before_it_is_read(rig: Rig) -> None:
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    r = rig.client.post(PATH, content=big, headers=signed(big))
    assert r.status_code == 413
    assert "larger than 4096 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b"x" * 1000

    r = rig.client.post(PATH, content=chunks(), headers=signed(b"x" * 10_000))
    assert r.status_code == 413
    assert rig.stored_nothing()


def test_a_partner_without_a_webhook_and_an_unknown_one_are_both_404(rig: Rig) -> None:
    for who in ("acme", "nobody"):
        r = rig.client.post(f"/v1/partners/{who}/messages", content=INVOICE,
                            headers=signed(INVOICE))
        assert r.status_code == 404
        assert r.json()["detail"] == f"no webhook for partner {who!r}"
    assert rig.client.post("/v1/partners/../messages", content=b"{}").status_code == 404
    assert rig.client.post("/v1/partners/Bad_Id/messages", content=b"{}").status_code == 422


def test_an_unset_secret_is_503_naming_the_variable_never_a_value(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRIGHTLINE_WEBHOOK_SECRET")
    r = rig.client.post(PATH, content=INVOICE, headers=signed(INVOICE))
    assert r.status_code == 503
    assert rig.stored_nothing()


@pytest.mark.parametrize(("value", "says"), [
    ("plain-text-secret", "is written whsec_"),
    ("whsec_***", "must be base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "the key is 5 bytes"),
])
def test_a_malformed_secret_is_a_config_error_naming_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str, says: str) -> None:
    monkeypatch.setenv("HOOK_SECRET", value)
    hook = registry.build_input("webhook", {"secret": {"env": "HOOK_SECRET"}}, partner="x")
    with pytest.raises(errors.ConfigError, match=says) as caught:
        hook.connect()
    assert "HOOK_SECRET" in str(caught.value)
    assert value not in str(caught.value)


@pytest.mark.parametrize(("options", "says"), [
    ({}, "exactly one of secret and secrets"),
    ({"secret": {"env": "A"}, "secrets": [{"env": "B"}]}, "exactly one of secret and secrets"),
    ({"secrets": []}, "secrets"),
    ({"secret": {"env": "A"}, "max_bytes": 0}, "max_bytes"),
    ({"secret": {"env": "A"}, "tolerance": 600}, "tolerance"),
    ({"secret": "whsec_abc"}, "secret"),
])
def test_webhook_settings_are_checked_by_name(options: dict[str, Any], says: str) -> None:
    with pytest.raises(errors.ConfigError, match=says):
        registry.build_input("webhook", options, partner="brightline")


# F1: whatever arrives, take() answers with a message or one of its documented refusals.

_header = st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
    ["v1,", "v1,==", "v1,AAAA", ",", " ", "v1,a v1,b", "1764400000", "-1", "9" * 20]))


@settings(max_examples=300, deadline=None)
@given(msg_id=_header, ts=_header, sig=_header, body=st.binary(max_size=64),
       ctype=st.sampled_from([None, "application/json", "text/csv", "application/edi-x12",
                              "text/csv; charset=", "x/y; charset=utf-8"]))
def test_take_only_ever_refuses_with_its_documented_errors(
        msg_id: str | None, ts: str | None, sig: str | None, body: bytes,
        ctype: str | None) -> None:
    hook = webhook.WebhookInput(webhook.WebhookInputConfig(secret={"env": "UNUSED"}),
                                partner="p")
    hook._secrets = [signing.Secret(KEY)]
    headers = {k: v for k, v in {"webhook-id": msg_id, "webhook-timestamp": ts,
                                 "webhook-signature": sig, "content-type": ctype}.items()
               if v is not None}
    try:
        hook.take(headers, body, now=NOW)
    except webhook.WebhookRefused as exc:
        assert exc.status in (400, 401, 415)


def test_take_accepts_what_the_reference_package_signs() -> None:
    import standardwebhooks

    hook = webhook.WebhookInput(webhook.WebhookInputConfig(secret={"env": "UNUSED"}),
                                partner="p")
    hook._secrets = [signing.Secret(KEY)]
    from datetime import UTC, datetime
    sig = standardwebhooks.Webhook(whsec(KEY)).sign("m1", datetime.fromtimestamp(NOW, UTC),
                                                    '{"a": 1}')
    got = hook.take({"webhook-id": "m1", "webhook-timestamp": str(NOW), "webhook-signature": sig,
                     "content-type": "application/json"}, b'{"a": 1}', now=NOW)
    assert json.loads(got.data) == {"a": 1}
    assert got.endpoint == "webhook:/v1/partners/p/messages"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_an_over_long_webhook_header_is_422_naming_it_and_stores_nothing(
        rig: Rig, header: str) -> None:
    # The route reads its parameters itself (cheaper than FastAPI's solving); the limits
    # the OpenAPI document states must hold all the same, as FastAPI's own 422.
    headers = {**signed(INVOICE), header: "v1," + "A" * 1000}
    r = rig.client.post(PATH, content=INVOICE, headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["loc"] == ["header", header]
    assert rig.stored_nothing()


@pytest.mark.parametrize("partner", ["Bad_Id", "a" * 41, "9lives", "abc%0A"])
def test_a_partner_id_off_the_pattern_is_422_on_the_path(rig: Rig, partner: str) -> None:
    r = rig.client.post(f"/v1/partners/{partner}/messages", content=INVOICE,
                        headers=signed(INVOICE))
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["path", "partner"]
    assert rig.stored_nothing()


def test_the_openapi_document_states_the_routes_parameters(rig: Rig) -> None:
    op = rig.client.get("/openapi.json").json()["paths"][
        "/v1/partners/{partner}/messages"]["post"]
    params = {(p["in"], p["name"]): p for p in op["parameters"]}
    assert set(params) == {("path", "partner"), ("header", "webhook-id"),
                           ("header", "webhook-timestamp"), ("header", "webhook-signature")}
    assert params[("path", "partner")]["required"] is True
    assert params[("path", "partner")]["schema"]["pattern"] == "^[a-z][a-z0-9-]{0,39}$"
    assert all(params[("header", h)]["schema"]["maxLength"] == 1000
               for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
