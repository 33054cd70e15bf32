"""Settling `unknown` deliveries by a person's decision (`notifier send --resolve-unknown`).

A delivery ends `unknown` when the provider may have taken the message but cannot be asked (an
SMTP connection lost after the final "."). Reconciliation never guesses, so such rows would keep
their run open for ever. Someone who checked (the mail server's log, the resident) decides:
`sent` (unknown -> sent) or `resend` (unknown -> pending: the same row goes out again with the
next `send`, so the resident never gets a second row). Each row's change is audited under that
person's name, like any status change, and a run with nothing left open completes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..audit import log as audit
from ..clock import utcnow
from ..errors import NotFound, StateError
from ..status import DeliveryStatus as S
from ..status import RunStatus, can_transition
from ..storage.schema import deliveries, runs
from .dispatch import complete_runs


class Decision(StrEnum):
    SENT = "sent"  # the message did go out
    RESEND = "resend"  # it did not (or nobody can tell and sending twice is the lesser harm)


_TO = {Decision.SENT: S.SENT, Decision.RESEND: S.PENDING}


def resolve_unknown(app: App, run_id: int, decision: Decision, by: str) -> dict[str, Any]:
    """Settle every `unknown` delivery of the run as `decision`; returns what changed (JSON)."""
    by = actor_name(by)
    new = _TO[decision]
    assert can_transition(S.UNKNOWN, new)
    now = utcnow()
    reason = (
        f"resolved by {by}: {'the message did go out' if decision is Decision.SENT else 'to be sent again'}"
    )
    d = deliveries
    with app.engine.begin() as conn:
        q = sa.select(runs.c.status).where(runs.c.id == run_id)
        status = conn.execute(
            q.with_for_update() if app.engine.dialect.name == "postgresql" else q
        ).scalar_one_or_none()
        if status is None:
            raise NotFound(f"no run {run_id}")
        if decision is Decision.RESEND and status != RunStatus.APPROVED:
            raise StateError(f"run {run_id} is {status}; only an approved run can send again (use --as sent)")
        values: dict[str, Any] = {"status": new, "reason": reason, "updated_at": now, "next_attempt_at": None}
        if decision is Decision.SENT:
            values["sent_at"] = sa.func.coalesce(d.c.sent_at, now)
        changed = conn.execute(
            d.update()
            .where(d.c.run_id == run_id, d.c.status == S.UNKNOWN)
            .values(**values)
            .returning(d.c.id, d.c.channel)
        ).all()
        changed.sort()
        audit.append(
            conn,
            [
                audit.AuditEvent(
                    by,
                    "delivery.status",
                    f"delivery:{i}",
                    {
                        "run": run_id,
                        "from": S.UNKNOWN.value,
                        "to": new.value,
                        "reason": reason,
                        "resolved_as": decision.value,
                    },
                )
                for i, _ in changed
            ],
            now=now,
        )
        complete_runs(conn, {run_id}, now, by)
        status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
    by_channel: dict[str, int] = {}
    for _, channel in changed:
        by_channel[channel] = by_channel.get(channel, 0) + 1
    return {
        "run": run_id,
        "as": decision.value,
        "resolved": len(changed),
        "deliveries": [i for i, _ in changed],
        "by_channel": by_channel,
        "run_status": str(status),
    }
