"""Bare rows for tests of the transition functions: one run and N pending SMS deliveries,
inserted directly (no rule, no rendering), so a test sees only what a move does."""

from __future__ import annotations

from datetime import date, datetime, timezone

from notifier.app import App
from notifier.status import RunStatus
from notifier.storage.schema import deliveries, runs

NOW = datetime(2026, 4, 1, 2, 0, tzinfo=timezone.utc)


def bare_run(
    app: App, n: int, *, status: RunStatus = RunStatus.APPROVED, reason: str | None = None
) -> tuple[int, list[int]]:
    """(run id, the ids of its n pending deliveries, ascending)."""
    with app.engine.begin() as conn:
        run_id = int(
            conn.execute(
                runs.insert()
                .values(
                    rule_id="r",
                    rule_version="v",
                    notice_key="k",
                    on_date=date(2026, 4, 1),
                    status=status,
                    snapshot={},
                    levels=[],
                    audience=n,
                    review=0,
                    created_by="t",
                    created_at=NOW,
                )
                .returning(runs.c.id)
            ).scalar_one()
        )
        if n == 0:
            return run_id, []
        rows = [
            {
                "run_id": run_id,
                "resident_id": f"R{i}",
                "channel": "sms",
                "status": "pending",
                "recipient": f"+86138000{i:05d}",
                "reason": reason,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(n)
        ]
        ids = conn.execute(deliveries.insert().returning(deliveries.c.id), rows).scalars().all()
    return run_id, sorted(ids)
