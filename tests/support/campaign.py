"""Campaigns as the tests run them: a register of residents (a village whose members each show one
channel or gate), the farm-subsidy rule, a run approved at both levels and sent by the real
Dispatcher at a fixed noon, an SMS project against the local Twilio server, and reads of what a
campaign left in the database."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.channels.registry import providers_for
from notifier.delivery.dispatch import Dispatcher
from notifier.residents.importer import import_residents
from notifier.rules.load import find_rule
from notifier.rules.model import Rule
from notifier.samplegen import generate, write_csv
from notifier.storage.schema import audit_events, deliveries

from .project import write_config
from .twilio_provider import sms_config
from .twilio_server import TwilioServer

ON = date(2026, 4, 1)
NOON = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)  # 12:00 in Asia/Shanghai

HEADER = [
    "居民编号",
    "姓名",
    "手机号码",
    "电子邮箱",
    "家庭住址",
    "乡镇",
    "村",
    "户籍类型",
    "承包耕地面积",
    "首选通知方式",
]
PEOPLE = [
    ["F01", "王一", "13800000001", "", "东村1号", "城关镇", "东村", "农村", "5.5", ""],  # sms
    [
        "F02",
        "王二",
        "",
        "wang2@example.com",
        "东村2号",
        "城关镇",
        "东村",
        "农村",
        "3",
        "",
    ],  # email (no phone)
    [
        "F03",
        "王三",
        "0371-65123456",
        "",
        "东村3号",
        "城关镇",
        "东村",
        "农村",
        "2",
        "",
    ],  # letter (landline only)
    ["F04", "王四", "", "", "", "城关镇", "东村", "农村", "1", ""],  # no contact -> skipped
    [
        "F05",
        "王五",
        "13800000005",
        "wang5@example.com",
        "东村5号",
        "城关镇",
        "东村",
        "农村",
        "4",
        "邮件",
    ],  # prefers email
    ["F06", "王六", "13800000006", "", "东村6号", "城关镇", "东村", "城镇", "4", ""],  # urban: no match
    ["F07", "王七", "13800000007", "", "西村7号", "河口乡", "西村", "农村", "", ""],  # no land: review
]

# Residents of the SMS project: one village, every one reachable by SMS only.
PHONES = [f"138000002{i:02d}" for i in range(1, 11)]


def write_roster(path: Path, people: list[list[str]], encoding: str = "utf-8") -> Path:
    """A residents CSV with the register's Chinese header, as a county exports it."""
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows([HEADER, *people])
    return path


def open_window(folder: Path) -> None:
    """The farm-subsidy item published until 2099: for sends on the real clock (`notifier send`,
    `serve`), which the item's own window would one day close."""
    rule_file = folder / "rules" / "farm-subsidy-2026.yaml"
    rule_file.write_text(
        rule_file.read_text(encoding="utf-8").replace("until: 2027-12-31", "until: 2099-12-31"),
        encoding="utf-8",
    )


def rule(app: App, rule_id: str = "farm-subsidy-2026") -> Rule:
    return find_rule(rule_id, app.config.rules_dir, app.dictionary, app.config.templates_dir)


def send(app: App, run_id: int | None = None, now: datetime = NOON) -> Any:
    """Everything sendable, sent by the real Dispatcher at `now` until nothing is left to do."""
    return asyncio.run(
        Dispatcher(app, providers_for(app.config), now=lambda: now).run(run_id, until_idle=True)
    )


def approve_all(app: App, run_id: int) -> None:
    runs.approve_run(app, run_id, "reviewer1")
    runs.approve_run(app, run_id, "reviewer2")


def campaign(app: App, folder: Path) -> int:
    """Import, create, approve at both levels, send: a real run with a dozen audit events."""
    import_residents(app, write_roster(folder / "people.csv", PEOPLE))
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    send(app, run_id)
    return run_id


def by_resident(app: App, run_id: int) -> dict[str, Any]:
    with app.engine.connect() as conn:
        return {
            r.resident_id: r for r in conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id))
        }


