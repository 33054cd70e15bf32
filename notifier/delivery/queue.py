"""What is waiting in the outbox (the deliveries table): counts by status and the next retry."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa

from ..app import App
from ..clock import as_utc
from ..status import DeliveryStatus, RunStatus
from ..storage.schema import deliveries, runs


def count(
    app: App, statuses: Collection[DeliveryStatus], run_id: int | None, *, approved_runs: bool = True
) -> int:
    """Deliveries in these statuses (of one run, or all; of approved runs only, or any)."""
    d = deliveries
    q = (
        sa.select(sa.func.count())
        .select_from(d.join(runs, runs.c.id == d.c.run_id))
        .where(d.c.status.in_(list(statuses)))
    )
    if approved_runs:
        q = q.where(runs.c.status == RunStatus.APPROVED)
    if run_id is not None:
        q = q.where(d.c.run_id == run_id)
    with app.reader.connect() as conn:
        return int(conn.execute(q).scalar_one())


def next_retry(app: App, run_id: int | None, after: datetime | None = None) -> datetime | None:
    """When the earliest pending delivery waiting for a retry (or its number's turn) comes due;
    `after`: of those coming due after that time."""
    d = deliveries
    q = sa.select(sa.func.min(d.c.next_attempt_at)).where(
        d.c.status == DeliveryStatus.PENDING, d.c.next_attempt_at.is_not(None)
    )
    if after is not None:
        q = q.where(d.c.next_attempt_at > after)
    if run_id is not None:
        q = q.where(d.c.run_id == run_id)
    with app.reader.connect() as conn:
        value = conn.execute(q).scalar_one()
    return as_utc(value) if value else None
