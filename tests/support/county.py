"""A small county for the delivery tests: residents imported, a farm-subsidy run created and
approved, sent to the outbox (SMS, e-mail) and letters (the default providers)."""

from __future__ import annotations

import csv
from datetime import date, datetime, timezone
from pathlib import Path

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.rules.load import find_rule

from .project import write_config

ON = date(2026, 4, 1)
NOON = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)  # 12:00 in Asia/Shanghai
HEADER = ["居民编号", "姓名", "手机号码", "电子邮箱", "家庭住址", "乡镇", "村", "户籍类型", "承包耕地面积"]


def county(tmp_path: Path, db_url: str, phones: int = 3, extra: str = "") -> App:
    """An app whose register holds `phones` rural residents reachable by SMS (and e-mail)."""
    cfg = write_config(tmp_path, db_url, extra)
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [
                HEADER,
                *[
                    [f"D{i:02d}", f"李{i}", f"1380000{i:04d}", f"li{i}@example.com", f"东村{i}号"]
                    + ["城关镇", "东村", "农村", "2"]
                    for i in range(1, phones + 1)
                ],
            ]
        )
    app = App.open(cfg)
    import_residents(app, tmp_path / "p.csv")
    return app


def approved_run(app: App, rule_id: str = "farm-subsidy-2026") -> int:
    rule = find_rule(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)
    run_id = runs.create_run(app, rule, ON, "clerk").run
    runs.approve_run(app, run_id, "reviewer1")
    runs.approve_run(app, run_id, "reviewer2")
    return run_id
