"""Approval of a rule version for scheduled sending.

Approval belongs to the rule's version (SHA-256 of the rule, fields.yaml and its templates):
any edit makes a new version that is unapproved until it walks the review levels again, so the
scheduler never sends anything that was not approved as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name, same_actor
from ..app import App
from ..audit import log as audit
from ..clock import as_utc, utcnow
from ..errors import StateError
from ..rules.model import Rule
from ..storage.schema import rule_approvals


@dataclass(frozen=True)
class ApprovalState:
    rule: str
    version: str
    levels: list[str]
    approvals: list[dict[str, Any]]

    @property
    def approved(self) -> bool:
        return len(self.approvals) >= len(self.levels)

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "approved": self.approved,
            "levels": self.levels,
            "approvals": self.approvals,
        }


def approval_state(conn: sa.Connection, rule: Rule, levels: list[str]) -> ApprovalState:
    rows = conn.execute(
        sa.select(rule_approvals)
        .where(rule_approvals.c.rule_id == rule.id, rule_approvals.c.version == rule.version)
        .order_by(rule_approvals.c.level)
    ).all()
    return ApprovalState(
        rule.id,
        rule.version,
        levels,
        [
            {
                "level": r.level,
                "level_name": r.level_name,
                "by": r.approved_by,
                "at": as_utc(r.approved_at).isoformat(),
            }
            for r in rows
        ],
    )


def approve_rule(
    app: App, rule: Rule, by: str, *, may_approve: Callable[[int], None] | None = None
) -> ApprovalState:
    """One review level for the rule's current version; each level by a different person
    (names compared as actors.same_actor does); `may_approve(level)` raises unless the acting
    account may approve that level."""
    by = actor_name(by)
    levels = app.config.approval_levels
    with app.engine.begin() as conn:
        state = approval_state(conn, rule, levels)
        if state.approved:
            raise StateError(
                f"rule {rule.id!r} version {rule.version[:12]} is already approved at every level"
            )
        if any(same_actor(a["by"], by) for a in state.approvals):
            raise StateError(
                f"{by} already approved this version of {rule.id!r}; each level needs a different person"
            )
        level = len(state.approvals) + 1
        if may_approve is not None:
            may_approve(level)
        conn.execute(
            rule_approvals.insert().values(
                rule_id=rule.id,
                version=rule.version,
                level=level,
                level_name=levels[level - 1],
                approved_by=by,
                approved_at=utcnow(),
            )
        )
        audit.record(
            conn,
            by,
            "rule.approved",
            f"rule:{rule.id}",
            version=rule.version,
            level=level,
            level_name=levels[level - 1],
            of=len(levels),
        )
        return approval_state(conn, rule, levels)
