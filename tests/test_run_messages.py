"""What is sent is what was approved (issue 9, items 1-4, 11, 18; DESIGN §14 invariant 7):
messages are rendered when a run is created and stored; approvers page through them; the
dispatcher and fallbacks send the stored text whatever the register says later; a run whose
templates cannot render, would print a missing value, or is dated outside the item's window
is refused; four-eyes holds whatever the spelling of a name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.rendering.templates import digest
from notifier.storage.schema import audit_events, deliveries, run_messages, runs
from tests.support.campaign import ON, approved_run, open_window, send, sid_of, sms_project, write_roster
from tests.support.cli import cli
from tests.support.project import free_port, write_config
from tests.support.twilio_server import TwilioServer
from tests.support.webserver import WebThread, wait_for

PEOPLE = [
    ["M01", "王一", "13800000001", "", "东村1号", "城关镇", "东村", "农村", "5.5", ""],  # sms
    ["M02", "王二", "", "wang2@example.com", "东村2号", "城关镇", "东村", "农村", "3", ""],  # email
    ["M03", "王三", "0371-65123456", "", "东村3号", "城关镇", "东村", "农村", "2", ""],  # letter
    ["M04", "", "13800000004", "", "", "", "", "农村", "1", ""],  # no name, no village
]


def county(tmp_path: Path, db_url: str, people: list[list[str]] = PEOPLE) -> Path:
    """A county folder whose farm-subsidy window covers the real clock (`send` uses it)."""
    cfg = write_config(tmp_path, db_url)
    open_window(tmp_path)
    write_roster(tmp_path / "p.csv", people)
    return cfg


def outbox_text(cfg: Path, run_id: int, delivery_id: int, channel: str) -> str:
    return (cfg.parent / "outbox" / f"run-{run_id}" / f"{delivery_id:08d}.{channel}.txt").read_text(
        encoding="utf-8"
    )


def test_what_is_sent_is_what_was_approved(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = county(tmp_path, db_url)
    assert cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")[0] == 0
    code, created, _ = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk", "--json"
    )
    assert code == 0
    run_id = created["run"]

    # Approvers page through the stored messages, masked: amounts shown, names and numbers not.
    code, page, _ = cli(capsys, cfg, "runs", "messages", str(run_id), "--json")
    assert code == 0 and page["masked"] is True
    first = {(m["resident"], m["channel"]): m for m in page["messages"]}
    assert first[("M01", "sms")]["role"] == "first" and "¥605.00" in first[("M01", "sms")]["body"]
    assert first[("M01", "letter")]["role"] == "fallback if needed"  # rendered now, for a fallback
    assert "居民您好" in first[("M04", "sms")]["body"] and "None" not in json.dumps(page, ensure_ascii=False)
    text = json.dumps(page, ensure_ascii=False)
    assert (
        "王一" not in text and "13800000001" not in text and "wang2@example.com" not in text and "王*" in text
    )
    m02 = cli(capsys, cfg, "runs", "messages", str(run_id), "--resident", "M02", "--json")[1]
    assert [(m["channel"], m["role"]) for m in m02["messages"]] == [
        ("email", "first"),
        ("letter", "fallback if needed"),
    ]
    code, _, err = cli(capsys, cfg, "runs", "messages", str(run_id), "--unmask", "--by", "auditor")
    assert code == 1 and "unmask_allowed" in err

    # The register changes after creation: the run still sends what was approved.
    changed = [list(p) for p in PEOPLE]
    changed[0][1], changed[0][8] = "王一改", "9"
    cli(capsys, cfg, "residents", "import", str(write_roster(tmp_path / "q.csv", changed)), "--json")
    assert cli(capsys, cfg, "runs", "show", str(run_id), "--json")[1]["changed_since_created"] == 1
    for who in ("li", "wang"):
        assert cli(capsys, cfg, "runs", "approve", str(run_id), "--by", who, "--json")[0] == 0
    assert cli(capsys, cfg, "send", "--until-idle", "--json")[0] == 0

    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    deliveries,
                    run_messages.c.sha256,
                    run_messages.c.body.label("stored"),
                    run_messages.c.subject.label("stored_subject"),
                    run_messages.c.html.label("stored_html"),
                )
                .join(run_messages, run_messages.c.id == deliveries.c.message_id)
                .where(deliveries.c.run_id == run_id)
            ).all()
            claims = {
                e["sha256"]
                for e in map(
                    json.loads,
                    conn.execute(
                        sa.select(audit_events.c.payload).where(audit_events.c.action == "delivery.status")
                    ).scalars(),
                )
                if e.get("to") == "sending"
            }
    finally:
        app.close()
    m01 = next(r for r in rows if r.resident_id == "M01")
    sms = outbox_text(cfg, run_id, m01.id, "sms")
    assert "王一您好" in sms and "¥605.00" in sms and "王一改" not in sms and "¥990.00" not in sms
    for r in rows:  # every send is audited with the SHA-256 of exactly the stored text
        assert r.sha256 == digest(r.stored_subject, r.stored, r.stored_html) and r.sha256 in claims
        assert r.stored in outbox_text(cfg, run_id, r.id, r.channel) if r.channel != "letter" else True
    assert {r.resident_id for r in rows if r.status in ("sent", "delivered")} == {"M01", "M02", "M03", "M04"}


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_a_run_whose_templates_cannot_render_is_refused(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = county(tmp_path, sqlite_url)
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    sms = tmp_path / "templates" / "farm_subsidy.sms.j2"
    write(
        sms,
        "【县农业农村局】{{ resident.name | default('居民') }}："
        "每亩{{ (100 / (resident.farmland_mu - 2)) | money }}\n",
    )
    # A phone-holder with 2 mu makes the SMS divide by zero (M03 has 2 mu too, but a letter:
    # its SMS is never rendered): named, masked, and nothing is stored.
    cli(
        capsys,
        cfg,
        "residents",
        "import",
        str(
            write_roster(
                tmp_path / "r.csv",
                [["M05", "赵五", "13800000005", "", "", "城关镇", "东村", "农村", "2", ""]],
            )
        ),
        "--json",
    )
    code, out, err = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk"
    )
    assert code == 1 and "no run was created" in err and "1 resident(s)" in err
    assert "farm_subsidy.sms.j2:1" in err and "M05 赵*" in err and "赵五" not in err and "M03" not in err
    assert "DivisionByZero" in err
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            assert [
                conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (runs, deliveries, run_messages)
            ] == [0, 0, 0]
    finally:
        app.close()


def test_a_missing_value_never_prints(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template printing a value the rule does not require fails `rules check` and `runs
    create`, naming the variable; with `default` it passes and prints the default."""
    cfg = county(tmp_path, sqlite_url)
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    sms = tmp_path / "templates" / "farm_subsidy.sms.j2"
    write(
        sms, "{{ resident.name }}您好：您在{{ resident.village }}的承包耕地{{ resident.farmland_mu }}亩。\n"
    )
    code, report, _ = cli(capsys, cfg, "rules", "check", "--json")
    assert code == 1 and not report["ok"]
    messages = [e["message"] for e in report["errors"] if e["file"].endswith("farm_subsidy.sms.j2")]
    assert messages and "resident.name" in messages[0] and "default" in messages[0]
    assert not any("farmland_mu" in m for m in messages)  # the rule requires land: never missing for a match
    code, _, err = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk"
    )
    assert code == 1 and "resident.name has no value" in err and "M04" in err and "M01" not in err

    write(
        sms,
        "{{ resident.name | default('居民') }}您好"
        "{% if resident.village %}（{{ resident.village }}）{% endif %}："
        "承包耕地{{ resident.farmland_mu }}亩。\n",
    )
    assert cli(capsys, cfg, "rules", "check", "--json")[1]["ok"] is True
    code, created, _ = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk", "--json"
    )
    assert code == 0
    page = cli(capsys, cfg, "runs", "messages", str(created["run"]), "--resident", "M04", "--json")[1]
    assert [m["body"] for m in page["messages"] if m["channel"] == "sms"] == ["居民您好：承包耕地1亩。"]


