"""Settling `unknown` deliveries by a person's decision (`notifier send --resolve-unknown`).

A delivery ends `unknown` when the provider may have taken the message but cannot be asked (an
SMTP connection lost after the final "."). Reconciliation never guesses, so such rows would keep
their run open for ever. Someone who checked (the mail server's log, the resident) decides:
`sent` (unknown -> sent) or `resend` (unknown -> pending: the same row goes out again with the
next `send`, so the resident never gets a second row). Each row's change is audited under that
person's name, like any status change, and a run with nothing left open completes.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..clock import utcnow
from ..errors import StateError
from ..runs.review import load_run
from ..status import DeliveryStatus as S
from ..status import RunStatus
from ..storage.schema import deliveries, runs
from .complete import complete_runs
from .transitions import move


class Decision(StrEnum):
    SENT = "sent"  # the message did go out
    RESEND = "resend"  # it did not (or nobody can tell and sending twice is the lesser harm)


_TO = {Decision.SENT: S.SENT, Decision.RESEND: S.PENDING}


def resolve_unknown(app: App, run_id: int, decision: Decision, by: str) -> dict[str, Any]:
    """Settle every `unknown` delivery of the run as `decision`; returns what changed (JSON)."""
    by = actor_name(by)
    new = _TO[decision]
    now = utcnow()
    reason = (
        f"resolved by {by}: {'the message did go out' if decision is Decision.SENT else 'to be sent again'}"
    )
    d = deliveries
    with app.engine.begin() as conn:
        _check_run(app, conn, run_id, decision)
        values: dict[str, Any] = {"next_attempt_at": None}
        if decision is Decision.SENT:
            values["sent_at"] = sa.func.coalesce(d.c.sent_at, now)
        changed = move(
            conn,
            None,
            from_=S.UNKNOWN,
            to=new,
            actor=by,
            now=now,
            reason=reason,
            values=values,
            where=[d.c.run_id == run_id],
            payload={"resolved_as": decision.value},
        )
        channels = (
            conn.execute(sa.select(d.c.channel).where(d.c.id.in_(changed)).order_by(d.c.id)).scalars().all()
        )
        complete_runs(conn, {run_id}, now, by)
        status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one()
    return {
        "run": run_id,
        "as": decision.value,
        "resolved": len(changed),
        "deliveries": sorted(changed),
        "by_channel": dict(Counter(channels)),
        "run_status": str(status),
    }


def _check_run(app: App, conn: sa.Connection, run_id: int, decision: Decision) -> None:
    """The run exists (locked while it is settled) and, to send again, is approved."""
    status = load_run(conn, run_id, lock=True).status
    if decision is Decision.RESEND and status != RunStatus.APPROVED:
        raise StateError(f"run {run_id} is {status}; only an approved run can send again (use --as sent)")
