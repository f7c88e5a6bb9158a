"""The redelivery policy and the pure decision: retry at a given time, or give up."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import wait_exponential

from canonical import errors

# The longest delay or age a policy may name: any time that far ahead is still a datetime.
LONGEST = 100 * 365 * 86400.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a failed delivery is tried again (Camel's names)."""

    maximum_redeliveries: int = 10  # tries after the first; -1 = no limit (needs max_age)
    redelivery_delay: float = 1.0  # seconds before the first redelivery
    back_off_multiplier: float = 2.0  # each delay is this many times the previous one
    maximum_redelivery_delay: float = 3600.0  # no delay is longer, a Retry-After's included
    max_age: float | None = 86400.0  # seconds from the first attempt; no attempt starts later
    jitter: float = 0.5  # 0 = exact delays; 1 = anywhere in (0, delay] ("full jitter")

    def __post_init__(self) -> None:
        problems = []
        if self.maximum_redeliveries < -1:
            problems.append("maximum_redeliveries must be -1 (no limit) or 0 or more")
        if self.maximum_redeliveries == -1 and self.max_age is None:
            # Otherwise an event that always fails would never reach the dead-letter queue.
            problems.append("maximum_redeliveries -1 (no limit) needs a max_age")
        if not (math.isfinite(self.redelivery_delay) and self.redelivery_delay >= 0):
            problems.append("redelivery_delay must be a finite number of seconds, 0 or more")
        if not (math.isfinite(self.back_off_multiplier) and self.back_off_multiplier >= 1):
            problems.append("back_off_multiplier must be 1 or more")
        if not (self.redelivery_delay <= self.maximum_redelivery_delay <= LONGEST):
            problems.append("maximum_redelivery_delay must be >= redelivery_delay and at most "
                            f"{LONGEST:g} s (a century)")
        if self.max_age is not None and not 0 < self.max_age <= LONGEST:
            problems.append(f"max_age must be a positive number of seconds up to {LONGEST:g}"
                            " (a century), or None")
        if not 0 <= self.jitter <= 1:
            problems.append("jitter must be between 0 and 1")
        if problems:
            raise errors.ConfigError("invalid retry policy: " + "; ".join(problems))

    def base_delay(self, attempt: int) -> float:
        """The delay after failed attempt number `attempt` (1-based), before jitter."""
        if self.redelivery_delay == 0:
            return 0.0  # tenacity answers its maximum when 0 * base ** n overflows
        # tenacity's curve (multiplier * base ** (n - 1), capped, overflow-safe). Its jittered
        # waits draw from the module-global random, so the jitter is drawn below instead.
        curve = wait_exponential(multiplier=self.redelivery_delay, exp_base=self.back_off_multiplier,
                                 max=self.maximum_redelivery_delay)
        return float(curve(_Attempt(attempt)))  # type: ignore[arg-type]

    def delay_bounds(self, attempt: int) -> tuple[float, float]:
        """The smallest and largest jittered delay after failed attempt `attempt`."""
        high = self.base_delay(attempt)
        return high * (1 - self.jitter), high


@dataclass(frozen=True)
class Retry:
    """Try again at `at` (a delay of `delay` seconds after the failure)."""

    at: datetime
    delay: float


@dataclass(frozen=True)
class GiveUp:
    """Stop trying; park the event in the dead-letter queue."""

    reason: str


Decision = Retry | GiveUp


def decide(policy: RetryPolicy, attempt: int, error: BaseException, now: datetime,
           first_attempt_at: datetime, rng: random.Random | None = None) -> Decision:
    """What to do after failed attempt number `attempt` (1-based) that raised `error` at `now`."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if isinstance(error, errors.PermanentError):
        return GiveUp(f"permanent error: {error}")
    # Anything else is retried within the policy: TransientError by definition, and an
    # unexpected exception too, since the bounded schedule still parks it if it persists.
    limit = policy.maximum_redeliveries
    if limit != -1 and attempt > limit:
        return GiveUp(f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}: {error}")
    low, high = policy.delay_bounds(attempt)
    # Drawn in [low, high]: jitter=1 is tenacity's wait_random_exponential ("full jitter").
    delay = (rng or random).uniform(low, high)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after >= 0:
        # The destination knows its own recovery better than our curve: never come back
        # sooner, up to maximum_redelivery_delay. The cap is the operator's, and keeps an
        # absurd Retry-After (20 digits, the year 9999) from overflowing the schedule.
        delay = max(delay, float(min(retry_after, policy.maximum_redelivery_delay)))
    at = now + timedelta(seconds=delay)
    if policy.max_age is not None and at > first_attempt_at + timedelta(seconds=policy.max_age):
        return GiveUp(f"gave up: the next attempt would start more than {policy.max_age:g} s"
                      f" after the first: {error}")
    return Retry(at=at, delay=delay)


@dataclass(frozen=True)
class _Attempt:
    """The one field of tenacity's RetryCallState that its wait strategies read."""

    attempt_number: int
