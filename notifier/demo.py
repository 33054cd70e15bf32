"""`notifier demo`: the whole flow on generated sample data, offline, with local sinks.

Generates a county register (GBK CSV, as exported by many office spreadsheets) with some bad
rows, imports it and past grants, then for each sample notice: preview -> create -> two
approvals -> send. SMS go to the outbox, e-mail to a local SMTP server (aiosmtpd) started
here, letters to a printable HTML file and roster per run and one PDF (with its 签收 roster) per village.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .output import progress_bar

if TYPE_CHECKING:
    from .app import App
    from .identity import Account
    from .residents.importer import ImportReport

MARKER = ".notifier-demo"
REPO = Path(__file__).resolve().parent.parent
STAFF = (  # (name, display, role, approval levels): the demo county's own accounts
    ("zhang.keyuan", "张科员", "operator", ()),
    ("li.kezhang", "李科长", "reviewer", (1,)),
    ("wang.juzhang", "王局长", "reviewer", (2,)),
)


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps each accepted message as a .eml file."""

    folder: Path
    count: int = 0
    recipients: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        self.recipients.extend(envelope.rcpt_tos)
        (self.folder / f"{self.count:06d}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 OK"


@dataclass(frozen=True)
class DemoRun:
    """One sample notice taken from preview to sent."""

    rule: str
    run: int
    match: int
    review: int
    sms_segments: int
    by_channel: dict[str, int]
    skipped: int
    failed: int
    status: str
    sample: dict[str, Any] | None  # the first SMS sample of the preview, masked

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "run": self.run,
            "match": self.match,
            "review": self.review,
            "sms_segments": self.sms_segments,
            "by_channel": self.by_channel,
            "skipped": self.skipped,
            "failed": self.failed,
            "status": self.status,
            "sample": self.sample,
        }


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did and where it left the files to look at."""

    dir: Path
    on: date
    residents: ImportReport  # of residents.csv
    grants: ImportReport  # of grants.csv
    runs: list[DemoRun]
    mailbox_dir: Path
    mailbox_messages: int
    audit_ok: bool
    audit_events: int

    @property
    def outbox(self) -> Path:
        return self.dir / "outbox"

    @property
    def letters(self) -> Path:
        return self.dir / "letters"

    def as_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.dir),
            "residents": {
                "imported": self.residents.imported,
                "rejected": self.residents.rejected,
                "rejected_rows": sorted({e.row for e in self.residents.errors}),
                "warnings": len(self.residents.warnings),
            },
            "grants": {"imported": self.grants.imported, "rejected": self.grants.rejected},
            "runs": [r.as_json() for r in self.runs],
            "outbox": str(self.outbox),
            "letters": str(self.letters),
            "mailbox": {"dir": str(self.mailbox_dir), "messages": self.mailbox_messages},
            "audit": {"ok": self.audit_ok, "events": self.audit_events},
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare_dir(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        if not (target / MARKER).exists():
            raise SystemExit(f"{target} exists and is not a demo folder; choose another with --dir")
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / MARKER).write_text("created by `notifier demo`; safe to delete\n")
    (target / "mailbox").mkdir()


def _write_config(target: Path, smtp_port: int) -> Path:
    cfg = target / "notifier.toml"
    cfg.write_text(
        f'''# written by `notifier demo`
[database]
url = "sqlite:///notifier.db"

[paths]
rules = "{REPO / "rules"}"
templates = "{REPO / "templates"}"
fields = "{REPO / "rules" / "fields.yaml"}"

[quiet_hours]
enabled = false   # the demo sends at any hour; real configurations hold SMS from 21:00 to 08:00

[channels.sms]
providers = ["outbox"]
price_per_segment = 0.05

[channels.email]
providers = ["smtp"]

[channels.letter]
providers = ["letter"]

[providers.smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "县民政局 <notice@example.gov.cn>"
connections = 4

[providers.letter]
sender = "某某县民政局"
return_address = "城关镇人民路1号"
return_postcode = "450001"
phone = "0371-12345678"

[serve]
public_url = "http://127.0.0.1:8080"   # letters' QR codes point at /v here (`notifier serve`)

[verification]
secret = "{secrets.token_urlsafe(32)}"   # a real county keeps it in NOTIFIER_VERIFY_SECRET
contact_phone = "0371-12345678"
''',
        encoding="utf-8",
    )
    return cfg


def _staff(app: App) -> list[Account]:
    """An admin and the demo's staff (no passwords: the demo acts for them directly)."""
    from .identity import Role, add_account
    from .identity.permissions import parse_roles

    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), display="系统管理员")
    return [
        add_account(app, admin, name, parse_roles([role]), levels=levels, display=display)
        for name, display, role, levels in STAFF
    ]


def run_demo(target: Path, n: int, *, progress: bool = True) -> DemoSummary:
    """Raises RuleError if the sample rules do not load."""
    from aiosmtpd.controller import Controller

    from . import runs
    from .app import App
    from .audit import log as audit
    from .channels.registry import providers_for
    from .clock import local_today
    from .delivery.dispatch import Dispatcher
    from .errors import RuleError
    from .preview import preview
    from .residents.importer import import_records, import_residents
    from .rules.load import load_rules, rule_files
    from .samplegen import generate, write_csv

    target = target.resolve()
    _prepare_dir(target)
    sample = generate(n, invalid=max(3, n // 400))
    write_csv(target / "residents.csv", sample.residents_header, sample.residents_rows, encoding="gbk")
    write_csv(target / "grants.csv", sample.grants_header, sample.grants_rows, encoding="utf-8")
    mailbox = Mailbox(target / "mailbox")
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = App.open(_write_config(target, port))
        on = local_today(app.config.timezone)
        creator, *reviewers = _staff(app)
        actor = creator.actor
        with progress_bar("importing residents", None, progress) as (adv, total):
            imp = import_residents(app, target / "residents.csv", actor=actor, progress=adv, on_total=total)
        grants = import_records(app, "grants", target / "grants.csv", actor=actor)
        rules, problems = load_rules(
            rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir
        )
        if problems:
            raise RuleError("the sample rules do not load", problems)
        results = []
        for rule in rules.values():
            pv = preview(app, rule, on, sample=5)
            created = runs.create_run(app, rule, on, actor)
            for reviewer in reviewers:
                runs.approve_run(app, created.run, reviewer.actor)
            dispatcher = Dispatcher(app, providers_for(app.config))
            with progress_bar(f"sending {rule.id}", created.audience, progress) as (adv, _):
                report = asyncio.run(dispatcher.run(created.run, until_idle=True, progress=adv))
            shown = runs.show_run(app, created.run)
            results.append(
                DemoRun(
                    rule=rule.id,
                    run=created.run,
                    match=pv.counts["match"],
                    review=pv.counts["review"],
                    sms_segments=pv.sms_segments,
                    by_channel=report.by_channel,
                    skipped=shown["counts"]["skipped"],
                    failed=shown["counts"]["failed"],
                    status=shown["status"],
                    sample=next((s.as_json() for s in pv.samples if s.channel == "sms"), None),
                )
            )
        with app.reader.connect() as conn:
            verified = audit.verify(conn)
        app.close()
    finally:
        controller.stop()
    return DemoSummary(
        target, on, imp, grants, results, mailbox.folder, mailbox.count, verified.ok, verified.events
    )