def test_the_run_date_must_lie_inside_the_publication_window(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = county(tmp_path, sqlite_url)
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    code, _, err = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", "2025-12-31", "--by", "clerk"
    )
    assert code == 1 and "outside the publication window" in err and "2026-01-01" in err
    code, preview, _ = cli(
        capsys, cfg, "rules", "preview", "farm-subsidy-2026", "--on", "2025-12-31", "--json"
    )
    assert code == 0 and any("outside the publication window" in w for w in preview["warnings"])
    assert (
        cli(capsys, cfg, "rules", "preview", "farm-subsidy-2026", "--on", ON.isoformat(), "--json")[1][
            "warnings"
        ]
        == []
    )
    assert cli(capsys, cfg, "runs", "list", "--json")[1]["runs"] == []


def test_four_eyes_cannot_be_dodged_by_spelling(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = county(tmp_path, db_url)
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    run_id = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "Clerk", "--json"
    )[1]["run"]
    for creator in ("clerk", " CLERK ", "ｃｌｅｒｋ", "cle\u200brk"):
        code, _, err = cli(capsys, cfg, "runs", "approve", str(run_id), "--by", creator)
        assert code == 1 and "creator cannot approve" in err, creator
    assert cli(capsys, cfg, "runs", "approve", str(run_id), "--by", "Li", "--json")[0] == 0
    for again in ("li", "LI ", "Ｌｉ"):
        code, _, err = cli(capsys, cfg, "runs", "approve", str(run_id), "--by", again)
        assert code == 1 and "already approved" in err, again
    code, out, _ = cli(capsys, cfg, "runs", "approve", str(run_id), "--by", "wang", "--json")
    assert code == 0 and out["status"] == "approved"


