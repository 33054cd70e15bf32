"""The per-provider rate limit holds its rate exactly and never bursts past it."""

from __future__ import annotations

import asyncio
import time

from notifier.channels.ratelimit import TokenBucket


def test_rate_is_held_and_never_exceeded() -> None:
    rate, seconds = 100.0, 2.0

    async def go() -> list[float]:
        bucket, stamps, t0 = TokenBucket(rate), [], time.monotonic()

        async def worker() -> None:
            while True:
                await bucket.acquire()
                stamps.append(time.monotonic() - t0)

        tasks = [asyncio.create_task(worker()) for _ in range(40)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return [s for s in stamps if s < seconds]

    stamps = asyncio.run(go())
    assert abs(len(stamps) / seconds - rate) / rate < 0.02
    # No 1-second window holds more than the rate (+1 for the instant between release and stamp),
    # not even at the start or after a late wake-up.
    assert max(sum(1 for s in stamps if a <= s < a + 1) for a in stamps) <= rate + 1
