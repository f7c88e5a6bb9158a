"""The http output against the ERP simulator over real HTTP on 127.0.0.1: R5, R6, R7 in small."""

from __future__ import annotations

import base64
import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from canonical import envelope, errors
from channels import registry
from channels.erp_http import HttpOutput
from channels.erp_sim import SimulatorHandle, running_simulator
from retry.policy import Retry, RetryPolicy, decide

pytestmark = pytest.mark.integration

WHEN = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)
PO = {"po_number": "PO1", "lines": [{"line_number": "1", "quantity": {"value": "1", "unit": "EA"}}]}
RAW_KEY = b"canary-key-9f2c1d7e-never-logged"
SECRET = "whsec_" + base64.b64encode(RAW_KEY).decode()


def event(n: int = 1) -> envelope.Event:
    keys = {"isa13": "000000101", "gs06": "101", "st02": f"{n:04d}"}
    return envelope.make_event("purchase_order", PO, partner="acme", keys=keys, time=WHEN)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator() as handle:
        yield handle


@pytest.fixture
def erp(sim: SimulatorHandle) -> Iterator[SimulatorHandle]:
    sim.state.reset()
    yield sim
    sim.state.reset()  # also lets go of any request still held by a hang


def output(url: str, **options: object) -> HttpOutput:
    out = registry.build_output("http", {"url": url, **options})
    assert isinstance(out, HttpOutput)
    return out


def test_r5_503_with_retry_after_then_recovery(erp: SimulatorHandle) -> None:
    erp.set_fault("503", retry_after=7, count=3)
    out = output(erp.events_url)
    policy = RetryPolicy(redelivery_delay=1, jitter=0.5)
    now = datetime.now(UTC)
    failures = []
    for attempt in range(1, 10):
        try:
            receipt = out.write(event())
            break
        except errors.TransientError as exc:
            failures.append(exc)
            decision = decide(policy, attempt, exc, now, now)
            assert isinstance(decision, Retry) and decision.delay >= 7  # Retry-After honoured
    out.close()
    assert [(type(f), f.status, f.retry_after) for f in failures] == \
        [(errors.DeliveryUnavailable, 503, 7.0)] * 3  # type: ignore[attr-defined]
    assert (receipt.status, receipt.duplicate) == (201, False)
    stats = erp.stats()
    assert (stats["requests"], stats["effects"]) == (4, 1)


