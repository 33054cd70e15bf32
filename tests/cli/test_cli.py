"""The command line contract: --json objects, exit statuses, located errors without tracebacks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main
from tests.support.project import write_config


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else {}), err


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str) -> str:
    path = write_config(tmp_path, sqlite_url)
    with (tmp_path / "p.csv").open("w", encoding="gbk", newline="") as f:
        w = csv.writer(f)
        w.writerow(["居民编号", "姓名", "手机号码", "户籍类型", "承包耕地面积", "出生日期"])
        w.writerow(["A1", "张三", "13800000001", "农村", "5", "1970-01-01"])
        w.writerow(["A2", "李四", "13800000002", "农村", "", "1970-13-01"])
        w.writerow(["A3", "王五", "13800000003", "城镇", "2", ""])
    return str(path)


def test_import_json_and_partial_exit(capsys: pytest.CaptureFixture[str], cfg: str, tmp_path: Path) -> None:
    code, out, _ = run(capsys, "--config", cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    assert code == 3
    assert (out["imported"], out["updated"], out["rejected"]) == (2, 0, 1)
    assert out["errors"] == [{"row": 3, "column": "出生日期", "message": "'1970-13-01' is not a valid date"}]


def test_full_flow_through_the_cli(capsys: pytest.CaptureFixture[str], cfg: str, tmp_path: Path) -> None:
    run(capsys, "--config", cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    code, out, _ = run(
        capsys, "--config", cfg, "rules", "preview", "farm-subsidy-2026", "--on", "2026-04-01", "--json"
    )
    assert code == 0 and (out["match"], out["no_match"], out["review"]) == (1, 1, 0)
    assert out["by_channel"] == {"sms": 1, "email": 0, "letter": 0, "none": 0}
    assert (
        out["sms_segments"] == 2
        and out["samples"][0]["body"].count("张*") == 1
        and "张三" not in out["samples"][0]["body"]
    )
    code, out, _ = run(
        capsys, "--config", cfg, "rules", "explain", "farm-subsidy-2026", "A3", "--on", "2026-04-01", "--json"
    )
    assert out["result"] == "no_match"
    assert [(c["id"], c["result"], c["value"]) for c in out["conditions"]] == [
        ("rural", "fail", "urban"),
        ("has_land", "pass", "2"),
    ]
    code, out, _ = run(
        capsys,
        "--config",
        cfg,
        "runs",
        "create",
        "farm-subsidy-2026",
        "--on",
        "2026-04-01",
        "--by",
        "clerk",
        "--json",
    )
    assert (code, out["run"], out["status"], out["audience"]) == (0, 1, "awaiting_approval", 1)
    code, _, err = run(capsys, "--config", cfg, "runs", "approve", "1", "--by", "clerk", "--json")
    assert code == 1 and "creator cannot approve" in err and "Traceback" not in err
    for who in ("r1", "r2"):
        code, out, _ = run(capsys, "--config", cfg, "runs", "approve", "1", "--by", who, "--json")
    assert out["status"] == "approved" and len(out["approvals"]) == 2
    code, out, _ = run(capsys, "--config", cfg, "send", "--until-idle", "--json")
    assert (code, out["sent"], out["failed"], out["remaining"]) == (0, 1, 0, 0)
    code, out, _ = run(capsys, "--config", cfg, "runs", "show", "1", "--json")
    assert out["counts"]["delivered"] == 1 and out["status"] == "completed" and len(out["version"]) == 64
    code, out, _ = run(capsys, "--config", cfg, "runs", "list", "--json")
    assert [(r["run"], r["rule"], r["audience"]) for r in out["runs"]] == [(1, "farm-subsidy-2026", 1)]
    code, out, _ = run(capsys, "--config", cfg, "audit", "verify", "--json")
    assert out["ok"] is True and out["events"] >= 6 and out["first_bad"] is None


def test_rules_check_reports_every_broken_file(
    capsys: pytest.CaptureFixture[str], cfg: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    bad = (
        (rules / "farm-subsidy-2026.yaml")
        .read_text(encoding="utf-8")
        .replace("equals: rural", "equals: rurall")
    )
    (rules / "farm-subsidy-2026.yaml").write_text(bad, encoding="utf-8")
    tmpl = tmp_path / "templates" / "housing_repair.sms.j2"
    tmpl.write_text("{{ resident.name }}\n{{ resident.nickname }}\n", encoding="utf-8")
    code, out, _ = run(capsys, "--config", cfg, "rules", "check", "--json")
    assert code == 1 and out["ok"] is False
    where = {(Path(e["file"]).name, e["line"]) for e in out["errors"]}
    assert ("farm-subsidy-2026.yaml", 17) in where
    assert ("housing_repair.sms.j2", 2) in where
    assert out["tests"]["passed"] >= 3  # the other rules' tests still ran


def test_errors_without_traceback_and_usage_status(tmp_path: Path) -> None:
    env_cmd = [sys.executable, "-m", "notifier", "--config", str(tmp_path / "missing.toml"), "runs", "list"]
    p = subprocess.run(env_cmd, capture_output=True, text=True)
    assert p.returncode == 1 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "notifier", "runs", "approve"], capture_output=True, text=True)
    assert p.returncode == 2 and "usage" in p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "notifier",
            "--debug",
            "--config",
            str(tmp_path / "missing.toml"),
            "runs",
            "list",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1 and "Traceback" in p.stderr


def test_init_creates_a_working_project(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "init", str(tmp_path / "county"), "--json")
    assert code == 0 and Path(out["config"]).is_file() and out["database"].endswith("county/notifier.db")
    assert (tmp_path / "county" / "rules" / "fields.yaml").is_file()
    code, out, _ = run(capsys, "--config", out["config"], "rules", "check", "--json")
    assert code == 0 and out["ok"] and out["tests"]["failed"] == 0


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "demo", "--dir", str(tmp_path / "demo"), "--residents", "400", "--json")
    assert code == 0 and out["audit"]["ok"]
    assert out["residents"]["rejected"] == len(out["residents"]["rejected_rows"]) >= 3
    assert out["residents"]["imported"] + out["residents"]["rejected"] == 400
    assert all(r["status"] == "completed" for r in out["runs"])
    emails = sum(r["by_channel"].get("email", 0) for r in out["runs"])
    assert emails > 0 and out["mailbox"]["messages"] == emails
    assert len(list((tmp_path / "demo" / "mailbox").glob("*.eml"))) == emails


def test_rules_approve_and_schedule_list(capsys: pytest.CaptureFixture[str], cfg: str) -> None:
    code, out, _ = run(
        capsys, "--config", cfg, "rules", "approve", "dibao-monthly-payment", "--by", "li", "--json"
    )
    assert code == 0 and out["approved"] is False and out["approvals"][0]["level_name"] == "科室审核"
    code, out, _ = run(
        capsys, "--config", cfg, "rules", "approve", "dibao-monthly-payment", "--by", "wang", "--json"
    )
    assert out["approved"] is True
    code, out, _ = run(capsys, "--config", cfg, "schedule", "list", "--json")
    by_rule = {n["rule"]: n for n in out["notices"]}
    assert set(by_rule) == {"dibao-monthly-payment", "farm-subsidy-2026", "rural-housing-repair-2026"}
    dibao = by_rule["dibao-monthly-payment"]
    assert dibao["approved"] and dibao["schedule"] == {"cron": "0 9 5 * *"} and dibao["last"] is None
    assert dibao["next"].endswith("T09:00:00+08:00") and dibao["next"][8:10] == "05"
    assert by_rule["farm-subsidy-2026"]["approved"] is False
