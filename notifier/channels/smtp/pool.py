"""A small pool of SMTP connections, reused between messages (login once, not per message)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiosmtplib

from .connection import Connection


class Pool:
    def __init__(self, connect: Callable[[], Awaitable[Connection]], size: int) -> None:
        self._connect = connect
        self.size = max(1, size)
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._made = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection, and whether it was reused from the pool (it may have been dropped since)."""
        async with self._lock:
            if self._idle.empty() and self._made < self.size:
                self._made += 1
                try:
                    return await self._connect(), False
                except Exception:
                    self._made -= 1
                    raise
        return await self._idle.get(), True

    def release(self, client: Connection) -> None:
        """Back to the pool while still connected (after a refusal aiosmtplib has sent RSET);
        otherwise gone, so the next message gets a fresh connection."""
        if client.is_connected:
            self._idle.put_nowait(client)
        else:
            self._made -= 1
            client.close()

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        self._made = 0
