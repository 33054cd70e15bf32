"""Change notices (`audience: changes`): the first run is a full one; later runs notify only who
joined, who left (the rule now decides against them) and — never anyone undecided or unchanged —
each with its own template; coverage, the audit log and the resident's history say which kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.audit.coverage import coverage, resident_history
from notifier.errors import RuleError
from notifier.identity import Role, add_account
from notifier.residents.importer import import_residents
from notifier.rules.checking import check_rules
from notifier.storage.schema import run_eligible, run_messages
from tests.console.test_runs import PW, browser_of
from tests.support.campaign import ON, PEOPLE, approve_all, audit_rows, by_resident, rule, send, write_roster
from tests.support.cli import cli

RULE = """\
id: farm-changes
item:
  title: 耕地地力保护补贴名单变动通知
  domain: farm_subsidy
  department: 县农业农村局
  url: https://example.gov.cn/zwgk/gdbt
  publish: {from: 2026-01-01, until: 2027-12-31}
  disclosure: public
audience: changes
match:
  all:
    - {id: rural, label: 农村户籍, field: registration, equals: rural}
    - {id: has_land, label: 有承包耕地, field: farmland_mu, greater_than: 0}
channels: [sms, email, letter]
templates:
  sms: {joined: c_joined.sms.j2, left: c_left.sms.j2, changed: c_changed.sms.j2}
  email: {joined: c_joined.email.j2, left: c_left.email.j2, changed: c_changed.email.j2}
  letter: {joined: c_joined.letter.j2, left: c_left.letter.j2, changed: c_changed.letter.j2}
"""
WORDS = {"joined": "已纳入补贴名单", "left": "已不再符合补贴条件", "changed": "补贴金额有变化"}


def _project(app: App) -> None:
    (app.config.rules_dir / "farm-changes.yaml").write_text(RULE, encoding="utf-8")
    for kind, words in WORDS.items():
        t = app.config.templates_dir
        (t / f"c_{kind}.sms.j2").write_text(
            f'【县农业农村局】{{{{ resident.name | default("居民") }}}}您好：您家{words}。回TD退订',
            encoding="utf-8",
        )
        (t / f"c_{kind}.email.j2").write_text(
            f"{{% block subject %}}{words}{{% endblock %}}{{% block body %}}您家{words}。{{% endblock %}}",
            encoding="utf-8",
        )
        (t / f"c_{kind}.letter.j2").write_text(f"<p>您家{words}。</p>", encoding="utf-8")


def _people(**changes: tuple[str, str]) -> list[list[str]]:
    """The village with some residents' registration and land changed: F06=("农村", "4")."""
    out = []
    for row in PEOPLE:
        row = list(row)
        if row[0] in changes:
            row[7], row[8] = changes[row[0]]
        out.append(row)
    return out


def _completed_run(app: App) -> int:
    run_id = runs.create_run(app, rule(app, "farm-changes"), ON, "clerk").run
    approve_all(app, run_id)
    send(app, run_id)
    assert runs.show_run(app, run_id)["status"] == "completed"
    return run_id


def _kinds(app: App, run_id: int) -> dict[str, str]:
    return {rid: d.change_kind for rid, d in by_resident(app, run_id).items()}


def _bodies(app: App, run_id: int) -> dict[str, str]:
    with app.engine.connect() as conn:
        m = run_messages
        return {
            r.resident_id: r.body
            for r in conn.execute(
                sa.select(m.c.resident_id, m.c.body, m.c.channel).where(m.c.run_id == run_id)
            )
        }


