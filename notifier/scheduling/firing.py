"""One firing of a scheduled notice: (rule, scheduled time) -> at most one run.

The firing row is inserted first, under a UNIQUE (rule, scheduled time) constraint, in its own
transaction: a restart, a second process or a clock jump that fires the same time again finds
the row and does nothing. Then the firing is decided: missed (too late), outside the item's
publication window, unapproved (this rule version lacks approval), or a run is created and,
unless `[approval] per_run`, released for sending on the strength of the version's approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .. import runs
from ..app import App
from ..audit import log as audit
from ..clock import as_utc, utcnow
from ..errors import InputError, StateError
from ..rules.model import Rule
from ..storage.schema import approvals, firings
from .approval import approval_state

ACTOR = "scheduler"


@dataclass(frozen=True)
class Firing:
    rule: str
    scheduled_at: datetime
    status: str  # created | refused | unapproved | outside_window | missed | duplicate
    run: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "scheduled_at": self.scheduled_at.isoformat(),
            "status": self.status,
            "run": self.run,
            "reason": self.reason,
        }


def fire(
    app: App,
    rule: Rule,
    scheduled_at: datetime,
    *,
    now: datetime | None = None,
    grace: timedelta = timedelta(hours=1),
) -> Firing:
    now = now or utcnow()
    scheduled_at = as_utc(scheduled_at)
    try:
        with app.engine.begin() as conn:
            fid = conn.execute(
                firings.insert()
                .values(
                    rule_id=rule.id,
                    scheduled_at=scheduled_at,
                    version=rule.version,
                    status="firing",
                    fired_at=now,
                )
                .returning(firings.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        return Firing(rule.id, scheduled_at, "duplicate", reason="this firing already happened")
    day = scheduled_at.astimezone(app.config.timezone).date()
    run_id, reason = None, None
    with app.reader.connect() as conn:
        state = approval_state(conn, rule, app.config.approval_levels)
    if now - scheduled_at > grace:
        status, reason = "missed", f"{now - scheduled_at} late, beyond the grace period of {grace}"
    elif rule.item.disclosure == "restricted" or runs.window_problem(rule, day) is not None:
        status, reason = "outside_window", f"item not published on {day}"
    elif not state.approved:
        status, reason = (
            "unapproved",
            f"version {rule.version[:12]} has {len(state.approvals)} of {len(state.levels)} approvals",
        )
    else:
        try:
            run_id = runs.create_run(app, rule, day, ACTOR).run
            status = "created"
        except (InputError, StateError) as exc:  # e.g. a template cannot render for someone: no run, recorded
            status, reason = "refused", exc.message
        if run_id is not None and not app.config.approval.per_run:
            _release(app, run_id, state.approvals)
    with app.engine.begin() as conn:
        conn.execute(
            firings.update().where(firings.c.id == fid).values(status=status, run_id=run_id, reason=reason)
        )
        audit.record(
            conn,
            ACTOR,
            "schedule.fired",
            f"rule:{rule.id}",
            scheduled_at=scheduled_at.isoformat(),
            version=rule.version,
            status=status,
            run=run_id,
            reason=reason,
        )
    return Firing(rule.id, scheduled_at, status, run_id, reason)


def _release(app: App, run_id: int, rule_approvals: list[dict[str, Any]]) -> None:
    """The rule version's approvals stand for this run: recorded on it, and the run approved."""
    now = utcnow()
    with app.engine.begin() as conn:
        for a in rule_approvals:
            conn.execute(
                approvals.insert().values(
                    run_id=run_id,
                    level=a["level"],
                    level_name=a["level_name"],
                    approved_by=a["by"],
                    approved_at=now,
                )
            )
        runs.mark_approved(conn, run_id, ACTOR, now)  # `run.released` names the approvals it stands on
        audit.record(
            conn, ACTOR, "run.released", f"run:{run_id}", by_rule_approval=[a["by"] for a in rule_approvals]
        )


def last_firings(app: App) -> dict[str, Any]:
    """The newest firing of each rule."""
    latest = (
        sa.select(firings.c.rule_id, sa.func.max(firings.c.scheduled_at).label("at"))
        .group_by(firings.c.rule_id)
        .subquery()
    )
    with app.reader.connect() as conn:
        rows = conn.execute(
            sa.select(firings).join(
                latest, sa.and_(firings.c.rule_id == latest.c.rule_id, firings.c.scheduled_at == latest.c.at)
            )
        ).all()
    return {r.rule_id: r for r in rows}
