"""Every rule as staff review it before previewing one: item, window, schedule, version, approval
state, channels, and what `rules check` finds. Nothing here reads the register, so listing all
rules costs the same on any register size; counts are the preview's, one rule at a time.

The check (embedded tests on a throwaway database, templates rendered) costs far more than
loading, so its report is kept for as long as no rule file, template or fields.yaml changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .app import App
from .clock import utcnow
from .errors import Problem
from .rules.checking import CheckReport, check_rules
from .rules.load import load_rules, rule_files
from .rules.model import Rule
from .scheduling.approval import ApprovalState, approval_state
from .scheduling.scheduler import next_fire


@dataclass(frozen=True)
class RuleEntry:
    rule: Rule
    approval: ApprovalState  # of the rule's current version
    next_fire: datetime | None  # timezone-aware; None without a schedule or once it has passed


@dataclass(frozen=True)
class Rulebook:
    rules: list[RuleEntry]  # by id
    problems: list[Problem]  # rule files that did not load, failed checks and tests
    tests_passed: int
    tests_failed: int

    def problems_of(self, rule: Rule) -> list[Problem]:
        """The problems located in the rule's file or in one of its templates."""
        files = {rule.file, *rule.template_files.values()}
        return [p for p in self.problems if p.file in files]

    def entry(self, rule_id: str) -> RuleEntry | None:
        return next((e for e in self.rules if e.rule.id == rule_id), None)


@dataclass
class CheckCache:
    """The last check report and the files (name, mtime, size) it was made from."""

    key: tuple[tuple[str, int, int], ...] = ()
    report: CheckReport | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def report_for(self, app: App) -> CheckReport:
        key = _files_key(app)
        with self.lock:
            if self.report is not None and key == self.key:
                return self.report
        report = check_rules([app.config.rules_dir], app.config.fields_file, app.config.templates_dir)
        with self.lock:
            self.key, self.report = key, report
        return report


def rulebook(app: App, cache: CheckCache | None = None) -> Rulebook:
    """Every loaded rule with its approval state and next firing, and the check's problems."""
    report = (cache or CheckCache()).report_for(app)
    rules, _ = load_rules(rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir)
    now, tz = utcnow(), app.config.timezone
    with app.reader.connect() as conn:
        entries = [
            RuleEntry(rule, approval_state(conn, rule, app.config.approval_levels), next_fire(rule, tz, now))
            for _, rule in sorted(rules.items())
        ]
    return Rulebook(entries, list(report.errors), report.passed, report.failed)


def _files_key(app: App) -> tuple[tuple[str, int, int], ...]:
    cfg = app.config
    paths = [*rule_files(cfg.rules_dir), cfg.fields_file, *sorted(cfg.templates_dir.glob("*"))]
    return tuple(_stat(p) for p in paths)


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_mtime_ns, st.st_size)
