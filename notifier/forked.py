"""Work done in a forked child, its results sent back pickled through a pipe: the second core
for run creation's rendering (messages.py) and an import's sheet (residents/pool.py).

A fork copies this process as it is, at once and without importing anything again, but also
every lock as it is: only a process running one thread forks (`can_fork`), since a lock another
thread holds would never be released in the child. The child never returns into the caller's
code and never runs its exit handlers (`os._exit`), so it flushes none of its buffers and closes
none of its connections; what it must not touch of the parent's (pooled database connections)
the work itself sets aside.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("notifier.forked")

Send = Callable[[Any], None]


def can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


@dataclass(frozen=True)
class _Failed:
    """The child's exception, as text: the parent says so and carries on without it."""

    error: str


class Child:
    """A forked child running `work(send)`; `messages` are what it sent, in order."""

    def __init__(self, pid: int, receive: Connection) -> None:
        self.pid, self.receive = pid, receive

    @classmethod
    def start(cls, work: Callable[[Send], None]) -> Child | None:
        """Fork a child running work(send); None when the fork fails (the caller does the work)."""
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return None
        if pid:
            os.close(write)
            return cls(pid, Connection(read, writable=False))
        code = 1
        try:  # the child: never returns, never runs the parent's exit handlers
            os.close(read)
            pipe = Connection(write, readable=False)

            def send(message: Any) -> None:
                pipe.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

            try:
                work(send)
                code = 0
            except BaseException as exc:
                send(_Failed(f"{type(exc).__name__}: {exc}"))
        finally:
            os._exit(code)

    def messages(self) -> Iterator[Any]:
        """The child's messages until it ends; one it failed to finish (killed, an exception, an
        unreadable message) ends them, and is logged."""
        while True:
            try:
                data = self.receive.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                message = pickle.loads(data)
            except Exception as exc:
                log.warning("a forked worker sent an unreadable message (%s)", exc)
                return
            if isinstance(message, _Failed):
                log.warning("a forked worker failed (%s); its work is done here instead", message.error)
                return
            yield message

    def stop(self, *, kill: bool = True) -> int:
        """Close the pipe, end the child (`kill`: it is not needed any more) and wait for it; its
        exit code (0: it did all its work)."""
        self.receive.close()
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)
