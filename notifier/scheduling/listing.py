"""`schedule list`: each scheduled notice with its state, next and last firing, approval and version.

Read-only: a broken rule file is reported beside the others instead of hiding them, so staff see
every notice that will (or will not) fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..app import App
from ..clock import as_utc, utcnow
from ..errors import Problem
from ..rules.load import load_rules, rule_files
from ..rules.model import Rule
from .approval import ApprovalState, approval_state
from .firing import last_firings
from .scheduler import next_fire, schedule_state


@dataclass(frozen=True)
class LastFiring:
    scheduled_at: datetime  # in the configured timezone
    status: str
    run: int | None
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "scheduled_at": self.scheduled_at.isoformat(),
            "status": self.status,
            "run": self.run,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ScheduledNotice:
    rule: str
    schedule: dict[str, str]  # {"cron": "0 9 5 * *"} or {"once": "2026-03-02 09:00:00"}, as written
    once: datetime | None  # a one-time notice's firing time, timezone-aware
    next: datetime | None
    state: str  # scheduled | due | missed | fired | the outcome of the last firing
    version: str
    approval: ApprovalState
    last: LastFiring | None

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "schedule": self.schedule,
            "next": self.next.isoformat() if self.next else None,
            "state": self.state,
            "version": self.version,
            "approved": self.approval.approved,
            "approvals": len(self.approval.approvals),
            "levels": len(self.approval.levels),
            "last": self.last.as_json() if self.last else None,
        }


@dataclass(frozen=True)
class ScheduleListing:
    tz: ZoneInfo
    notices: list[ScheduledNotice]
    errors: list[Problem]  # rule files that did not load

    @property
    def exit_code(self) -> int:
        return 3 if self.errors else 0

    def as_json(self) -> dict[str, Any]:
        return {"notices": [n.as_json() for n in self.notices], "errors": [p.as_json() for p in self.errors]}


def _once(rule: Rule, tz: ZoneInfo) -> datetime | None:
    once: datetime | None = rule.schedule.get("once")
    return None if once is None else once if once.tzinfo else once.replace(tzinfo=tz)


def _last(firing: Any, tz: ZoneInfo) -> LastFiring | None:
    if firing is None:
        return None
    at = as_utc(firing.scheduled_at).astimezone(tz)
    return LastFiring(at, firing.status, firing.run_id, firing.reason)


def list_schedule(app: App) -> ScheduleListing:
    """Every rule with a schedule, by id."""
    tz = app.config.timezone
    grace = timedelta(seconds=app.config.schedule.misfire_grace_seconds)
    rules, problems = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    last = last_firings(app)
    now = utcnow()
    notices = []
    with app.reader.connect() as conn:
        for rid, rule in sorted(rules.items()):
            if not rule.schedule:
                continue
            notices.append(
                ScheduledNotice(
                    rule=rid,
                    schedule={k: str(v) for k, v in rule.schedule.items()},
                    once=_once(rule, tz),
                    next=next_fire(rule, tz, now),
                    state=schedule_state(rule, tz, now, grace, last.get(rid)),
                    version=rule.version,
                    approval=approval_state(conn, rule, app.config.approval_levels),
                    last=_last(last.get(rid), tz),
                )
            )
    return ScheduleListing(tz, notices, problems)
