"""Retention (issue 16, items 2, 3, 5): a campaign on SMS, e-mail and letter through the local
sinks, the residents leaving, the clock moved on, `retention apply`; then the audit chain, the
coverage counts, the resident's history, the run's pages and the public /v page still answer, and
neither the database (every byte of the SQLite file and its WAL; every row of every PostgreSQL
table) nor the project folder holds a phone number, name, e-mail or address of the campaign."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.audit.checkpoints import verification
from notifier.audit.coverage import coverage, resident_history
from notifier.audit.export import ExportFilter, export_events
from notifier.clock import utcnow
from notifier.residents.leaving import LeftAs, deactivate
from notifier.retention import PURGED
from notifier.retention.purge import apply_retention
from notifier.runs.read import run_deliveries, run_messages_page
from notifier.storage.schema import audit_events, deliveries, run_messages
from notifier.web import build_web_app
from tests.support.campaign import NOON, PEOPLE, campaign
from tests.support.cli import cli
from tests.support.project import write_config

SECRET = "county-verification-secret-0123456789"
EXTRA = """
[serve]
public_url = "https://notice.example.gov.cn"

[retention]
messages_days = 365
files_days = 365
left_residents_days = 365
"""
# Every personal value of the campaign's register: names, phones (as typed and the landline's
# digits), e-mail addresses, house addresses.
PERSONAL = sorted({v for p in PEOPLE for v in (p[1], p[2], p[3], p[4]) if v} | {"65123456", "13800000001"})


@pytest.fixture
def county(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    """A county whose SMS prints the verification code, the farm-subsidy item kept 30 days."""
    monkeypatch.setenv("NOTIFIER_VERIFY_SECRET", SECRET)
    cfg = write_config(tmp_path, db_url, EXTRA)
    sms = tmp_path / "templates" / "farm_subsidy.sms.j2"
    sms.write_text(sms.read_text(encoding="utf-8").rstrip() + " 核验码{{ verify_code }}\n", "utf-8")
    rule = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    rule.write_text(
        rule.read_text(encoding="utf-8").replace(
            "  disclosure: public\n", "  disclosure: public\n  retention_days: 30\n", 1
        ),
        encoding="utf-8",
    )
    a = App.open(cfg)
    yield a
    a.close()


def _codes(app: App) -> dict[tuple[str, str], str]:
    d, m = deliveries, run_messages
    with app.engine.connect() as conn:
        return {
            (r.resident_id, r.channel): r.verify_code
            for r in conn.execute(
                sa.select(d.c.resident_id, d.c.channel, m.c.verify_code)
                .join(m, m.c.id == d.c.message_id)
                .where(d.c.status.in_(["sent", "delivered"]))
            )
        }


def _coverage(app: App, run_id: int) -> dict[str, Any]:
    cov, rows = coverage(app, run_id)
    listed = list(rows)
    return {"totals": cov.as_json(), "rows": listed}


def _database_text(app: App, db_file: Path | None) -> bytes:
    """Everything the database holds: the SQLite file and its WAL byte for byte (free pages
    included), or every row of every PostgreSQL table as text."""
    if db_file is not None:
        return b"".join(
            p.read_bytes() for p in (db_file, db_file.with_name(db_file.name + "-wal")) if p.exists()
        )
    out = []
    with app.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            out += [str(r[0]) for r in conn.exec_driver_sql(f'SELECT t::text FROM "{table}" t')]
    return "\n".join(out).encode("utf-8")


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    """The project folder's files, apart from what the county wrote itself (config, rules,
    templates, the roster it imported) and the database (read above)."""
    skip = {"rules", "templates"}
    out = {}
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and rel.parts[0] not in skip and p.name not in ("people.csv", "notifier.toml"):
            if not p.name.startswith("notifier.db"):
                out[str(rel)] = p.read_bytes()
    return out


def _found(blob: bytes) -> list[str]:
    return [v for v in PERSONAL if v.encode("utf-8") in blob]


def test_a_campaign_after_retention_still_answers_and_holds_no_personal_data(
    county: App, tmp_path: Path, db_url: str
) -> None:
    app = county
    run_id = campaign(app, tmp_path)  # import, create, approve at both levels, send at NOON
    ids = [p[0] for p in PEOPLE]
    deactivate(app, ids, reason="moved away (test)", left_as=LeftAs.MOVED, by="clerk")
    codes = _codes(app)
    assert {ch for _, ch in codes} == {"sms", "email", "letter"}
    with app.engine.begin() as conn:  # as a provider's refusal is stored: quoting the number
        conn.execute(
            deliveries.update()
            .where(deliveries.c.resident_id == "F04")
            .values(reason="The 'To' number +8613800000005 is not a valid mobile number")
        )
    before = _coverage(app, run_id)
    history = resident_history(app, "F01").deliveries
    db_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    assert _found(_database_text(app, db_file))  # the test would see them
    files_before = _folder_bytes(tmp_path)
    assert any(k.startswith("outbox") for k in files_before) and any(
        k.startswith("letters") for k in files_before
    )
    assert any(k.endswith(".pdf") for k in files_before)
    assert _found(b"".join(files_before.values()))

    start = max(utcnow(), NOON)
    # Day 100: the item's own 30 days have passed for its messages and files; the residents'
    # 365 days after leaving have not.
    dry = apply_retention(app, now=start + timedelta(days=100), dry_run=True)
    assert (dry.runs, dry.residents) == (1, 0) and dry.messages > 0 and dry.files > 0
    assert _found(_database_text(app, db_file))  # a dry run changes nothing
    first = apply_retention(app, now=start + timedelta(days=100))
    assert (first.runs, first.messages, first.deliveries, first.files) == (
        1,
        dry.messages,
        dry.deliveries,
        dry.files,
    )
    assert first.residents == 0 and not _folder_bytes(tmp_path)
    with app.engine.connect() as conn:
        names = conn.execute(
            sa.select(app.residents.c.name).where(app.residents.c.name.is_not(None))
        ).scalars()
        assert set(names) == {p[1] for p in PEOPLE}  # still in the register: they left less than a year ago
    # Day 400: the residents' data goes too; a second apply finds nothing more to do.
    second = apply_retention(app, now=start + timedelta(days=400))
    assert (second.runs, second.files, second.residents) == (0, 0, len(PEOPLE))
    again = apply_retention(app, now=start + timedelta(days=401))
    assert (again.runs, again.messages, again.files, again.residents) == (0, 0, 0, 0)

    # Nothing personal is left anywhere.
    assert _found(_database_text(app, db_file)) == []
    assert _found(b"".join(_folder_bytes(tmp_path).values())) == []

    # ... and everything still answers.
    checked = verification(app)
    assert checked.result.ok, checked.result.reason
    assert _coverage(app, run_id) == before
    after = resident_history(app, "F01").deliveries
    assert [(d["run"], d["channel"], d["status"]) for d in after] == [
        (d["run"], d["channel"], d["status"]) for d in history
    ]
    assert all(d["recipient"] == PURGED for d in after) and history[0]["recipient"] != PURGED
    messages = run_messages_page(app, run_id)["messages"]
    assert messages and all(m["body"] == PURGED and m["recipient"] == PURGED for m in messages)
    assert all(len(m["sha256"]) == 64 for m in messages)  # the digest stays
    page = run_deliveries(app, run_id)["deliveries"]
    assert all(d["recipient"] == PURGED and d["name"] == PURGED for d in page)
    out = tmp_path / "export" / "audit.jsonl"
    export_events(app, out, "jsonl", ExportFilter())
    events = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    purges = [e for e in events if e.get("action", "").startswith("retention.")]
    assert [e["action"] for e in purges] == [
        "retention.purged",
        "retention.files_removed",
        "retention.residents_purged",
    ]
    assert json.loads(purges[0]["payload"])["messages"] == first.messages
    assert json.loads(purges[2]["payload"])["residents"] == len(PEOPLE)
    with TestClient(build_web_app(app, webhooks=[]), base_url="http://127.0.0.1") as client:
        for (_resident, _channel), code in codes.items():
            html = client.get(f"/v/{code}").text
            assert 'data-state="genuine"' in html and PURGED in html
            assert _found(html.encode("utf-8")) == []


def test_retention_apply_on_the_command_line(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`retention apply --dry-run --json` counts, `retention apply --json` removes, audited with
    who started it; `[retention]` 0 keeps for ever."""
    cfg = write_config(tmp_path, sqlite_url, "[retention]\nmessages_days = 1\nfiles_days = 0\n")
    app = App.open(cfg)
    try:
        campaign(app, tmp_path)  # sent at NOON 2026-04-01: more than a day before any clock running this
    finally:
        app.close()
    code, dry, _ = cli(capsys, cfg, "retention", "apply", "--dry-run", "--json", "--by", "admin")
    assert code == 0 and dry["dry_run"] and dry["runs"] == 1 and dry["messages"] > 0 and dry["files"] == 0
    code, done, _ = cli(capsys, cfg, "retention", "apply", "--json", "--by", "admin")
    assert code == 0 and (done["runs"], done["messages"]) == (1, dry["messages"])
    assert (tmp_path / "outbox").exists()  # files_days = 0: kept
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            bodies = set(conn.execute(sa.select(run_messages.c.body)).scalars())
        assert bodies == {""}
    finally:
        app.close()
    code, text, _ = cli(capsys, cfg, "audit", "verify", "--json")
    assert code == 0 and text["ok"]


