"""What retention removes when: cut-off times from `[retention]` and the rules' own
`item.retention_days`, evaluated once per `retention apply` at one `now` (the clock passed in)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..config import RetentionSettings


@dataclass(frozen=True)
class Policy:
    """Days after a run finished (messages, files) and after a resident left; 0 keeps for ever.
    `by_rule` holds the rules whose item overrides `messages_days` (and the files of their runs)."""

    now: datetime
    messages_days: int
    files_days: int
    left_residents_days: int
    by_rule: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: RetentionSettings, now: datetime, by_rule: Mapping[str, int]) -> Policy:
        return cls(now, settings.messages_days, settings.files_days, settings.left_residents_days, by_rule)

    def cutoff(self, days: int) -> datetime | None:
        """Rows finished before this are due; None: kept for ever."""
        return self.now - timedelta(days=days) if days > 0 else None

    def message_days(self, rule_id: str) -> int:
        return self.by_rule.get(rule_id, self.messages_days)

    def file_days(self, rule_id: str) -> int:
        return self.by_rule.get(rule_id, self.files_days)

    def as_json(self) -> dict[str, Any]:
        return {
            "messages_days": self.messages_days,
            "files_days": self.files_days,
            "left_residents_days": self.left_residents_days,
            "by_rule": dict(sorted(self.by_rule.items())),
        }


def rule_overrides(app: Any) -> dict[str, int]:
    """rule id -> item.retention_days of every rule file that sets it (files with errors are
    skipped here: `rules check` reports them, and their runs keep the default)."""
    from ..rules.load import load_rules, rule_files

    c = app.config
    rules, _ = load_rules(rule_files(c.rules_dir), app.dictionary, c.templates_dir)
    return {rid: r.item.retention_days for rid, r in rules.items() if r.item.retention_days is not None}
