"""How `serve` stays up through a busy database and says so: lock timeouts are recognised, retried
with backoff, and reported on /healthz as `degraded` until the next round that works.

A lock timeout (another process holding SQLite's write lock past `busy_timeout_seconds`, a
PostgreSQL `lock_timeout` or deadlock) is an expected, passing condition; it must neither end the
service nor be logged with a traceback every round.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("notifier.health")

_SQLITE_LOCKED = ("database is locked", "database table is locked", "database is busy")
_PG_LOCK_CODES = {"55P03", "40P01"}  # lock_not_available (lock_timeout), deadlock_detected


def is_lock_timeout(exc: BaseException) -> bool:
    """True for a database error that waiting and trying again can clear."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    orig: Any = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _PG_LOCK_CODES or any(text in str(orig).lower() for text in _SQLITE_LOCKED)


def describe(exc: BaseException) -> str:
    """One line for logs and /healthz (no SQL, no parameters: they may hold personal data)."""
    if is_lock_timeout(exc):
        return "database is locked"
    if isinstance(exc, sa.exc.DBAPIError):
        return f"database error: {exc.orig.__class__.__name__}"
    return exc.__class__.__name__


class Backoff:
    """Delays that double from `base` up to `cap`; `reset` after a success."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, max(base, cap)
        self.failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2.0**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Health:
    """Each part of `serve` (dispatch, scheduler, checkpoints, firing) reports its last round;
    any failing part makes the service `degraded`. Shared by the loops' threads, hence the lock."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()

    def failed(self, part: str, exc: BaseException, retry_in: float | None = None) -> None:
        text = describe(exc) + (f"; retrying in {retry_in:g}s" if retry_in is not None else "")
        with self._lock:
            self._problems[part] = text

    def recovered(self, part: str) -> None:
        with self._lock:
            was = self._problems.pop(part, None)
        if was is not None:
            log.info("%s recovered (was: %s)", part, was)

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            problems = dict(sorted(self._problems.items()))
        return {"status": "degraded" if problems else "ok", "degraded": problems}


def report_failure(
    health: Health, part: str, exc: BaseException, delay: float, logger: logging.Logger
) -> None:
    """Log a failed round (a lock timeout as one warning line, anything else with its traceback)
    and mark the part degraded."""
    health.failed(part, exc, delay)
    if is_lock_timeout(exc):
        logger.warning("%s: database is locked; retrying in %gs", part, delay)
    else:
        logger.error("%s round failed; retrying in %gs", part, delay, exc_info=exc)
