"""The ERP simulator over real HTTP, and the Standard Webhooks signatures it checks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import errors
from channels import signing
from channels.erp_sim import SimulatorHandle, running_simulator

pytestmark = pytest.mark.unit

# The Standard Webhooks specification's published test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.fixture(scope="module")
def running() -> Iterator[SimulatorHandle]:
    with running_simulator() as sim:
        yield sim


@pytest.fixture
def sim(running: SimulatorHandle) -> Iterator[SimulatorHandle]:
    running.state.reset()
    yield running
    running.state.reset()


def post(sim: SimulatorHandle, key: str | None, body: bytes = b'{"id": "e1"}') -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(sim.events_url, content=body, headers=headers, timeout=10)


# --- signatures -----------------------------------------------------------------------------


def test_signs_like_the_spec_vector() -> None:
    secret = signing.Secret.parse(SPEC_SECRET)
    assert signing.sign(secret, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    assert signing.verify([secret], SPEC_ID, str(SPEC_TS), SPEC_SIGNATURE, SPEC_BODY,
                          SPEC_TS + 10) is None


def test_a_rotated_secret_and_a_listed_signature_both_verify() -> None:
    old, new = signing.Secret.parse(SPEC_SECRET), signing.Secret.parse("plain text secret")
    header = signing.sign(new, "m", 100, b"x") + " " + signing.sign(old, "m", 100, b"x")
    assert signing.verify([old], "m", "100", header, b"x", 100) is None
    assert signing.verify([new, old], "m", "100", header, b"x", 100) is None


@pytest.mark.parametrize(("msg_id", "ts", "sig", "body", "now", "says"), [
    (SPEC_ID, str(SPEC_TS), SPEC_SIGNATURE, SPEC_BODY + b" ", SPEC_TS, "no valid"),
    (SPEC_ID, str(SPEC_TS), SPEC_SIGNATURE, SPEC_BODY, SPEC_TS + 301, "more than 300"),
    (SPEC_ID, "soon", SPEC_SIGNATURE, SPEC_BODY, SPEC_TS, "not an integer"),
    (SPEC_ID, str(SPEC_TS), None, SPEC_BODY, SPEC_TS, "missing"),
    (SPEC_ID, str(SPEC_TS), SPEC_SIGNATURE, b"\xff\xfe", SPEC_TS, "not UTF-8"),
    (SPEC_ID, str(SPEC_TS), "v1,not*base64 v2,abc", SPEC_BODY, SPEC_TS, "no v1 signature"),
    (SPEC_ID, "\u00b2\u00b3", SPEC_SIGNATURE, SPEC_BODY, SPEC_TS, "not an integer"),
    ("other", str(SPEC_TS), SPEC_SIGNATURE, SPEC_BODY, SPEC_TS, "no valid"),
])
def test_bad_signatures_say_why(msg_id: str, ts: str, sig: str | None, body: bytes, now: int,
                                says: str) -> None:
    problem = signing.verify([signing.Secret.parse(SPEC_SECRET)], msg_id, ts, sig, body, now)
    assert problem is not None and says in problem


@given(st.text(), st.text(), st.text(), st.binary())
def test_verify_never_raises(msg_id: str, ts: str, sig: str, body: bytes) -> None:
    assert signing.verify([signing.Secret.parse(SPEC_SECRET)], msg_id, ts, sig, body, 0) is not None


def test_a_secret_never_shows_and_bad_ones_are_config_errors() -> None:
    assert "MfKQ" not in repr(signing.Secret.parse(SPEC_SECRET))
    with pytest.raises(errors.ConfigError, match="base64"):
        signing.Secret.parse("whsec_not*base64")
    with pytest.raises(errors.ConfigError):
        signing.Secret.parse("")


# --- idempotency ----------------------------------------------------------------------------


def test_each_key_is_applied_once_and_requests_are_recorded_apart(sim: SimulatorHandle) -> None:
    assert post(sim, "k1").status_code == 201
    again = post(sim, "k1")
    assert (again.status_code, again.headers["idempotent-replayed"]) == (200, "true")
    assert post(sim, "k1", b'{"id": "other"}').status_code == 422
    assert post(sim, None).status_code == 400
    assert post(sim, "k2", b"not json").status_code == 400
    stats = httpx.get(sim.url + "/_sim/stats").json()
    assert (stats["requests"], stats["effects"], stats["replays"]) == (5, 1, 1)
    effects = httpx.get(sim.url + "/_sim/effects").json()
    assert [(e["key"], e["event_id"]) for e in effects] == [("k1", "e1")]
    outcomes = [r["outcome"] for r in httpx.get(sim.url + "/_sim/requests").json()]
    assert outcomes == ["applied", "replayed", "key-reused", "no-idempotency-key", "not-json"]


# --- fault switches -------------------------------------------------------------------------


def test_a_counted_fault_turns_itself_off(sim: SimulatorHandle) -> None:
    sim.set_fault("503", retry_after=3, count=2)
    answers = [post(sim, "k") for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 201]
    assert answers[0].headers["retry-after"] == "3"
    assert httpx.get(sim.url + "/_sim/faults").json()["fault"]["mode"] == "none"


def test_a_timed_fault_turns_itself_off(sim: SimulatorHandle) -> None:
    sim.set_fault("400", seconds=1.5)
    assert post(sim, "k").status_code == 400
    time.sleep(1.6)
    assert post(sim, "k").status_code == 201


def test_a_fault_can_target_some_keys(sim: SimulatorHandle) -> None:
    sim.set_fault("400", keys=["bad"])
    assert [post(sim, k).status_code for k in ("good", "bad", "bad")] == [201, 400, 400]


def test_a_hung_request_is_let_go_when_the_faults_change(sim: SimulatorHandle) -> None:
    sim.set_fault("hang", delay=60)
    answers: list[httpx.Response] = []
    hung = threading.Thread(target=lambda: answers.append(post(sim, "k")))
    hung.start()
    deadline = time.monotonic() + 5
    while sim.stats()["requests"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.2)
    assert answers == []
    started = time.monotonic()
    sim.set_fault("none")
    hung.join(timeout=5)
    # Let go when the faults changed, not when its 60 s hang ran out (a bound about the
    # hang, not about how fast this machine is).
    assert time.monotonic() - started < 30
    assert answers[0].status_code == 503  # let go, nothing applied
    assert sim.stats()["effects"] == 0


def test_refuse_needs_a_duration(sim: SimulatorHandle) -> None:
    answer = httpx.post(sim.url + "/_sim/faults", json={"mode": "refuse", "count": 2})
    assert answer.status_code == 422
    assert "refuse takes seconds" in answer.text


def test_unknown_fault_options_are_refused(sim: SimulatorHandle) -> None:
    answer = httpx.post(sim.url + "/_sim/faults", json={"mode": "503", "retry_afterr": 2})
    assert answer.status_code == 422
