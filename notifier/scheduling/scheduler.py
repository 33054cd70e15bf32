"""APScheduler wiring for scheduled notices (only wiring: firing logic lives in firing.py).

Jobs live in an SQLAlchemy job store on the project's database, one per rule with a schedule,
with an explicit misfire policy (coalesce, grace period). Only the holder of the `scheduler`
lease runs them; another `serve` process waits as standby and takes over when the lease expires.
"""
from __future__ import annotations

import logging
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
from ..clock import utcnow
from ..rules.load import load_rules, rule_files
from ..rules.model import Rule
from .firing import fire

log = logging.getLogger("notifier.scheduler")
_APPS: dict[str, App] = {}   # running apps by config key: persisted jobs refer to them by name


def trigger_for(rule: Rule, tz: ZoneInfo) -> BaseTrigger | None:
    if "cron" in rule.schedule:
        return CronTrigger.from_crontab(rule.schedule["cron"], timezone=tz)
    if "once" in rule.schedule:
        once: datetime = rule.schedule["once"]
        return DateTrigger(run_date=once if once.tzinfo else once.replace(tzinfo=tz))
    return None


def next_fire(rule: Rule, tz: ZoneInfo, now: datetime) -> datetime | None:
    trigger = trigger_for(rule, tz)
    return trigger.get_next_fire_time(None, now) if trigger else None


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
    app = _APPS[app_key]
    rules, _ = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    rule = rules.get(rule_id)
    if rule is None:
        log.warning("rule %s no longer exists or has errors; firing skipped", rule_id)
        return
    grace = timedelta(seconds=app.config.raw["schedule"]["misfire_grace_seconds"])
    when = due_time(rule, app.config.timezone, utcnow(), grace)
    if when is not None:
        result = fire(app, rule, when, grace=grace)
        log.info("fired %s at %s: %s", rule_id, when.isoformat(), result.status)


class NoticeScheduler:
    def __init__(self, app: App, key: str) -> None:
        self.app, self.key = app, key
        self.grace = grace_seconds = int(app.config.raw["schedule"]["misfire_grace_seconds"])
        _APPS[key] = app
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=app.engine, tablename="apscheduler_jobs")},
            job_defaults={"coalesce": True, "misfire_grace_time": grace_seconds, "max_instances": 1},
            timezone=app.config.timezone)

    def sync(self) -> dict[str, list[str]]:
        """Add, update and remove jobs to match the rule files; returns what changed."""
        rules, _ = load_rules(rule_files(self.app.config.rules_dir), self.app.dictionary, self.app.config.templates_dir)
        wanted = {rid: r for rid, r in rules.items() if r.schedule}
        changed: dict[str, list[str]] = {"added": [], "updated": [], "removed": []}
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        for rid, rule in wanted.items():
            trigger = trigger_for(rule, self.app.config.timezone)
            kwargs: dict[str, Any] = {"args": [self.key, rid], "id": rid, "name": f"{rid}@{rule.version[:12]}"}
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
        rules, _ = load_rules(rule_files(self.app.config.rules_dir), self.app.dictionary, self.app.config.templates_dir)
        rule = rules.get(event.job_id)
        if rule is not None:
            result = fire(self.app, rule, event.scheduled_run_time, grace=timedelta(seconds=self.grace))
            log.warning("firing of %s at %s was missed: %s", event.job_id, event.scheduled_run_time, result.status)

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        _APPS.pop(self.key, None)