def test_r6_hang_times_out_within_the_read_timeout(erp: SimulatorHandle) -> None:
    erp.set_fault("hang", count=1, delay=30)
    out = output(erp.events_url, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(errors.DeliveryTimeout, match="ReadTimeout") as caught:
        out.write(event())
    elapsed = time.monotonic() - started
    # Gave up after its read timeout, long before the 30 s hang would have answered (the
    # bound is about the hang, not about how fast this machine is).
    assert 0.5 <= elapsed < 15
    assert isinstance(caught.value, errors.TransientError)
    assert out.write(event()).status == 201  # the hang held one request only
    out.close()
    assert erp.stats()["effects"] == 1


def test_slow_erp_applies_after_the_timeout_and_the_retry_is_not_a_second_effect(
        erp: SimulatorHandle) -> None:
    erp.set_fault("slow", count=1, delay=2.0)
    out = output(erp.events_url, read_timeout=0.3)
    with pytest.raises(errors.DeliveryTimeout):
        out.write(event())  # the ERP goes on and applies it
    with pytest.raises(errors.DeliveryUnavailable) as in_flight:
        out.write(event())
    assert (in_flight.value.status, in_flight.value.retry_after) == (409, 1.0)
    deadline = time.monotonic() + 5
    while erp.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    receipt = out.write(event())
    out.close()
    assert (receipt.status, receipt.duplicate) == (200, True)
    stats = erp.stats()
    assert (stats["requests"], stats["effects"], stats["replays"]) == (3, 1, 1)


def test_concurrent_requests_for_one_key_see_409(erp: SimulatorHandle) -> None:
    # The first request is held 3 s: the second must reach the simulator before the first
    # is answered, and a busy machine may take a while to send it (seen to pass at 1 s).
    erp.set_fault("slow", count=1, delay=3.0)
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(output(erp.events_url).write(event())))
    first.start()
    deadline = time.monotonic() + 5
    while not erp.stats()["in_flight"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(errors.DeliveryUnavailable, match="409"):
        output(erp.events_url).write(event())
    first.join()
    assert len(results) == 1 and erp.stats()["effects"] == 1


def test_r7_400_is_permanent_with_status_and_body(erp: SimulatorHandle) -> None:
    erp.set_fault("400", keys=[event(2).id])  # only this event is refused
    out = output(erp.events_url)
    assert out.write(event(1)).status == 201
    with pytest.raises(errors.DeliveryRejected) as caught:
        out.write(event(2))
    out.close()
    assert caught.value.status == 400
    assert "rejected" in caught.value.body
    assert erp.stats()["effects"] == 1


def test_r7_key_reused_with_another_payload_is_422(erp: SimulatorHandle) -> None:
    out = output(erp.events_url)
    out.write(event())
    changed = dataclasses.replace(event(), data={**PO, "po_number": "PO2"})
    with pytest.raises(errors.DeliveryRejected) as caught:
        out.write(changed)
    out.close()
    assert caught.value.status == 422
    assert erp.stats()["effects"] == 1


def test_refused_connections_are_transient_until_the_erp_is_back(erp: SimulatorHandle) -> None:
    erp.set_fault("refuse", seconds=1)
    out = output(erp.events_url, connect_timeout=1)
    with pytest.raises(errors.DeliveryUnavailable, match="ConnectError"):
        out.write(event())
    deadline = time.monotonic() + 5
    while True:
        try:
            receipt = out.write(event())
            break
        except errors.DeliveryUnavailable:
            assert time.monotonic() < deadline, "the simulator did not listen again"
            time.sleep(0.1)
    out.close()
    assert receipt.status == 201 and erp.stats()["effects"] == 1


def test_a_port_nobody_listens_on_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        out = output(f"http://127.0.0.1:{s.getsockname()[1]}/events")
        with pytest.raises(errors.DeliveryUnavailable, match="ConnectError"):
            out.write(event())
        out.close()


def test_signature_verified_and_secret_never_logged(monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("EDIGW_TEST_ERP_SECRET", SECRET)
    monkeypatch.setenv("EDIGW_TEST_WRONG_SECRET", "whsec_" + base64.b64encode(b"w" * 24).decode())
    caplog.set_level(logging.DEBUG)  # everything: ours, httpx, httpcore, uvicorn
    with running_simulator(secrets=[SECRET]) as signed:
        good = output(signed.events_url, secret_env="EDIGW_TEST_ERP_SECRET")
        assert good.write(event()).status == 201
        assert good.write(event()).duplicate
        wrong = output(signed.events_url, secret_env="EDIGW_TEST_WRONG_SECRET")
        with pytest.raises(errors.DeliveryRejected) as caught:
            wrong.write(event(2))
        assert caught.value.status == 401
        unsigned = output(signed.events_url)
        with pytest.raises(errors.DeliveryRejected):
            unsigned.write(event(3))
        signatures = [r["signature"] for r in signed.state.request_list()]
        shown = repr(good.__dict__) + repr(good.config) + str(caught.value)
        for out in (good, wrong, unsigned):
            out.close()
    assert signatures[:2] == ["ok", "ok"]
    assert signatures[2] == "no valid v1 signature"
    assert signatures[3].startswith("missing")
    assert signed.stats()["effects"] == 1
    assert caplog.records, "nothing was logged, so the check below would prove nothing"
    for form in (SECRET, RAW_KEY.decode(), SECRET.removeprefix("whsec_")):
        assert form not in caplog.text
        assert form not in shown


def test_an_unset_secret_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDIGW_TEST_UNSET", raising=False)
    with pytest.raises(errors.ConfigError, match="EDIGW_TEST_UNSET"):
        output("http://127.0.0.1:9/events", secret_env="EDIGW_TEST_UNSET").connect()
