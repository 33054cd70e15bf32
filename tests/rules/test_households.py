"""Households and contacts (`notify:`): one notice per household addressed to its head, one per
contact across households, never the same text twice to one phone; read from a real roster
whose 户号 / 户主 columns land in household_id / is_head."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.errors import RuleError
from notifier.preview import preview
from notifier.residents.importer import import_residents
from notifier.rules.load import read_rule
from notifier.rules.model import Rule
from notifier.runs import create_run
from notifier.storage.schema import deliveries, run_messages

ON = date(2026, 3, 1)
RULE = """\
id: household-rule
item: {title: 耕地补贴, domain: farm_subsidy, department: 县农业农村局, url: https://example.gov.cn/gd,
       publish: {from: 2026-01-01, until: 2027-12-31}, disclosure: public}
parameters:
  rate_per_mu: {unit: 元/亩, reference: 某县农发〔2026〕12号, values: {2026-01-01: 100}}
match: {all: [{id: land, field: farmland_mu, greater_than: 0}]}
amount: {per: {param: rate_per_mu, times_field: farmland_mu}}
channels: [sms, letter]
templates: {sms: household.sms.j2, letter: household.sms.j2}
"""
# Columns: 居民编号 姓名 手机号码 地址 村 户号 户主 承包耕地面积
ROSTER = [
    ["H1-1", "张大", "13800000001", "东村1号", "东村", "H1", "否", "1"],
    ["H1-2", "张二", "13800000002", "东村1号", "东村", "H1", "是", ""],  # the head, not matched
    ["H1-3", "张三", "13800000003", "东村1号", "东村", "H1", "否", "2"],
    ["H2-1", "李大", "13800000011", "西村2号", "西村", "H2", "", "3"],  # no head named: first member
    ["H2-2", "李二", "13800000012", "西村2号", "西村", "H2", "", "4"],
    ["H3-1", "王大", "13800000011", "西村3号", "西村", "H3", "是", "5"],  # shares H2-1's phone
    ["S-1", "赵单", "13800000021", "南村4号", "南村", "", "", "6"],  # no household: their own
]


def setup(
    app: App, project: Path, notify: str, sms: str = "{{ resident.name }}您好：补贴{{ amount | yuan }}。"
) -> Rule:
    folder = project.parent
    (folder / "templates" / "household.sms.j2").write_text(sms, encoding="utf-8")
    path = folder / "rules" / "household-rule.yaml"
    path.write_text(RULE + f"notify: {notify}\n", encoding="utf-8")
    roster = folder / "people.csv"
    with roster.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [["居民编号", "姓名", "手机号码", "地址", "村", "户号", "户主", "承包耕地面积"], *ROSTER]
        )
    report = import_residents(app, roster)
    assert report.imported + report.updated + report.unchanged == len(ROSTER), report.as_json()
    return read_rule(path, app.dictionary, app.config.templates_dir)


def sent(app: App, run: int) -> dict[str, tuple[str, str | None, int | None, str]]:
    d, m = deliveries, run_messages
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.resident_id, d.c.status, d.c.reason, m.c.amount, m.c.body)
            .join(m, m.c.id == d.c.message_id)
            .where(d.c.run_id == run)
        )
        return {r.resident_id: (r.status, r.reason, r.amount, r.body) for r in rows}


def test_roster_headers_fill_household_fields(app: App, project: Path) -> None:
    setup(app, project, "household")
    t = app.residents
    with app.engine.connect() as conn:
        got = {
            r[0]: (r[1], r[2])
            for r in conn.execute(sa.select(t.c.resident_id, t.c.f_household_id, t.c.f_is_head))
        }
    assert got["H1-2"] == ("H1", True) and got["H1-1"] == ("H1", False) and got["S-1"] == (None, None)


def test_one_notice_per_household_to_its_head(app: App, project: Path) -> None:
    rule = setup(app, project, "household")
    p = preview(app, rule, ON)
    assert p.counts["match"] == 6 and p.notices == 4  # residents and notices, separately
    assert p.as_json()["notify"] == "household" and p.as_json()["notices"] == 4
    assert p.amount is not None and p.amount.total == Decimal_("2100.00")
    got = sent(app, create_run(app, rule, ON, "clerk").run)
    assert set(got) == {"H1-2", "H2-1", "H3-1", "S-1"}  # H1's head although not matched; H2's first member
    assert got["H1-2"][2] == 30000 and "张二您好：补贴300.00元" in got["H1-2"][3]
    assert got["H2-1"][2] == 70000 and got["S-1"][2] == 60000
    # H2 and H3 are two households sharing one phone: two notices, different text (names, sums)
    assert got["H2-1"][0] == got["H3-1"][0] == "pending"


def test_one_notice_per_contact_across_households(app: App, project: Path) -> None:
    rule = setup(app, project, "contact")
    got = sent(app, create_run(app, rule, ON, "clerk").run)
    assert "H3-1" not in got and got["H2-1"][2] == 80000  # H2-1 (3 mu) and H3-1 (5 mu) share a phone
    assert {"H1-1", "H1-3", "H2-2", "S-1"} <= set(got)
    assert preview(app, rule, ON).notices == 5


def test_never_the_same_text_twice_to_one_phone(app: App, project: Path) -> None:
    rule = setup(app, project, "resident", sms="您家的耕地补贴已发放，请查收。")
    got = sent(app, create_run(app, rule, ON, "clerk").run)
    assert got["H2-1"][0] == "pending"
    assert got["H3-1"][:2] == ("skipped", "same notice to the same recipient as resident H2-1")
    assert sum(1 for status, *_ in got.values() if status == "pending") == 5
    # different text to the same phone (the amount differs) is two notices
    rule = setup(app, project, "resident", sms="您家的耕地补贴{{ amount | yuan }}已发放。")
    with app.engine.begin() as conn:
        conn.execute(deliveries.delete())
    got = sent(app, create_run(app, rule, ON, "clerk").run)
    assert got["H2-1"][0] == got["H3-1"][0] == "pending"


def test_notify_household_needs_the_field(app: App, project: Path) -> None:
    folder = project.parent
    (folder / "templates" / "household.sms.j2").write_text("x", encoding="utf-8")
    fields = folder / "rules" / "fields.yaml"
    fields.write_text(fields.read_text(encoding="utf-8").split("  # Households")[0], encoding="utf-8")
    from notifier.fields import load_dictionary

    path = folder / "rules" / "household-rule.yaml"
    path.write_text(RULE + "notify: household\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        read_rule(path, load_dictionary(fields), app.config.templates_dir)
    assert [(p.line, p.column) for p in caught.value.problems] == [(10, 9)]
    assert "needs a household_id field" in caught.value.problems[0].message
    path.write_text(RULE + "notify: family\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        read_rule(path, app.dictionary, app.config.templates_dir)
    assert "notify must be resident, household or contact" in caught.value.problems[0].message


def Decimal_(text: str):  # type: ignore[no-untyped-def]
    from decimal import Decimal

    return Decimal(text)