def audit_rows(app: App, action: str) -> list[tuple[str, dict[str, Any]]]:
    """(subject, payload) of every audit event with this action, in order."""
    with app.engine.connect() as conn:
        return [
            (s, json.loads(p))
            for s, p in conn.execute(
                sa.select(audit_events.c.subject, audit_events.c.payload)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.seq)
            )
        ]


BLANKED = ("户籍类型", "承包耕地面积", "家庭人均年收入", "低保金额", "房屋安全等级")


def sample_register(folder: Path, n: int) -> tuple[Path, Path]:
    """Generated residents and grants CSVs, with some cells the sample rules read left empty
    (so some residents are `review`)."""
    sample = generate(n, seed=11, today=date(2026, 3, 1))  # fixed: the data must not depend on today
    cols = [sample.residents_header.index(h) for h in BLANKED]
    for i, row in enumerate(sample.residents_rows):
        if i % 7 == 0:
            row[cols[i // 7 % len(cols)]] = ""
    write_csv(folder / "residents.csv", sample.residents_header, sample.residents_rows)
    write_csv(folder / "grants.csv", sample.grants_header, sample.grants_rows)
    return folder / "residents.csv", folder / "grants.csv"


# -- e-mail through the local SMTP server ---------------------------------------------------
def smtp_project(folder: Path, db_url: str, port: int, connections: int = 1) -> Path:
    """A project sending e-mail as the county's civil affairs bureau through the SMTP server on
    127.0.0.1:port; no waiting between attempts."""
    return write_config(
        folder,
        db_url,
        f"""
[sending]
retry_base_seconds = 0
settle_seconds = 0
[channels.email]
providers = ["smtp"]
[providers.smtp]
host = "127.0.0.1"
port = {port}
from = "县民政局 <notice@example.gov.cn>"
connections = {connections}
timeout = 5
""",
    )


# -- SMS through the local Twilio server, receipts to the web app ----------------------------
def sms_project(
    tmp_path: Path,
    db_url: str,
    server: TwilioServer,
    port: int,
    extra: str = "",
    shutdown_timeout: float = 20,
    twilio: str = "",
) -> Path:
    """A project sending SMS through the test Twilio server, receipts to 127.0.0.1:port (`twilio`:
    more lines of its provider table). The rule's publication window is widened: `serve` runs on
    the real clock."""
    callback = (
        f'status_callback_url = "http://127.0.0.1:{port}/twilio/status"\nrate_per_second = 1000\n{twilio}'
    )
    serve = f"[serve]\nport = {port}\ndispatch_interval_seconds = 0.2\n"
    serve += f"shutdown_timeout_seconds = {shutdown_timeout}\n"
    cfg = write_config(tmp_path, db_url, sms_config(server, extra, callback) + serve)
    open_window(tmp_path)
    write_roster(
        tmp_path / "p.csv",
        [
            [f"S{i:02d}", f"张{i}", phone, "", f"南村{i}号", "城关镇", "南村", "农村", "2", ""]
            for i, phone in enumerate(PHONES, 1)
        ],
    )
    return cfg


def approved_run(cfg: Path) -> int:
    """The project's residents imported and a farm-subsidy run approved at both levels."""
    app = App.open(cfg)
    try:
        import_residents(app, cfg.parent / "p.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        return run_id
    finally:
        app.close()


def sid_of(server: TwilioServer, phone: str) -> str:
    return next(m.sid for m in server.messages if m.to == "+86" + phone)


def statuses(cfg: Path) -> dict[str, int]:
    """How many SMS deliveries are in each status, read through a fresh App (as another process)."""
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            return dict(
                conn.execute(
                    sa.select(deliveries.c.status, sa.func.count())
                    .where(deliveries.c.channel == "sms")
                    .group_by(deliveries.c.status)
                )
                .tuples()
                .all()
            )
    finally:
        app.close()
