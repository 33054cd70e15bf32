"""`notifier demo`: the whole flow on generated sample data, offline, with local sinks.

Generates a county register (GBK CSV, as exported by many office spreadsheets) with some bad
rows, imports it and past grants, then for each sample notice: preview -> create -> two
approvals -> send. SMS go to the outbox, e-mail to a local SMTP server (aiosmtpd) started
here, letters to a printable HTML file and roster per run.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from .output import console, emit_json, err_console, progress_bar

MARKER = ".notifier-demo"
REPO = Path(__file__).resolve().parent.parent
CREATOR, REVIEWERS = "zhang.keyuan", ("li.kezhang", "wang.juzhang")


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
''',
        encoding="utf-8",
    )
    return cfg


def run_demo(target: Path, n: int, *, as_json: bool = False) -> int:
    from aiosmtpd.controller import Controller

    from . import runs
    from .app import App
    from .audit import log as audit
    from .channels.registry import providers_for
    from .clock import local_today
    from .delivery.dispatch import Dispatcher
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
        quiet = as_json
        with progress_bar("importing residents", None, not quiet) as (adv, total):
            imp = import_residents(app, target / "residents.csv", actor=CREATOR, progress=adv, on_total=total)
        grants = import_records(app, "grants", target / "grants.csv", actor=CREATOR)
        rules, problems = load_rules(
            rule_files(app.config.rules_dir), app.dictionary, app.config.templates_dir
        )
        if problems:
            for p in problems:
                err_console.print(str(p), markup=False)
            return 1
        results = []
        for rule in rules.values():
            pv = preview(app, rule, on, sample=5)
            created = runs.create_run(app, rule, on, CREATOR)
            for reviewer in REVIEWERS:
                runs.approve_run(app, created.run, reviewer)
            dispatcher = Dispatcher(app, providers_for(app.config))
            with progress_bar(f"sending {rule.id}", created.audience, not quiet) as (adv, _):
                report = asyncio.run(dispatcher.run(created.run, until_idle=True, progress=adv))
            shown = runs.show_run(app, created.run)
            results.append(
                {
                    "rule": rule.id,
                    "run": created.run,
                    "match": pv["match"],
                    "review": pv["review"],
                    "sms_segments": pv["sms_segments"],
                    "by_channel": report.by_channel,
                    "skipped": shown["counts"]["skipped"],
                    "failed": shown["counts"]["failed"],
                    "status": shown["status"],
                    "sample": next((s for s in pv["samples"] if s["channel"] == "sms"), None),
                }
            )
        with app.reader.connect() as conn:
            verified = audit.verify(conn)
        app.close()
    finally:
        controller.stop()
    summary = {
        "dir": str(target),
        "residents": {
            "imported": imp.imported,
            "rejected": imp.rejected,
            "rejected_rows": sorted({e.row for e in imp.errors}),
            "warnings": len(imp.warnings),
        },
        "grants": {"imported": grants.imported, "rejected": grants.rejected},
        "runs": results,
        "outbox": str(target / "outbox"),
        "letters": str(target / "letters"),
        "mailbox": {"dir": str(mailbox.folder), "messages": mailbox.count},
        "audit": {"ok": verified.ok, "events": verified.events},
    }
    if as_json:
        emit_json(summary)
        return 0
    _print_summary(summary, on)
    return 0


def _print_summary(s: dict[str, Any], on: Any) -> None:
    r = s["residents"]
    console.print(f"\n[bold]notifier demo[/bold] — {on}, folder {s['dir']}")
    console.print(
        f"residents.csv (GBK): imported {r['imported']}, rejected {r['rejected']} "
        f"(rows {', '.join(map(str, r['rejected_rows']))}), {r['warnings']} contact warnings; "
        f"grants imported {s['grants']['imported']}"
    )
    t = Table(title="campaigns")
    for col in (
        "rule",
        "run",
        "matched",
        "review",
        "SMS",
        "SMS parts",
        "e-mail",
        "letter",
        "skipped",
        "failed",
        "status",
    ):
        t.add_column(col, justify="right" if col not in ("rule", "status") else "left")
    for x in s["runs"]:
        bc = x["by_channel"]
        t.add_row(
            x["rule"],
            str(x["run"]),
            str(x["match"]),
            str(x["review"]),
            str(bc.get("sms", 0)),
            str(x["sms_segments"]),
            str(bc.get("email", 0)),
            str(bc.get("letter", 0)),
            str(x["skipped"]),
            str(x["failed"]),
            x["status"],
        )
    console.print(t)
    first = next((x["sample"] for x in s["runs"] if x["sample"]), None)
    if first:
        console.print(
            f"sample ({first['channel']}, personal data masked): {first['body'][:200]}", markup=False
        )
    console.print(
        f"SMS outbox:   {s['outbox']}/run-N/*.sms.txt\nletters:      {s['letters']}/run-N.html (+ roster CSV)\n"
        f"e-mail:       {s['mailbox']['messages']} messages received by the local SMTP server in {s['mailbox']['dir']}\n"
        f"audit log:    {s['audit']['events']} events, chain " + ("intact" if s["audit"]["ok"] else "BROKEN")
    )
    console.print("try: notifier --config demo/notifier.toml runs list")
