"""Running a call in this thread or in another one (a process running threads never forks)."""

from __future__ import annotations

import threading
from collections.abc import Callable


def call(fn: Callable[[], object], *, from_thread: bool) -> None:
    """fn() here, or in a thread started and joined for it."""
    if not from_thread:
        fn()
        return
    t = threading.Thread(target=fn)
    t.start()
    t.join()
