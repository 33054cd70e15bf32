"""`serve` never dies of one bad rule file or a locked database (issue 9, item 13): a real
`notifier serve` process logs a broken file (file:line) and a rule id defined twice (both files),
keeps the other rules scheduled, reports /healthz `degraded` while a second real connection holds
SQLite's write lock, recovers to `ok` and sends once the lock is gone. Through the CLI, a rule id
in two files is an error in check, preview, runs create and schedule list, and a broken or
unreadable file breaks none of them for the other rules."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main
from tests.support.campaign import approved_run, rule, sms_project, statuses
from tests.support.project import free_port, write_config
from tests.support.twilio_server import TwilioServer
from tests.support.webserver import http, start_serve, stop_serve, wait_for

BROKEN = "id: broken-rule\nitem:\n  title: [unclosed\n"  # YAML error: the stream ends (line 4) inside [


def add_bad_files(rules: Path) -> None:
    """A YAML error, a file that cannot be read (a folder), and a second file with dibao's id."""
    (rules / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    (rules / "folder.yaml").mkdir()
    shutil.copyfile(rules / "dibao-monthly-payment.yaml", rules / "dibao-copy.yaml")


def health(port: int) -> tuple[int, dict[str, Any]]:
    status, _, body = http("GET", f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(body)


def test_serve_survives_bad_rule_files_and_a_locked_database(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> None:
    port = free_port()
    cfg = sms_project(tmp_path, sqlite_url, tserver, port, "[schedule]\nlease_seconds = 1.5\n")
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace(
            "[database]\n", "[database]\nbusy_timeout_seconds = 0.3\n", 1
        ),
        encoding="utf-8",
    )
    add_bad_files(tmp_path / "rules")
    proc = start_serve(cfg, port)
    lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        assert health(port) == (200, {"ok": True, "database": "ok", "status": "ok", "degraded": {}})
        lock.execute("BEGIN IMMEDIATE")  # another process holds the write lock

        def degraded() -> bool:
            status, body = health(port)
            return status == 503 and body["status"] == "degraded" and "dispatch" in body["degraded"]

        wait_for(degraded, 20, "/healthz to report degraded")
        status, body = health(port)
        assert body["ok"] is False and body["database"] == "ok"
        assert body["degraded"]["dispatch"].startswith("database is locked; retrying in")
        wait_for(lambda: "scheduler" in health(port)[1]["degraded"], 20, "the scheduler to see the lock")
        assert proc.poll() is None  # still serving
        lock.execute("ROLLBACK")
        wait_for(
            lambda: health(port) == (200, {"ok": True, "database": "ok", "status": "ok", "degraded": {}}),
            30,
            "/healthz to recover",
        )
        approved_run(cfg)  # and it still sends
        wait_for(lambda: statuses(cfg).get("sent") == 10, 30, "the run to be sent after the lock")
        code, err = stop_serve(proc)
    finally:
        lock.close()
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    rules = tmp_path / "rules"
    assert f"rule file skipped: {rules / 'broken.yaml'}:4:1: invalid YAML" in err
    assert f"rule file skipped: {rules / 'folder.yaml'}:1:1: cannot read" in err
    dup = [line for line in err.splitlines() if "rule id 'dibao-monthly-payment' is also defined in" in line]
    assert len(dup) == 2 and all(
        str(rules / "dibao-copy.yaml") in x and str(rules / "dibao-monthly-payment.yaml") in x for x in dup
    )
    assert "schedule added: farm-subsidy-2026, rural-housing-repair-2026" in err  # the others are scheduled
    assert "dispatch: database is locked; retrying in" in err and "recovered" in err
    assert "Traceback" not in err


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else {}), err


def test_a_rule_id_in_two_files_is_an_error_everywhere_and_bad_files_break_nothing_else(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sqlite_url: str
) -> None:
    cfg = str(write_config(tmp_path, sqlite_url))
    rules = tmp_path / "rules"
    add_bad_files(rules)
    both = (str(rules / "dibao-copy.yaml"), str(rules / "dibao-monthly-payment.yaml"))

    code, out, _ = run(capsys, "--config", cfg, "rules", "check", "--json")
    assert code == 1
    dup = [e for e in out["errors"] if "is also defined in" in e["message"]]
    assert sorted(e["file"] for e in dup) == sorted(both) and all(e["line"] == 2 for e in dup)
    assert any(e["file"] == str(rules / "broken.yaml") and e["line"] == 4 for e in out["errors"])

    for argv in (
        ("rules", "preview", "dibao-monthly-payment", "--on", "2026-03-05"),
        ("runs", "create", "dibao-monthly-payment", "--on", "2026-03-05", "--by", "clerk"),
    ):
        code, _, err = run(capsys, "--config", cfg, *argv)
        assert code == 1 and "Traceback" not in err
        assert "rule 'dibao-monthly-payment' is defined in 2 files" in err and all(f in err for f in both), (
            err
        )

    # The other rules are untouched by the broken, unreadable and duplicated files.
    code, out, _ = run(
        capsys, "--config", cfg, "rules", "preview", "farm-subsidy-2026", "--on", "2026-04-01", "--json"
    )
    assert code == 0 and out["rule"] == "farm-subsidy-2026"
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
    assert code == 0 and out["status"] == "awaiting_approval"
    code, out, _ = run(capsys, "--config", cfg, "rules", "preview", "--all", "--on", "2026-04-01", "--json")
    assert code == 3 and {r["rule"] for r in out["rules"]} == {
        "farm-subsidy-2026",
        "rural-housing-repair-2026",
    }
    code, out, _ = run(capsys, "--config", cfg, "schedule", "list", "--json")
    assert code == 3 and {n["rule"] for n in out["notices"]} == {
        "farm-subsidy-2026",
        "rural-housing-repair-2026",
    }
    assert sorted(e["file"] for e in out["errors"] if "is also defined in" in e["message"]) == sorted(both)
    code, _, err = run(capsys, "--config", cfg, "schedule", "list")  # the table says so too, on stderr
    assert code == 3 and "is also defined in" in err and "broken.yaml:4:" in err


def test_a_firing_waits_out_a_locked_database_instead_of_being_lost(tmp_path: Path, sqlite_url: str) -> None:
    """The job APScheduler runs for a firing retries with backoff while another connection holds
    the write lock, and the firing then happens once (the real clock: due a minute ago)."""
    import threading
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import sqlalchemy as sa

    from notifier.app import App
    from notifier.health import Health
    from notifier.scheduling.approval import approve_rule
    from notifier.scheduling.scheduler import NoticeScheduler, run_firing
    from notifier.storage.schema import firings

    cfg = write_config(tmp_path, sqlite_url)
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace(
            "[database]\n", "[database]\nbusy_timeout_seconds = 0.3\n", 1
        ),
        encoding="utf-8",
    )
    due = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(minutes=1)).replace(microsecond=0, tzinfo=None)
    f = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    f.write_text(
        f.read_text(encoding="utf-8")
        .replace("schedule: {once: 2026-04-01T09:00}", f"schedule: {{once: {due.isoformat()}}}")
        .replace("until: 2027-12-31", "until: 2099-12-31")
        .replace("from: 2026-01-01", "from: 2000-01-01"),
        encoding="utf-8",
    )
    app = App.open(cfg)
    health = Health()
    scheduler = NoticeScheduler(app, "locked-test", health)
    lock = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    try:
        for who in ("reviewer1", "reviewer2"):
            approve_rule(app, rule(app), who)
        lock.execute("BEGIN IMMEDIATE")
        seen: list[dict[str, Any]] = []

        def release() -> None:
            wait_for(lambda: bool(health.as_json()["degraded"]), 10, "the firing to meet the lock")
            seen.append(health.as_json())
            lock.execute("ROLLBACK")

        t = threading.Thread(target=release)
        t.start()
        run_firing("locked-test", "farm-subsidy-2026")
        t.join(10)
        assert seen and seen[0]["degraded"]["firing farm-subsidy-2026"].startswith(
            "database is locked; retrying in"
        )
        assert health.as_json() == {"status": "ok", "degraded": {}}
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(firings.c.status)).scalars().all() == ["created"]
    finally:
        lock.close()
        scheduler.shutdown()
        app.close()
