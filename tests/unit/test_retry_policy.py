"""The retry decision: a pure function of policy, attempt, error and a frozen clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import errors
from retry.policy import GiveUp, Retry, RetryPolicy, decide

pytestmark = pytest.mark.unit

NOW = datetime(2024, 3, 12, 9, 30, tzinfo=UTC)

policies = st.builds(
    RetryPolicy,
    maximum_redeliveries=st.integers(0, 50),
    redelivery_delay=st.floats(0.001, 60),
    back_off_multiplier=st.floats(1, 4),
    maximum_redelivery_delay=st.floats(60, 86400),
    max_age=st.none(),
    jitter=st.floats(0, 1),
)
transient = st.sampled_from([
    errors.TransientError("flaky"),
    errors.DeliveryUnavailable("503", status=503),
    errors.DeliveryTimeout("read timeout"),
    RuntimeError("a bug, or the environment"),
])
permanent = st.sampled_from([
    errors.PermanentError("bad"),
    errors.DeliveryRejected("400", status=400),
    errors.SchemaError("data does not match"),
])


def retry_at(decision: Retry | GiveUp) -> Retry:
    assert isinstance(decision, Retry), decision
    return decision


@given(policies, st.integers(1, 50), transient, st.integers(0, 2**32))
def test_delay_within_jitter_bounds_and_max_delay(policy: RetryPolicy, attempt: int,
                                                  error: Exception, seed: int) -> None:
    decision = decide(policy, attempt, error, NOW, NOW, random.Random(seed))
    if attempt > policy.maximum_redeliveries:
        assert isinstance(decision, GiveUp)
        return
    low, high = policy.delay_bounds(attempt)
    delay = retry_at(decision).delay
    assert low <= delay <= high <= policy.maximum_redelivery_delay
    assert high == pytest.approx(min(policy.redelivery_delay * policy.back_off_multiplier
                                     ** (attempt - 1), policy.maximum_redelivery_delay))
    assert retry_at(decision).at == NOW + timedelta(seconds=delay)


@given(policies, st.integers(1, 49))
def test_delays_do_not_decrease_in_expectation(policy: RetryPolicy, attempt: int) -> None:
    # The jittered delay is uniform on [low, high], so its mean is their midpoint.
    def mean(n: int) -> float:
        return sum(policy.delay_bounds(n)) / 2

    assert mean(attempt) <= mean(attempt + 1) * (1 + 1e-12)


def test_mean_of_drawn_delays_grows() -> None:
    policy = RetryPolicy(maximum_redeliveries=8, redelivery_delay=1, back_off_multiplier=2,
                         maximum_redelivery_delay=1000, max_age=None, jitter=1)
    rng = random.Random(7)
    means = []
    for attempt in range(1, 9):
        draws = [retry_at(decide(policy, attempt, errors.TransientError(), NOW, NOW, rng)).delay
                 for _ in range(2000)]
        means.append(sum(draws) / len(draws))
    assert means == sorted(means)
    assert means[0] == pytest.approx(0.5, rel=0.1)  # full jitter: uniform on (0, 1]


@given(policies, st.integers(1, 1000), permanent)
def test_never_retries_a_permanent_error(policy: RetryPolicy, attempt: int,
                                         error: Exception) -> None:
    decision = decide(policy, attempt, error, NOW, NOW, random.Random(0))
    assert isinstance(decision, GiveUp)
    assert str(error) in decision.reason


@given(policies, st.floats(0, 10**6), st.integers(0, 2**32))
def test_retry_after_is_a_minimum_up_to_the_maximum_delay(policy: RetryPolicy, retry_after: float,
                                                          seed: int) -> None:
    error = errors.DeliveryUnavailable("busy", status=503, retry_after=retry_after)
    if policy.maximum_redeliveries == 0:
        return
    decision = retry_at(decide(policy, 1, error, NOW, NOW, random.Random(seed)))
    asked = min(retry_after, policy.maximum_redelivery_delay)
    assert decision.at >= NOW + timedelta(seconds=asked)
    low, high = policy.delay_bounds(1)
    # Either the drawn delay, when it is already long enough, or exactly the (capped) wait.
    assert decision.delay == asked or low <= decision.delay <= high


def test_retry_after_beyond_the_maximum_delay_is_capped() -> None:
    policy = RetryPolicy(maximum_redelivery_delay=10, max_age=None)
    error = errors.DeliveryUnavailable(status=429, retry_after=120)
    assert retry_at(decide(policy, 1, error, NOW, NOW)).delay == 10


# What a Retry-After can become: huge, infinite, past a float, negative, not a number.
wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**400),
                 st.none())


@given(policies, st.integers(1, 60), wild, st.integers(0, 2**32))
def test_any_retry_after_gives_a_decision_within_the_policy(
        policy: RetryPolicy, attempt: int, retry_after: float | None, seed: int) -> None:
    error = errors.DeliveryUnavailable("busy", status=503, retry_after=retry_after)
    decision = decide(policy, attempt, error, NOW, NOW, random.Random(seed))
    if isinstance(decision, Retry):
        assert 0 <= decision.delay <= policy.maximum_redelivery_delay
        assert decision.at == NOW + timedelta(seconds=decision.delay)


@pytest.mark.parametrize("field", ["maximum_redelivery_delay", "max_age"])
@pytest.mark.parametrize("value", [1e300, float("nan"), float("inf")])
def test_delays_past_a_century_are_refused(field: str, value: float) -> None:
    with pytest.raises(errors.ConfigError, match=field):
        RetryPolicy(**{field: value})


def test_attempts_run_out() -> None:
    policy = RetryPolicy(maximum_redeliveries=3, max_age=None)
    verdicts = [decide(policy, n, errors.TransientError("x"), NOW, NOW) for n in (1, 2, 3, 4)]
    assert [type(v) for v in verdicts] == [Retry, Retry, Retry, GiveUp]
    assert "4 attempts" in verdicts[-1].reason  # type: ignore[union-attr]


@given(st.floats(1, 1000), st.integers(1, 30), st.integers(0, 2**32))
def test_no_attempt_starts_after_max_age(max_age: float, attempt: int, seed: int) -> None:
    policy = RetryPolicy(maximum_redeliveries=-1, redelivery_delay=1, max_age=max_age)
    first = NOW - timedelta(seconds=max_age / 2)
    decision = decide(policy, attempt, errors.TransientError(), NOW, first, random.Random(seed))
    if isinstance(decision, Retry):
        assert decision.at <= first + timedelta(seconds=max_age)
    else:
        assert "more than" in decision.reason


def test_age_runs_out_even_with_attempts_left() -> None:
    policy = RetryPolicy(maximum_redeliveries=100, max_age=60, jitter=0)
    first = NOW - timedelta(seconds=59.5)
    assert isinstance(decide(policy, 1, errors.TransientError(), NOW, first), GiveUp)
    assert isinstance(decide(policy, 1, errors.TransientError(), NOW, NOW), Retry)


def test_same_seed_same_decision() -> None:
    policy = RetryPolicy()
    a = decide(policy, 3, errors.TransientError(), NOW, NOW, random.Random(42))
    b = decide(policy, 3, errors.TransientError(), NOW, NOW, random.Random(42))
    assert a == b


def test_no_jitter_gives_exact_delays() -> None:
    policy = RetryPolicy(redelivery_delay=2, back_off_multiplier=3, maximum_redelivery_delay=100,
                         jitter=0, max_age=None)
    delays = [retry_at(decide(policy, n, errors.TransientError(), NOW, NOW)).delay
              for n in range(1, 7)]
    assert delays == [2, 6, 18, 54, 100, 100]


@pytest.mark.parametrize(("options", "says"), [
    ({"maximum_redeliveries": -2}, "maximum_redeliveries"),
    ({"maximum_redeliveries": -1, "max_age": None}, "needs a max_age"),
    ({"redelivery_delay": -1}, "redelivery_delay"),
    ({"back_off_multiplier": 0.5}, "back_off_multiplier"),
    ({"redelivery_delay": 10, "maximum_redelivery_delay": 5}, "maximum_redelivery_delay"),
    ({"max_age": 0}, "max_age"),
    ({"jitter": 1.5}, "jitter"),
])
def test_invalid_policies_are_refused(options: dict[str, float], says: str) -> None:
    with pytest.raises(errors.ConfigError, match=says):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        decide(RetryPolicy(), 0, errors.TransientError(), NOW, NOW)