def test_the_first_run_is_full_and_later_runs_notify_only_the_changes(
    papp: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(papp)
    first = _completed_run(papp)
    assert _kinds(papp, first) == dict.fromkeys(["F01", "F02", "F03", "F04", "F05"], "joined")
    assert all(WORDS["joined"] in b for b in _bodies(papp, first).values())

    # F01 gave up the land (the rule now says no), F02's land was not re-entered (undecided),
    # F06 registered as rural and F07's land was entered (both newly eligible)
    import_residents(
        papp,
        write_roster(
            tmp_path / "v2.csv",
            _people(F01=("农村", "0"), F02=("农村", ""), F06=("农村", "4"), F07=("农村", "2")),
        ),
    )
    code, shown, _ = cli(
        capsys, papp.config.path, "rules", "preview", "farm-changes", "--on", "2026-04-02", "--json"
    )
    assert code == 0
    created = runs.create_run(papp, rule(papp, "farm-changes"), ON.replace(day=2), "clerk")
    assert shown["changes"] == created.changes  # the preview says what the run then does
    assert created.changes == {
        "baseline_run": first,
        "joined": 2,
        "left": 1,
        "changed": 0,
        "unchanged": 3,  # F03, F04, F05
        "undecided": 1,  # F02: never told they left while the data is missing
        "gone": 0,
    }
    second = created.run
    assert _kinds(papp, second) == {"F01": "left", "F06": "joined", "F07": "joined"}
    bodies = _bodies(papp, second)
    assert WORDS["left"] in bodies["F01"] and WORDS["joined"] in bodies["F06"]
    assert by_resident(papp, second)["F01"].status == "pending"  # a new notice: its own dated key
    ((_, payload),) = [(s, p) for s, p in audit_rows(papp, "run.created") if s == f"run:{second}"]
    assert payload["changes"] == created.changes and payload["audience"] == 3
    with papp.engine.connect() as conn:
        kept = set(
            conn.execute(
                sa.select(run_eligible.c.resident_id).where(run_eligible.c.run_id == second)
            ).scalars()
        )
    assert kept == {"F02", "F03", "F04", "F05", "F06", "F07"}  # F02 still eligible, F01 not

    approve_all(papp, second)
    send(papp, second)
    cov, rows = coverage(papp, second)
    per = {r["resident"]: r["change"] for r in rows}
    assert per == {"F01": "left", "F06": "joined", "F07": "joined"} and cov.by_change == {
        "left": 1,
        "joined": 2,
    }
    assert cov.balanced
    assert [h["change"] for h in resident_history(papp, "F01").deliveries] == ["joined", "left"]
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "r" * 40)
    admin = add_account(papp, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(papp, admin, "zhang", frozenset({Role.OPERATOR}), password=PW)
    page = browser_of(papp, "zhang").get(f"/runs/{second}")
    assert "变动通知" in page.text and "新纳入 2 · 不再符合 1 · 金额变化 0" in page.text

    # F01 takes land again: joined once more; nobody else changed, F02 still undecided
    import_residents(
        papp,
        write_roster(tmp_path / "v3.csv", _people(F02=("农村", ""), F06=("农村", "4"), F07=("农村", "2"))),
    )
    third = runs.create_run(papp, rule(papp, "farm-changes"), ON.replace(day=3), "clerk")
    assert third.changes is not None and third.changes["baseline_run"] == second
    assert _kinds(papp, third.run) == {"F01": "joined"}


AMOUNT_RULE = RULE.replace(
    "audience: changes\n",
    "parameters:\n  rate: {unit: 元/亩, reference: 某县农发〔2026〕12号, values: {2026-01-01: 100}}\n"
    "audience: changes\namount: {per: {param: rate, times_field: farmland_mu}}\n",
)


def test_an_amount_that_changed_gets_the_changed_notice_with_the_new_amount(
    papp: App, tmp_path: Path
) -> None:
    _project(papp)
    (papp.config.rules_dir / "farm-changes.yaml").write_text(AMOUNT_RULE, encoding="utf-8")
    (papp.config.templates_dir / "c_changed.sms.j2").write_text(
        "【县农业农村局】您家补贴金额有变化，现为{{ amount | yuan }}。回TD退订", encoding="utf-8"
    )
    first = _completed_run(papp)
    with papp.engine.connect() as conn:
        m = run_messages
        stated = dict(
            conn.execute(
                sa.select(m.c.resident_id, m.c.amount).where(m.c.run_id == first, m.c.channel == "sms")
            ).all()
        )
    assert stated["F01"] == 55000  # 5.5 亩 x 100 元, in fen: what the next change run compares with
    # F01's land grows from 5.5 to 7 mu: same eligibility, a new amount; F03's stays
    import_residents(papp, write_roster(tmp_path / "v2.csv", _people(F01=("农村", "7"))))
    created = runs.create_run(papp, rule(papp, "farm-changes"), ON.replace(day=2), "clerk")
    assert created.changes is not None
    assert (created.changes["changed"], created.changes["joined"], created.changes["left"]) == (1, 0, 0)
    assert _kinds(papp, created.run) == {"F01": "changed"}
    assert "现为700.00元" in _bodies(papp, created.run)["F01"]
    with papp.engine.connect() as conn:
        e = run_eligible
        kept = dict(
            conn.execute(sa.select(e.c.resident_id, e.c.amount).where(e.c.run_id == created.run)).all()
        )
    assert kept["F01"] == 70000 and kept["F03"] == 20000


def test_a_change_run_before_any_completed_run_compares_with_nothing(papp: App) -> None:
    """A run cancelled or still waiting for approval is no baseline: only completed runs are."""
    _project(papp)
    pending = runs.create_run(papp, rule(papp, "farm-changes"), ON, "clerk").run
    again = runs.create_run(papp, rule(papp, "farm-changes"), ON.replace(day=2), "clerk")
    assert again.changes is not None and again.changes["baseline_run"] is None
    assert set(_kinds(papp, again.run).values()) == {"joined"} and pending != again.run


def test_a_change_rule_needs_every_kind_of_template_and_says_where(papp: App) -> None:
    _project(papp)
    path = papp.config.rules_dir / "farm-changes.yaml"
    path.write_text(RULE.replace(", changed: c_changed.sms.j2}", "}"), encoding="utf-8")
    report = check_rules([path], papp.config.rules_dir / "fields.yaml", papp.config.templates_dir)
    assert [(e.line, e.column, e.message) for e in report.errors] == [
        (16, 8, "templates.sms has no changed template (audience: changes)")
    ]
    path.write_text(RULE.replace("audience: changes", "audience: change"), encoding="utf-8")
    with pytest.raises(RuleError) as err:
        rule(papp, "farm-changes")
    assert [(p.line, p.message) for p in err.value.problems][0] == (
        9,
        'audience must be all or changes (did you mean "changes"?)',
    )


def test_a_broken_change_template_is_checked_for_its_own_kind(papp: App) -> None:
    _project(papp)
    (papp.config.templates_dir / "c_left.sms.j2").write_text("{{ resident.village }}的通知", encoding="utf-8")
    path = papp.config.rules_dir / "farm-changes.yaml"
    report = check_rules([path], papp.config.rules_dir / "fields.yaml", papp.config.templates_dir)
    assert any(e.file and e.file.endswith("c_left.sms.j2") for e in report.errors), report.errors
