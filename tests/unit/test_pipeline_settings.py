"""conf/gateway.yaml: the shipped file, the embedded default, errors with file:line:key; routes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from gateway import settings
from gateway.pipeline import crash, routing
from tests.conftest import REPO

pytestmark = pytest.mark.unit


def _load(tmp_path: Path, text: str) -> settings.Settings:
    f = tmp_path / "gateway.yaml"
    f.write_text(text, encoding="utf-8")
    return settings.load(f)


def test_the_shipped_file_and_the_embedded_default_agree() -> None:
    shipped = settings.load(REPO / "conf" / "gateway.yaml")
    default = settings.parse({}, {}, None)
    assert shipped.store_url == default.store_url == "sqlite:///var/edigw.db"
    assert shipped.destinations["erp"].config == {"path": "var/erp/events.jsonl"}
    assert default.destinations["erp"].type == "file"
    assert shipped.routes[0].to == default.routes[0].to == ("erp",)
    assert shipped.workers == default.workers
    assert (shipped.workers.lease_seconds, shipped.workers.heartbeat_seconds,
            shipped.workers.max_claims) == (30, 10, 3)
    assert (shipped.http_listen, shipped.http_enabled) == (default.http_listen, True)
    assert default.http_listen == "127.0.0.1:8080"


@pytest.mark.parametrize(("text", "expected"), [
    ("store:\n  ulr: x\n", ":2: store.ulr: unknown key 'ulr'"),
    ("destinations:\n  erp:\n    type: ftp\n", ":3: destinations.erp.type: unknown output kind 'ftp'"),
    ("destinations:\n  erp:\n    type: http\n    config:\n      url: 5\n",
     ":4: destinations.erp.config: destination erp: invalid settings: url"),
    ("destinations:\n  erp:\n    type: file\n    config: {path: x}\n    retry:\n"
     "      maximum_redeliveries: -1\n      max_age: null\n",
     ":5: destinations.erp.retry: invalid retry policy"),
    ("routes:\n  - to: [erp]\n  - to:\n      - nowhere\n",
     ":4: routes[1].to[0]: no destination 'nowhere' (known: erp)"),
    ("workers:\n  lease_seconds: 0\n", ":2: workers.lease_seconds: 0 is less than or equal"),
    ("http:\n  listen: 8080\n", ":2: http.listen: 8080 is not of type 'string'"),
    ("http:\n  listen: '::1:8080'\n", ":2: http.listen: '::1:8080' does not match"),
    ("\nhttp:\n  listen: localhost:99999\n",
     ":3: http.listen: listen address 'localhost:99999': expected HOST:PORT"),
    ("http:\n  port: 80\n", ":2: http.port: unknown key 'port'"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(settings.SettingsError) as info:
        _load(tmp_path, text)
    assert str(info.value).startswith(str(tmp_path / "gateway.yaml") + expected.split(":")[0])
    assert expected in str(info.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)),
    ("gateway.internal:443", ("gateway.internal", 443))])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert settings.parse_listen(text) == expected


def test_routes_by_type_partner_and_condition(tmp_path: Path) -> None:
    s = _load(tmp_path, """
destinations:
  erp: {type: file, config: {path: e.jsonl}}
  wms: {type: file, config: {path: w.jsonl}}
  audit: {type: file, config: {path: a.jsonl}}
routes:
  - match: {type: "*"}
    to: [erp]
  - match: {type: ship_notice, partner: "glob*"}
    to: [wms, erp]
  - match: {when: {field: data.currency, in: [EUR, GBP]}}
    to: [audit]
""")
    asn = {"type": "com.edi-gateway.ship_notice.v1", "partner": "globex", "data": {}}
    po = {"type": "com.edi-gateway.purchase_order.v1", "partner": "acme",
          "data": {"currency": "EUR"}}
    assert routing.destinations(s.routes, asn) == ["erp", "wms"]
    assert routing.destinations(s.routes, po) == ["erp", "audit"]
    assert routing.destinations(s.routes, {**asn, "partner": "acme"}) == ["erp"]


def test_conditions() -> None:
    ev = {"data": {"lines": [{"sku": "A"}], "currency": "USD"}}
    c = settings.Condition
    assert routing.holds(c("data.lines.0.sku", "equals", "A"), ev)
    assert routing.holds(c("data.missing", "exists", False), ev)
    assert routing.holds(c("data.missing", "not_equals", "USD"), ev)
    assert not routing.holds(c("data.currency", "not_equals", "USD"), ev)


def test_crash_points_are_named_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    crash._armed.cache_clear()
    monkeypatch.setenv("EDIGW_CRASH", "after_claim:3, during_ack_write")
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(crash.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    monkeypatch.setattr(crash, "_passes", crash.collections.Counter())
    try:
        assert crash._armed() == {"after_claim": 3, "during_ack_write": 1}
        crash.point("after_commit_before_archive")  # not armed: never fires
        crash.point("after_claim")
        crash.point("after_claim")
        assert killed == []
        crash.point("after_claim")  # the third pass
        assert killed == [(os.getpid(), signal.SIGKILL)]
        crash.point("after_claim")  # a process that lived on (here) dies once only
        crash.point("during_ack_write")
        assert len(killed) == 2
        for bad, match in (("after_lunch", "unknown crash point 'after_lunch'"),
                           ("after_claim:0", "whole number from 1"),
                           ("after_claim:0.5", "whole number from 1"),
                           ("after_claim:\u00b2", "whole number from 1")):
            crash._armed.cache_clear()
            monkeypatch.setenv("EDIGW_CRASH", bad)
            with pytest.raises(ValueError, match=match):
                crash._armed()
    finally:
        crash._armed.cache_clear()