def test_a_bad_retention_setting_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    from notifier.config import load_config
    from notifier.errors import ConfigError

    cfg = write_config(tmp_path, sqlite_url, "[retention]\nmessages_days = -1\n")
    with pytest.raises(ConfigError, match="messages_days must be 0"):
        load_config(cfg)
    cfg = write_config(tmp_path, sqlite_url, "[retention]\nmessage_days = 30\n")
    with pytest.raises(ConfigError, match="unknown key 'message_days'"):
        load_config(cfg)


def test_sqlite_connections_zero_what_they_free(tmp_path: Path, sqlite_url: str) -> None:
    """secure_delete on every connection (storage/db.py), whatever the SQLite build's default:
    removed values do not stay in free pages."""
    app = App.open(write_config(tmp_path, sqlite_url))
    try:
        with app.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar_one() == 1
    finally:
        app.close()


def test_serve_applies_retention_on_the_lease_holder_only(tmp_path: Path, sqlite_url: str) -> None:
    """The daily loop of `serve`: the process holding the scheduler lease purges; a standby
    on the same database does not."""
    import asyncio

    from notifier.scheduling.service import RetentionLoop, SchedulerLoop

    cfg = write_config(tmp_path, sqlite_url, "[retention]\nmessages_days = 1\n")
    app = App.open(cfg)
    try:
        run_id = campaign(app, tmp_path)  # completed at NOON 2026-04-01, long before any clock running this

        async def both() -> tuple[bool, bool]:
            holder, standby = SchedulerLoop(app, 3.0), SchedulerLoop(app, 3.0)
            await holder._round()
            await standby._round()
            loops = [RetentionLoop(app, s, check=0.05) for s in (standby, holder)]
            tasks = [asyncio.create_task(loop.run()) for loop in loops]
            for _ in range(200):
                await asyncio.sleep(0.05)
                if loops[1].last is not None:
                    break
            for loop in loops:
                loop.stopping.set()
            await asyncio.gather(*tasks)
            holder._stand_down()
            return loops[0].last is None, loops[1].last is not None

        assert asyncio.run(both()) == (True, True)
        with app.engine.connect() as conn:
            subjects = list(
                conn.execute(
                    sa.select(audit_events.c.subject).where(audit_events.c.action == "retention.purged")
                ).scalars()
            )
        assert subjects == [f"run:{run_id}"]
    finally:
        app.close()


@pytest.mark.parametrize("value", ["-3", "thirty", "1.5"])
def test_a_rule_with_a_bad_retention_days_is_refused(tmp_path: Path, sqlite_url: str, value: str) -> None:
    from notifier.errors import RuleError
    from notifier.rules.load import read_rule

    write_config(tmp_path, sqlite_url)
    rule = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    rule.write_text(
        rule.read_text(encoding="utf-8").replace(
            "  disclosure: public\n", f"  disclosure: public\n  retention_days: {value}\n", 1
        ),
        encoding="utf-8",
    )
    app = App.open(tmp_path / "notifier.toml")
    try:
        with pytest.raises(RuleError) as caught:
            read_rule(rule, app.dictionary, app.config.templates_dir)
    finally:
        app.close()
    assert any("retention_days must be a whole number" in p.message for p in caught.value.problems)