def test_a_late_undelivered_receipt_reopens_the_run_and_the_fallback_goes_as_approved(
    tmp_path: Path, db_url: str, tserver: TwilioServer
) -> None:
    """The run completed; days later the carrier reports an SMS undelivered. The letter
    fallback is created, the run reopens so it is sent, and it goes to the address and with
    the text of run creation, although the register has changed since."""
    port = free_port()
    cfg = sms_project(tmp_path, db_url, tserver, port)
    run_id = approved_run(cfg)
    app = App.open(cfg)
    try:
        assert send(app, run_id).sent == 10
        assert _run_status(app, run_id) == "completed"
        from notifier.residents.importer import import_residents

        moved = [["S03", "张三改", "13800000203", "", "北村99号", "城关镇", "北村", "农村", "2", ""]]
        import_residents(app, write_roster(tmp_path / "moved.csv", moved))
        with WebThread(app, port):
            assert tserver.send_status_callbacks_sync(
                sid_of(tserver, "13800000203"), ("undelivered",), error_code=30003
            ) == [200]
            wait_for(lambda: _run_status(app, run_id) == "approved", 10, "the run to reopen")
        report = send(app, run_id)
        assert report.by_channel == {"letter": 1}
        assert _run_status(app, run_id) == "completed"
        letters = (tmp_path / "letters" / f"run-{run_id}.html").read_text(encoding="utf-8")
        assert (
            "南村3号" in letters
            and "张3" in letters
            and "北村99号" not in letters
            and "张三改" not in letters
        )
        with app.engine.connect() as conn:
            reopened = conn.execute(
                sa.select(audit_events.c.payload).where(audit_events.c.action == "run.reopened")
            ).all()
        assert len(reopened) == 1
    finally:
        app.close()


def _run_status(app: App, run_id: int) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one())


@pytest.mark.parametrize(
    "body, error",
    [
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
            "longer than 100,000",
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "took longer than 2 s",
        ),
        ("{{ '好' * 1000000000 }}", "would exceed 100,000 characters"),
        ("{{ 9 ** 999999 }}", "exponent"),
    ],
)
def test_rendering_is_bounded_in_time_and_size(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str], body: str, error: str
) -> None:
    cfg = county(tmp_path, sqlite_url)
    write(tmp_path / "templates" / "farm_subsidy.sms.j2", "第一行\n" + body + "\n")
    code, report, _ = cli(capsys, cfg, "rules", "check", "--json")
    problems = [e for e in report["errors"] if e["file"].endswith("farm_subsidy.sms.j2")]
    assert (code, len(problems)) == (1, 1), report
    assert error in problems[0]["message"] and problems[0]["line"] == 2


def test_a_scheduled_firing_whose_templates_cannot_render_is_recorded_not_raised(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import datetime, timezone

    from notifier.rules.load import find_rule
    from notifier.scheduling.firing import fire
    from notifier.storage.schema import firings

    cfg = county(tmp_path, sqlite_url)
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    write(tmp_path / "templates" / "farm_subsidy.sms.j2", "{{ resident.name }}您好\n")  # M04 has no name
    for who in ("li", "wang"):
        cli(capsys, cfg, "rules", "approve", "farm-subsidy-2026", "--by", who, "--json")
    assert (
        cli(capsys, cfg, "rules", "approve", "farm-subsidy-2026", "--by", "ＬＩ ")[0] == 1
    )  # one person, one level
    app = App.open(cfg)
    try:
        rule = find_rule("farm-subsidy-2026", app.config.rules_dir, app.dictionary, app.config.templates_dir)
        at = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
        got = fire(app, rule, at, now=at)
        assert got.status == "refused" and got.run is None and "resident.name" in (got.reason or "")
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(firings.c.status)).scalars().all() == ["refused"]
            assert conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar_one() == 0
    finally:
        app.close()


def test_unmasked_messages_are_allowed_only_by_configuration_and_audited(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = county(tmp_path, sqlite_url)
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[audit]\nunmask_allowed = true\n", encoding="utf-8")
    cli(capsys, cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    run_id = cli(
        capsys, cfg, "runs", "create", "farm-subsidy-2026", "--on", ON.isoformat(), "--by", "clerk", "--json"
    )[1]["run"]
    assert cli(capsys, cfg, "runs", "messages", str(run_id), "--unmask")[0] == 1  # who unmasks must be said
    code, page, _ = cli(
        capsys,
        cfg,
        "runs",
        "messages",
        str(run_id),
        "--unmask",
        "--by",
        "auditor",
        "--resident",
        "M01",
        "--reason",
        "居民来电核实",
        "--json",
    )
    assert code == 0 and page["masked"] is False and "王一您好" in page["messages"][0]["body"]
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            events = conn.execute(
                sa.select(audit_events.c.actor, audit_events.c.payload).where(
                    audit_events.c.action == "run.messages_unmasked"
                )
            ).all()
    finally:
        app.close()
    assert [(a, json.loads(p)["resident"], json.loads(p)["reason"]) for a, p in events] == [
        ("auditor", "M01", "居民来电核实")
    ]
