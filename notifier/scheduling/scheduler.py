"""APScheduler wiring for scheduled notices (only wiring: firing logic lives in firing.py).

Jobs live in an SQLAlchemy job store on the project's database, one per rule with a schedule,
with an explicit misfire policy (coalesce, grace period). Only the holder of the `scheduler`
lease runs them; another `serve` process waits as standby and takes over when the lease expires.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from ..app import App
from ..clock import as_utc, utcnow
from ..errors import Problem
from ..health import Backoff, Health, is_lock_timeout, report_failure
from ..rules.load import load_rules, rule_files
from ..rules.model import Rule
from .firing import Firing, fire

log = logging.getLogger("notifier.scheduler")
FIRING_ATTEMPTS = 6  # a firing whose database stays locked is retried for about a minute (1+2+4+8+16+32 s)


@dataclass(frozen=True)
class _Running:
    app: App
    health: Health


_APPS: dict[str, _Running] = {}  # running apps by config key: persisted jobs refer to them by name


def trigger_for(rule: Rule, tz: ZoneInfo) -> BaseTrigger | None:
    if "cron" in rule.schedule:
        return CronTrigger.from_crontab(rule.schedule["cron"], timezone=tz)
    if "once" in rule.schedule:
        once: datetime = rule.schedule["once"]
        return DateTrigger(run_date=once if once.tzinfo else once.replace(tzinfo=tz))
    return None


def next_fire(rule: Rule, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The next scheduled time after `now`; None once a one-time notice's time has passed (a
    DateTrigger itself answers its run date whatever `now` is)."""
    trigger = trigger_for(rule, tz)
    t = trigger.get_next_fire_time(None, now) if trigger else None
    return t if t is not None and t > now else None


def schedule_state(rule: Rule, tz: ZoneInfo, now: datetime, grace: timedelta, last: Any) -> str:
    """What `schedule list` says of a notice: scheduled (a time ahead), due (within the grace
    period, not fired yet), missed (its one time passed unfired, or the firing was too late),
    fired, or the outcome of its last firing (unapproved, outside_window)."""
    if next_fire(rule, tz, now) is not None:
        return "scheduled"
    once = trigger_for(rule, tz)
    at = once.get_next_fire_time(None, now) if once is not None else None
    if last is not None and at is not None and as_utc(last.scheduled_at) == as_utc(at):
        return "fired" if last.status == "created" else str(last.status)
    if at is not None and now - at <= grace:
        return "due"
    return "missed"


def due_time(rule: Rule, tz: ZoneInfo, now: datetime, grace: timedelta) -> datetime | None:
    """The latest scheduled time in (now - grace, now]: the firing a job run stands for."""
    trigger = trigger_for(rule, tz)
    if trigger is None:
        return None
    found, t = None, trigger.get_next_fire_time(None, now - grace)
    while t is not None and t <= now:
        found, prev = t, t
        t = trigger.get_next_fire_time(prev, prev + timedelta(seconds=1))
    return found


def run_firing(app_key: str, rule_id: str) -> None:
    """The job APScheduler runs: reload the rule (its current version) and fire it once."""
    running = _APPS[app_key]
    app = running.app
    rules, _ = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    rule = rules.get(rule_id)
    if rule is None:
        log.warning("rule %s no longer exists or has errors; firing skipped", rule_id)
        return
    grace = timedelta(seconds=app.config.schedule.misfire_grace_seconds)
    when = due_time(rule, app.config.timezone, utcnow(), grace)
    if when is not None:
        result = _fire_retrying(running, rule, when, grace)
        log.info("fired %s at %s: %s", rule_id, when.isoformat(), result.status)


def _fire_retrying(running: _Running, rule: Rule, when: datetime, grace: timedelta) -> Firing:
    """fire(), retried with backoff while the database is locked (a job APScheduler has started is
    not started again); other errors go to APScheduler's job error log as before."""
    backoff = Backoff(1.0, 32.0)
    for attempt in range(1, FIRING_ATTEMPTS + 1):
        try:
            result = fire(running.app, rule, when, grace=grace)
            running.health.recovered(f"firing {rule.id}")
            return result
        except Exception as exc:
            if not is_lock_timeout(exc) or attempt == FIRING_ATTEMPTS:
                running.health.failed(f"firing {rule.id}", exc)
                raise
            delay = backoff.next()
            report_failure(running.health, f"firing {rule.id}", exc, delay, log)
            time.sleep(delay)
    raise AssertionError("unreachable")


def log_problems(problems: list[Problem]) -> None:
    """Rule files that cannot be scheduled, each with file:line (the other rules keep firing)."""
    for p in problems:
        log.error("rule file skipped: %s", p)


class NoticeScheduler:
    def __init__(self, app: App, key: str, health: Health | None = None) -> None:
        self.app, self.key = app, key
        self.grace = grace_seconds = int(app.config.schedule.misfire_grace_seconds)
        _APPS[key] = _Running(app, health or Health())
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=app.engine, tablename="apscheduler_jobs")},
            job_defaults={"coalesce": True, "misfire_grace_time": grace_seconds, "max_instances": 1},
            timezone=app.config.timezone,
        )

    def sync(self) -> dict[str, list[str]]:
        """Add, update and remove jobs to match the rule files; returns what changed. A rule file
        with errors is logged and has no job (it could not fire anyway); the others are kept."""
        rules, problems = load_rules(
            rule_files(self.app.config.rules_dir), self.app.dictionary, self.app.config.templates_dir
        )
        log_problems(problems)
        wanted = {rid: r for rid, r in rules.items() if r.schedule}
        changed: dict[str, list[str]] = {"added": [], "updated": [], "removed": []}
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        for rid, rule in wanted.items():
            trigger = trigger_for(rule, self.app.config.timezone)
            kwargs: dict[str, Any] = {
                "args": [self.key, rid],
                "id": rid,
                "name": f"{rid}@{rule.version[:12]}",
            }
            if rid in existing:
                if existing[rid].name != kwargs["name"]:
                    self.scheduler.modify_job(rid, name=kwargs["name"])
                    self.scheduler.reschedule_job(rid, trigger=trigger)
                    changed["updated"].append(rid)
            else:
                self.scheduler.add_job(run_firing, trigger, replace_existing=True, **kwargs)
                changed["added"].append(rid)
        for rid in set(existing) - set(wanted):
            self.scheduler.remove_job(rid)
            changed["removed"].append(rid)
        for kind, ids in changed.items():
            if ids:
                log.info("schedule %s: %s", kind, ", ".join(sorted(ids)))
        return changed

    def start(self) -> None:
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self.scheduler.start()
        self.sync()

    def _missed(self, event: JobExecutionEvent) -> None:
        """APScheduler skipped a firing (past the grace period, e.g. while stopped): record it as missed."""
        rules, _ = load_rules(
            rule_files(self.app.config.rules_dir), self.app.dictionary, self.app.config.templates_dir
        )
        rule = rules.get(event.job_id)
        if rule is not None:
            result = fire(self.app, rule, event.scheduled_run_time, grace=timedelta(seconds=self.grace))
            log.warning(
                "firing of %s at %s was missed: %s", event.job_id, event.scheduled_run_time, result.status
            )

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        _APPS.pop(self.key, None)
