"""A rate limit per provider: at most `rate` messages per second, bursts up to `burst`.

Virtual scheduling (GCRA): each acquisition takes the next slot, 1/rate after the previous one,
so late wake-ups never lose time and the long-run rate is exact. After an idle spell at most
`burst` slots may be taken at once; the default burst of 1 means a steady pace from the start
(a bucket that starts full would let a fresh process exceed the provider's limit at once).

Pacing alone is not enough: a wake-up that comes late bunches with the next one on time, and a
provider counting requests over a sliding second would then see a few more than `rate`. So the
actual release times of the last `rate` acquisitions are kept, and no release happens less than
one second after the release `rate` places back.

SharedBucket is the same pacer for a limit shared by several processes (delivery/sharedrate.py
keeps the virtual time in the database): the slots come in small blocks from `reserve`, on
this process's monotonic clock, and are released here one by one.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Awaitable, Callable, Sequence


class TokenBucket:
    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.next_at = 0.0
        self._lock = asyncio.Lock()
        self._window = max(1, math.floor(rate))
        self._released: collections.deque[float] = collections.deque(maxlen=self._window)
        self._spacing = 0.0  # the least time between two releases of this process

    async def acquire(self) -> bool:
        """Wait for this caller's slot; False when none could be had (SharedBucket: the shared
        limit could not be reached), and nothing may be sent."""
        async with self._lock:
            now = time.monotonic()
            self.next_at = max(self.next_at, now - (self.capacity - 1) / self.rate)
            wait = self.next_at - now
            self.next_at += 1 / self.rate
        if wait > 0:
            await asyncio.sleep(wait)
        await self._release()
        return True

    async def _release(self) -> None:
        while True:
            # No await between the check and the append: the check-and-release is atomic.
            now = time.monotonic()
            released = self._released
            window_ok = len(released) < self._window or now >= released[0] + 1.0
            if window_ok and (not released or now >= released[-1] + self._spacing):
                released.append(now)
                return
            await asyncio.sleep(
                max(released[0] + 1.0 - now if not window_ok else 0.0, released[-1] + self._spacing - now)
            )


Reserve = Callable[[int], Awaitable[Sequence[float]]]
"""Up to n slots of a shared limit, as times on time.monotonic(); empty when none could be had."""


class SharedBucket(TokenBucket):
    """A rate limit shared with other processes: slots reserved up to `block` at a time, as many
    as callers wait or requests are expected (`expect`: a batch about to be sent), so a worker
    about to go idle takes no slots it leaves unused; released locally. A slot found more than
    `late` seconds past is given up rather than used at once: used late, it would bunch with the
    slots other processes release on time, and the provider would count more than `rate` in
    that second; so is a slot this process wakes up for more than `late` too late (it did not
    get the CPU in time): a stall costs its slots, it never becomes a burst. `rate` is the
    configured one: it bounds this process's own sliding second and spacing (the shared pace,
    a little below it, is `reserve`'s). While callers or expected requests remain, the next
    block is reserved once the slots held cover less than `lead` seconds, so a worker alone
    keeps the pace through the reservation's round trip."""

    def __init__(
        self, rate: float, reserve: Reserve, *, block: int, late: float = 0.02, lead: float = 0.1
    ) -> None:
        super().__init__(rate)
        self.reserve, self.block, self.late, self.lead = reserve, max(1, block), late, lead
        # Slots woken late together go apart, not in a bunch; half a step, not a whole one:
        # the slots are paced only 1 % under `rate`, so waiting a whole step after each release
        # would add every wake-up's overshoot to the next, and the pace would fall behind them.
        self._spacing = 0.5 / rate
        self._slots: collections.deque[float] = collections.deque()
        self._waiting = 0
        self._expected = 0
        self._handed = 0.0  # the latest slot handed to a caller
        self._ahead: asyncio.Future[None] | None = None  # a reservation under way

    def expect(self, requests: int) -> None:
        """`requests` more acquisitions are coming (a batch about to be sent): reservations may
        take that many slots at once instead of one per waiting caller (negative: fewer, those
        of a batch cancelled before they asked)."""
        self._expected = max(0, self._expected + requests)

    def backlog(self) -> float:
        """Seconds of the pace still needed by the requests expected: those not given a slot
        yet, and the slots handed out that are still ahead of now."""
        return max(0.0, self._handed - time.monotonic()) + self._expected / self.rate

    async def acquire(self) -> bool:
        counted = False
        try:
            while True:
                self._waiting += 1
                try:
                    async with self._lock:
                        slot = await self._next_slot()
                        if not counted:  # this caller is served: no longer among those expected
                            self._expected, counted = max(0, self._expected - 1), True
                        if slot is not None:
                            self._handed = max(self._handed, slot)
                finally:
                    self._waiting -= 1
                if slot is None:
                    return False
                wait = slot - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if time.monotonic() - slot <= self.late:
                    break
                # Woken late (this process did not get the CPU in time): that slot is given up
                # too, or the slots late together would go in a burst on top of the others' on time.
        finally:
            if not counted:  # cancelled before it was served: no longer expected either
                self._expected = max(0, self._expected - 1)
        await self._release()
        return True

    async def _next_slot(self) -> float | None:
        while True:
            if not self._slots:
                # shielded: a caller cancelled while it waits must not lose the block for the rest
                await asyncio.shield(self._ahead or self._reserve(self._demand()))
                if not self._slots:
                    return None
            slot = self._slots.popleft()
            wanted = self._demand() - 1 - len(self._slots)  # beyond this caller and the slots held
            if (
                wanted > 0
                and self._ahead is None
                and (not self._slots or self._slots[-1] < time.monotonic() + self.lead)
            ):
                # The next block is reserved while this one is still being used, so the answer's
                # round trip (tens of ms on a loaded machine) leaves no gap in the pace.
                self._reserve(wanted)
            if slot >= time.monotonic() - self.late:
                return slot

    def _demand(self) -> int:
        return max(1, self._waiting, self._expected)

    def _reserve(self, n: int) -> asyncio.Future[None]:
        async def more() -> None:
            try:
                self._slots.extend(await self.reserve(min(self.block, n)))
            finally:
                self._ahead = None

        self._ahead = asyncio.ensure_future(more())
        return self._ahead
