"""Sign-in attempts limited per username and client, over a sliding window (injected clock).

Failures only count: a user who signs in resets their own (username, client) count. The
counts live in the process; several servers each keep their own, so an attacker gets at
most that many times the attempts, still far too few to guess a password.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

# Enough keys to remember for a busy portal; past it the least recently failed are dropped.
MAX_KEYS = 10_000


class Throttle:
    """How many sign-in failures a (username, client) and a client may have in a window."""

    def __init__(self, clock: Callable[[], float], *, per_user: int = 5,
                 per_client: int = 30, window: float = 900.0) -> None:
        self.clock = clock
        self.per_user, self.per_client, self.window = per_user, per_client, window
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def wait(self, username: str, client: str) -> float:
        """Seconds before another attempt may be made (0 when it may be made now)."""
        now = self.clock()
        waits = [self._wait(("user", f"{_norm(username)}\0{client}"), self.per_user, now),
                 self._wait(("client", client), self.per_client, now)]
        return max(waits)

    def failed(self, username: str, client: str) -> None:
        now = self.clock()
        for key in (("user", f"{_norm(username)}\0{client}"), ("client", client)):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)

    def succeeded(self, username: str, client: str) -> None:
        self._failures.pop(("user", f"{_norm(username)}\0{client}"), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> float:
        times = self._failures.get(key)
        if not times:
            return 0.0
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window - now


def _norm(username: str) -> str:
    return username.strip().lower()[:64]
