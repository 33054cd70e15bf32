"""Failed console logins counted per client address, on top of the per-account lock.

The account lock (identity/accounts.py) stops guessing one account's password; it does not stop
one address trying a few passwords on every account. After `limit` failures from one address
within `window`, that address must wait until the oldest of them leaves the window. Counted in
this process (each worker counts its own, which bounds guessing per worker); memory is bounded
by dropping the addresses seen longest ago.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_ADDRESSES = 10_000


class LoginThrottle:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> float:
        """Seconds this address must wait before its next attempt (0: it may try now)."""
        seen = self._recent(address)
        if self.limit <= 0 or len(seen) < self.limit:
            return 0.0
        return max(0.0, seen[0] + self.window - self.clock())

    def failed(self, address: str) -> None:
        seen = self._recent(address)
        seen.append(self.clock())
        while len(seen) > max(self.limit, 1):
            seen.popleft()
        self._failures[address] = seen
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_ADDRESSES:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        seen = self._failures.get(address, deque())
        cutoff = self.clock() - self.window
        while seen and seen[0] <= cutoff:
            seen.popleft()
        return seen
