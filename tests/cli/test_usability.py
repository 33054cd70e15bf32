"""Small things a user hit (issue 9, item 20): no database created outside a county folder, a
folder given to `residents import`, a missed one-time firing shown as missed, local times with
their offset, tables (not JSON) from `runs` on a terminal, and `send` saying why nothing went."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from notifier.app import App
from notifier.cli import main
from tests.support.project import write_config

RULE = "farm-subsidy-2026"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def notifier(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NOTIFIER_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "notifier", *argv], cwd=cwd, env=env, capture_output=True, text=True
    )


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = write_config(tmp_path, sqlite_url)
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [
                ["居民编号", "姓名", "手机号码", "户籍类型", "承包耕地面积"],
                ["A1", "张三", "13800000001", "农村", "5"],
                ["A2", "李四", "13800000002", "农村", "3"],
            ]
        )
    assert main(["--config", str(path), "residents", "import", str(tmp_path / "p.csv"), "--json"]) == 0
    capsys.readouterr()
    return str(path)


def edit_rule(folder: Path, rule_id: str, old: str, new: str) -> None:
    f = folder / "rules" / f"{rule_id}.yaml"
    text = f.read_text(encoding="utf-8")
    assert old in text
    f.write_text(text.replace(old, new), encoding="utf-8")


def test_outside_a_county_folder_nothing_is_created_and_the_error_says_what_was_looked_for(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    for argv in (("runs", "list"), ("residents", "import", "x.csv"), ("send",)):
        p = notifier(elsewhere, *argv)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert f"looked for {elsewhere / 'notifier.toml'}" in p.stderr
        assert "--config PATH" in p.stderr and "`cd`" in p.stderr
    assert list(elsewhere.iterdir()) == []  # no notifier.db, no outbox, nothing


def test_residents_import_of_a_folder_is_a_clear_error(tmp_path: Path, cfg: str) -> None:
    (tmp_path / "rosters").mkdir()
    p = notifier(tmp_path, "--config", cfg, "residents", "import", str(tmp_path / "rosters"))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert f"{tmp_path / 'rosters'}: is a folder" in p.stderr


def test_schedule_list_shows_a_missed_one_time_firing_as_missed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: str
) -> None:
    edit_rule(tmp_path, RULE, "schedule: {once: 2026-04-01T09:00}", "schedule: {once: 2000-04-01T09:00}")
    edit_rule(
        tmp_path,
        "rural-housing-repair-2026",
        "schedule: {once: 2026-03-02T09:00}",
        "schedule: {once: 2999-03-02T09:00}",
    )
    code, out, _ = run(capsys, "--config", cfg, "schedule", "list", "--json")
    by_rule = {n["rule"]: n for n in json.loads(out)["notices"]}
    assert code == 0
    assert (by_rule[RULE]["state"], by_rule[RULE]["next"]) == ("missed", None)
    ahead = by_rule["rural-housing-repair-2026"]
    assert (ahead["state"], ahead["next"]) == ("scheduled", "2999-03-02T09:00:00+08:00")
    code, out, _ = run(capsys, "--config", cfg, "schedule", "list")
    line = next(x for x in out.splitlines() if RULE in x)
    assert "missed" in line and "2000-04-01 09:00" not in line.split("missed", 1)[1]  # not shown as next
    assert "2999-03-02 09:00 +08:00" in next(x for x in out.splitlines() if "rural-housing" in x)


def test_runs_print_tables_with_local_times_and_json_only_when_asked(
    capsys: pytest.CaptureFixture[str], cfg: str
) -> None:
    from notifier.output import local_time

    code, out, _ = run(capsys, "--config", cfg, "runs", "create", RULE, "--on", "2026-04-01", "--by", "clerk")
    assert (
        code == 0
        and not out.lstrip().startswith("{")
        and "run 1 created" in out
        and "awaiting_approval" in out
    )
    code, out, _ = run(capsys, "--config", cfg, "runs", "approve", "1", "--by", "r1")
    assert (
        code == 0
        and not out.lstrip().startswith("{")
        and "1 of 2 levels approved" in out
        and "科室审核" in out
    )
    code, out, _ = run(capsys, "--config", cfg, "runs", "show", "1", "--json")
    shown = json.loads(out)
    created = local_time(shown["created_at"], App.open(cfg).config.timezone)
    assert created.endswith(" +08:00") and len(created) == len("2026-03-02 09:00 +08:00")
    assert datetime.fromisoformat(shown["created_at"]).utcoffset() is not None  # JSON: ISO 8601 with offset
    code, out, _ = run(capsys, "--config", cfg, "runs", "show", "1")
    assert code == 0 and not out.lstrip().startswith("{")
    assert f"{created} by clerk" in out and "deliveries" in out and "pending" in out
    code, out, _ = run(capsys, "--config", cfg, "runs", "list")
    assert created in out
    code, out, _ = run(capsys, "--config", cfg, "runs", "cancel", "1", "--by", "clerk")
    assert code == 0 and out.strip() == "run 1: cancelled; 2 pending deliveries skipped"
    code, out, _ = run(capsys, "--config", cfg, "runs", "show", "1", "--json")
    assert json.loads(out)["status"] == "cancelled"


def test_local_time_uses_the_configured_zone_and_its_offset() -> None:
    from zoneinfo import ZoneInfo

    from notifier.output import local_time

    at = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    assert local_time(at, ZoneInfo("Asia/Shanghai")) == "2026-03-02 09:00 +08:00"
    assert local_time("2026-03-02T01:00:00+00:00", ZoneInfo("America/St_Johns")) == "2026-03-01 21:30 -03:30"
    assert (
        local_time(datetime(2026, 3, 2, 1, 0), ZoneInfo("Asia/Shanghai")) == "2026-03-02 09:00 +08:00"
    )  # naive = UTC


def test_send_says_why_nothing_went(capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: str) -> None:
    code, out, err = run(capsys, "--config", cfg, "send", "--json")
    assert code == 0 and [r["reason"] for r in json.loads(out)["idle_reasons"]] == ["no_pending"]
    run(capsys, "--config", cfg, "runs", "create", RULE, "--on", "2026-04-01", "--by", "clerk", "--json")
    code, out, err = run(capsys, "--config", cfg, "send", "--json")
    sent = json.loads(out)
    assert (code, sent["sent"]) == (0, 0)
    assert [(r["reason"], r["runs"]) for r in sent["idle_reasons"]] == [("awaiting_approval", [1])]
    assert "run 1 (0 of 2 levels)" in sent["idle_reasons"][0]["message"]
    code, out, err = run(capsys, "--config", cfg, "send")
    assert "nothing sent: not approved yet: run 1 (0 of 2 levels)" in err
    # An approved run, created ahead for an item published only from a later date, waits and says so.
    edit_rule(
        tmp_path,
        RULE,
        "publish: {from: 2026-01-01, until: 2027-12-31}",
        "publish: {from: 2999-03-01, until: 2999-12-31}",
    )
    run(capsys, "--config", cfg, "runs", "cancel", "1", "--by", "clerk")
    run(capsys, "--config", cfg, "runs", "create", RULE, "--on", "2999-03-01", "--by", "clerk")
    for who in ("r1", "r2"):
        run(capsys, "--config", cfg, "runs", "approve", "2", "--by", who)
    code, out, err = run(capsys, "--config", cfg, "send", "--json")
    sent = json.loads(out)
    assert sent["sent"] == 0 and [(r["reason"], r["run"]) for r in sent["idle_reasons"]] == [
        ("outside_window", 2)
    ]
    assert "published from 2999-03-01" in sent["idle_reasons"][0]["message"]


def test_idle_reasons_quiet_hours_until(tmp_path: Path, db_url: str) -> None:
    """Quiet hours depend on the time, so the reason is asked for at fixed times (real database)."""
    cfg = write_config(tmp_path, db_url)
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace(
            "[quiet_hours]\nenabled = false", "[quiet_hours]\nenabled = true"
        ),
        encoding="utf-8",
    )
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [
                ["居民编号", "姓名", "手机号码", "户籍类型", "承包耕地面积"],
                ["A1", "张三", "13800000001", "农村", "5"],
            ]
        )
    from notifier import runs
    from notifier.delivery.why import idle_reasons
    from notifier.residents.importer import import_residents
    from tests.support.campaign import ON, approve_all, rule

    app = App.open(cfg)
    try:
        import_residents(app, tmp_path / "p.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        night = datetime(2026, 4, 1, 14, 30, tzinfo=timezone.utc)  # 22:30 in Asia/Shanghai
        reasons: list[dict[str, Any]] = idle_reasons(app, night)
        assert [(r["reason"], r["until"]) for r in reasons] == [("quiet_hours", "2026-04-02T08:00:00+08:00")]
        assert reasons[0]["message"].startswith("quiet hours until 08:00")
        assert (
            idle_reasons(app, datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)) == []
        )  # noon: nothing holds it
        assert idle_reasons(app, night, run_id + 1)[0]["reason"] == "no_run"
    finally:
        app.close()
