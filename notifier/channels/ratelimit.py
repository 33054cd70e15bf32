"""A rate limit per provider: at most `rate` messages per second, bursts up to `burst`.

Virtual scheduling (GCRA): each acquisition takes the next slot, 1/rate after the previous one,
so late wake-ups never lose time and the long-run rate is exact. After an idle spell at most
`burst` slots may be taken at once; the default burst of 1 means a steady pace from the start
(a bucket that starts full would let a fresh process exceed the provider's limit at once).

Pacing alone is not enough: a wake-up that comes late bunches with the next one on time, and a
provider counting requests over a sliding second would then see a few more than `rate`. So the
actual release times of the last `rate` acquisitions are kept, and no release happens less than
one second after the release `rate` places back.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time


class TokenBucket:
    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.next_at = 0.0
        self._lock = asyncio.Lock()
        self._window = max(1, math.floor(rate))
        self._released: collections.deque[float] = collections.deque(maxlen=self._window)

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            self.next_at = max(self.next_at, now - (self.capacity - 1) / self.rate)
            wait = self.next_at - now
            self.next_at += 1 / self.rate
        if wait > 0:
            await asyncio.sleep(wait)
        while True:
            # No await between the check and the append: the check-and-release is atomic.
            now = time.monotonic()
            released = self._released
            if len(released) < self._window or now >= released[0] + 1.0:
                released.append(now)
                return
            await asyncio.sleep(released[0] + 1.0 - now)
