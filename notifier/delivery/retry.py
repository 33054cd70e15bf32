"""Sending failed deliveries again, by a person's decision (`notifier runs retry`, the console).

A delivery ends `failed` or `undelivered` when the provider refused it or the carrier could not
deliver it: a wrong number, a full mailbox, a provider outage that outlasted the retries. Once
the cause is dealt with (the number corrected at the provider, the outage over), staff send the
same row again: failed -> pending, attempts reset, audited under their account, the run reopened
if it had completed. Rows that already led to a fallback on another channel are left alone, so
retrying never gives a resident the same notice twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..clock import utcnow
from ..errors import StateError
from ..runs.review import load_run
from ..status import NOT_REACHED, RunStatus
from ..status import DeliveryStatus as S
from ..storage.schema import deliveries, runs
from .complete import reopen_runs
from .transitions import move

RETRYABLE_RUNS = (RunStatus.APPROVED, RunStatus.COMPLETED)


def retry_failed(app: App, run_id: int, by: str) -> dict[str, Any]:
    """Put the run's failed and undelivered deliveries without a fallback back to pending."""
    by = actor_name(by)
    now = utcnow()
    d = deliveries
    followed = sa.select(d.c.fallback_of).where(d.c.fallback_of.is_not(None))
    with app.engine.begin() as conn:
        status = load_run(conn, run_id, lock=True).status
        if status not in RETRYABLE_RUNS:
            raise StateError.translatable(
                "run %(run)s is %(status)s; only an approved or completed run can send again",
                run=run_id,
                status=status,
            )
        moved = move(
            conn,
            None,
            from_=sorted(NOT_REACHED),
            to=S.PENDING,
            actor=by,
            now=now,
            reason=f"sent again by {by}",
            values={"attempts": 0, "next_attempt_at": None, "error_code": None, "claimed_by": None},
            where=[d.c.run_id == run_id, d.c.id.not_in(followed)],
            payload={"retried": True},
        )
        if moved:
            reopen_runs(conn, [run_id], now, by, "failed deliveries sent again")
        channels = conn.execute(sa.select(d.c.channel).where(d.c.id.in_(moved))).scalars().all()
        run_status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
    return {
        "run": run_id,
        "retried": len(moved),
        "deliveries": sorted(moved),
        "by_channel": dict(Counter(channels)),
        "run_status": str(run_status),
    }
