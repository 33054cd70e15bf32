"""Amounts in rules (bands, per-unit x quantity, sums, caps, fen rounding) computed by the matching
query itself, on SQLite and PostgreSQL; their explanation, preview totals, embedded tests and
located errors."""

from __future__ import annotations

import json
import textwrap
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.app import App
from notifier.audience import evaluate
from notifier.cli import main
from notifier.errors import RuleError
from notifier.preview import explain, preview
from notifier.rendering.filters import yuan
from notifier.rules.checking import check_rules
from notifier.rules.compile import compile_rule, result_name
from notifier.rules.load import read_rule
from notifier.rules.model import Rule

HEAD = """\
id: amount-rule
item: {title: 高龄津贴, domain: elderly_care, department: 县民政局, url: https://example.gov.cn/gl,
       publish: {from: 2026-01-01, until: 2027-12-31}, disclosure: public}
parameters:
  rate_per_mu: {unit: 元/亩, reference: 某县农发〔2026〕12号, values: {2025-01-01: 105.5, 2026-07-01: 110}}
  elderly_bands:
    unit: 元/月
    reference: 某县民发〔2026〕3号
    values:
      2026-01-01: [[80, 89, 50], [90, 99, 100], [100, null, 300]]
      2026-07-01: [[80, 89, 60], [90, 99, 120], [100, null, 350]]
  cap: {unit: 元, reference: 某县财发〔2026〕1号, values: {2026-01-01: 500}}
  half: {unit: 元/亩, values: {2025-01-01: 0.5}}
match: {all: [{id: rural, label: 农村户籍, field: registration, equals: rural}]}
channels: [sms]
templates: {sms: amount.sms.j2}
"""
SMS = "【{{ item.department }}】您好：本期发放{{ amount | yuan }}。"


def make_rule(app: App, project: Path, amount: str, extra: str = "") -> Rule:
    (project.parent / "templates" / "amount.sms.j2").write_text(SMS, encoding="utf-8")
    path = project.parent / "rules" / "amount-rule.yaml"
    path.write_text(
        HEAD + "amount:\n" + textwrap.indent(textwrap.dedent(amount), "  ") + extra, encoding="utf-8"
    )
    return read_rule(path, app.dictionary, app.config.templates_dir)


def add(app: App, *people: dict[str, Any]) -> None:
    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        for p in people:
            values = {k if k in app.residents.c else f"f_{k}": v for k, v in p.items()}
            values.setdefault("f_registration", "rural")
            conn.execute(app.residents.insert().values(created_at=now, updated_at=now, **values))


def amounts(app: App, rule: Rule, on: date) -> dict[str, tuple[str, Decimal | None]]:
    c = compile_rule(rule, app.dictionary, app.residents, on)
    with app.engine.connect() as conn:
        return {
            r.resident_id: (result_name(r.result), None if r.amount is None else Decimal(int(r.amount)) / 100)
            for r in conn.execute(c.query)
        }


def test_bands_with_open_ends_and_dated_tables(app: App, project: Path) -> None:
    add(
        app,
        {"resident_id": "A79", "f_birth_date": date(1946, 7, 2)},  # 79 until 2026-07-01
        {"resident_id": "A80", "f_birth_date": date(1946, 7, 1)},  # 80 on 2026-07-01
        {"resident_id": "A95", "f_birth_date": date(1931, 1, 1)},
        {"resident_id": "A100", "f_birth_date": date(1926, 7, 1)},  # 100 on 2026-07-01
        {"resident_id": "A0"},  # no birth date
    )
    written = make_rule(
        app,
        project,
        "bands: {field: age, on: run_date, table: [[80, 89, 50], [90, 99, 100], [100, null, 300]]}",
    )
    june, july = date(2026, 6, 30), date(2026, 7, 1)
    assert amounts(app, written, june) == {
        "A79": ("match", Decimal(0)),
        "A80": ("match", Decimal(0)),  # still 79 the day before
        "A95": ("match", Decimal(100)),
        "A100": ("match", Decimal(100)),
        "A0": ("review", None),  # the amount cannot be computed: review, never 0 yuan
    }
    assert amounts(app, written, july)["A80"] == ("match", Decimal(50))
    assert amounts(app, written, july)["A100"] == ("match", Decimal(300))
    dated = make_rule(app, project, "bands: {field: birth_date, param: elderly_bands}")
    assert amounts(app, dated, june)["A95"] == ("match", Decimal(100))
    got = amounts(app, dated, july)  # the table in force changes on 2026-07-01
    assert (got["A80"], got["A95"], got["A100"]) == (("match", 60), ("match", 120), ("match", 350))


def test_per_unit_sum_caps_and_half_up_rounding(app: App, project: Path) -> None:
    add(
        app,
        {"resident_id": "P1", "f_farmland_mu": Decimal("6.5")},
        {"resident_id": "P2", "f_farmland_mu": Decimal("0.0001")},  # 105.5 x 0.0001 = 0.01055 -> 0.01
        {"resident_id": "P3", "f_farmland_mu": Decimal("0.0474")},  # 105.5 x 0.0474 = 5.0007 -> 5.00
        {"resident_id": "P4", "f_farmland_mu": Decimal("100")},
        {"resident_id": "P5"},
    )
    per = make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}")
    got = amounts(app, per, date(2026, 3, 1))
    assert got["P1"] == ("match", Decimal("685.75")) and got["P2"] == ("match", Decimal("0.01"))
    assert got["P3"] == ("match", Decimal("5.00")) and got["P5"] == ("review", None)
    assert amounts(app, per, date(2026, 7, 1))["P1"] == ("match", Decimal("715.00"))  # the new rate
    capped = make_rule(
        app,
        project,
        """\
        sum:
          - {per: {param: rate_per_mu, times_field: farmland_mu}, label: 耕地补贴}
          - {value: 20, label: 基础补贴}
        min: 30
        max: {param: cap}
        """,
    )
    got = amounts(app, capped, date(2026, 3, 1))
    assert got["P1"] == ("match", Decimal("500.00"))  # 705.75 capped at the parameter
    assert got["P2"] == ("match", Decimal("30.00"))  # 20.01 raised to the minimum
    assert got["P4"] == ("match", Decimal("500.00"))


def test_rounding_half_up_at_half_a_fen(app: App, project: Path) -> None:
    add(
        app,
        {"resident_id": "H1", "f_farmland_mu": Decimal("0.01")},
        {"resident_id": "H2", "f_farmland_mu": Decimal("0.009")},
    )
    rule = make_rule(app, project, "per: {param: half, times_field: farmland_mu}")
    got = amounts(app, rule, date(2026, 3, 1))
    assert got == {"H1": ("match", Decimal("0.01")), "H2": ("match", Decimal("0.00"))}  # .005 up, .0045 down


def _reference(person: dict[str, Any], on: date) -> Decimal | None:
    """An independent Decimal computation of the rule in `test_sql_equals_reference`."""
    mu, born = person.get("f_farmland_mu"), person.get("f_birth_date")
    if mu is None or born is None:
        return None
    per = (Decimal("105.5") * mu).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    band = next(
        (
            pay
            for low, high, pay in ((80, 89, 50), (90, None, 100))
            if age >= low and (high is None or age <= high)
        ),
        0,
    )
    return min(max(per + band, Decimal(10)), Decimal(900))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "f_farmland_mu": st.none() | st.decimals(min_value=0, max_value=50, places=4),
                "f_birth_date": st.none() | st.dates(date(1920, 1, 1), date(1960, 1, 1)),
            }
        ),
        min_size=1,
        max_size=12,
    )
)
def test_sql_equals_reference(app: App, project: Path, people: list[dict[str, Any]]) -> None:
    on = date(2026, 3, 1)
    rule = make_rule(
        app,
        project,
        """\
        sum:
          - per: {param: rate_per_mu, times_field: farmland_mu}
          - bands: {field: birth_date, table: [[80, 89, 50], [90, null, 100]]}
        min: 10
        max: 900
        """,
    )
    with app.engine.begin() as conn:
        conn.execute(app.residents.delete())
    add(app, *({"resident_id": f"R{i:03d}", **p} for i, p in enumerate(people)))
    got = amounts(app, rule, on)
    scanned = evaluate(app, rule, on).amounts  # the audience scan carries the amount in its result column
    for i, p in enumerate(people):
        want = _reference(p, on)
        assert got[f"R{i:03d}"] == ("review" if want is None else "match", want), p
        fen = scanned.get(f"R{i:03d}")
        assert (None if fen is None else Decimal(fen) / 100) == want, p


def test_explain_shows_the_computation_with_its_reference(app: App, project: Path) -> None:
    add(app, {"resident_id": "E1", "f_farmland_mu": Decimal("6.5"), "f_birth_date": date(1935, 1, 1)})
    rule = make_rule(
        app,
        project,
        """\
        sum:
          - {per: {param: rate_per_mu, times_field: farmland_mu}, label: 耕地补贴}
          - {bands: {field: age, param: elderly_bands}, label: 高龄津贴}
        max: {param: cap}
        """,
    )
    e = explain(app, rule, "E1", date(2026, 3, 1))
    text = "\n".join(e.amount_steps)
    assert e.amount == "500.00" and e.as_json()["amount"] == "500.00"
    assert "承包耕地面积 6.5亩 × 105.5元/亩（依据某县农发〔2026〕12号） = 685.75元" in text
    assert "年龄91岁，属于90-99岁档，标准 100.00元（依据某县民发〔2026〕3号）" in text
    assert "超过最高限额，按500.00元（依据某县财发〔2026〕1号）计" in text


def test_yuan_filter() -> None:
    assert yuan(Decimal("1234.5")) == "1,234.50元" and yuan("0.005") == "0.01元"
    with pytest.raises(ValueError):
        yuan("abc")


def test_preview_totals_by_village(app: App, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    add(
        app,
        {
            "resident_id": "V1",
            "village": "东村",
            "phone": "+8613800000001",
            "phone_kind": "mobile",
            "f_farmland_mu": 1,
        },
        {
            "resident_id": "V2",
            "village": "东村",
            "phone": "+8613800000002",
            "phone_kind": "mobile",
            "f_farmland_mu": 2,
        },
        {
            "resident_id": "V3",
            "village": "西村",
            "phone": "+8613800000003",
            "phone_kind": "mobile",
            "f_farmland_mu": 3,
        },
        {"resident_id": "V4", "village": "西村"},  # review: no farmland recorded
    )
    rule = make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}")
    p = preview(app, rule, date(2026, 3, 1))
    assert p.counts["match"] == 3 and p.counts["review"] == 1 and p.notices == 3
    assert p.amount is not None and p.amount.total == Decimal("633.00")
    assert p.amount.by_village == {"东村": Decimal("316.50"), "西村": Decimal("316.50")}
    assert p.review_conditions == [
        {"id": "amount_f_farmland_mu", "label": "amount: farmland_mu", "missing": 1}
    ]
    assert "本期发放105.50元" in p.samples[0].body
    cfg = str(project)
    assert main(["--config", cfg, "rules", "preview", "amount-rule", "--on", "2026-03-01", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["amount"] == {
        "total": "633.00",
        "by_village": {"东村": "316.50", "西村": "316.50"},
        "undetermined": 0,
    }
    assert main(["--config", cfg, "rules", "preview", "amount-rule", "--on", "2026-03-01"]) == 0
    text = capsys.readouterr().out
    assert "amount total: 633.00元" in text and "东村: 316.50元" in text


EMBEDDED = """\
tests:
  - name: 六亩半
    on: 2026-03-01
    resident: {registration: 农村, farmland_mu: 6.5}
    expect: match
    amount: 685.75
    expect_text: {sms: "【县民政局】您好：本期发放685.75元。"}
  - name: 缺耕地面积
    on: 2026-03-01
    resident: {registration: 农村}
    expect: review
    amount: null
  - name: 包含
    on: 2026-03-01
    resident: {registration: 农村, farmland_mu: 1}
    expect: match
    expect_text: {sms: {contains: [本期发放105.50元, 县民政局]}}
"""


def test_embedded_tests_assert_amount_and_text(app: App, project: Path) -> None:
    rule = make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}\n", EMBEDDED)
    fields, templates = project.parent / "rules" / "fields.yaml", app.config.templates_dir
    report = check_rules([Path(rule.file)], fields, templates)
    assert report.ok and (report.passed, report.failed) == (3, 0), report.errors
    wrong = EMBEDDED.replace("amount: 685.75", "amount: 685.74").replace(
        "本期发放105.50元", "本期发放105.5元"
    )
    wrong = wrong.replace("amount: null", "amount: 1")
    make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}\n", wrong)
    report = check_rules([Path(rule.file)], fields, templates)
    messages = [p.message for p in report.errors]
    assert "test '六亩半': expected amount 685.74, got amount 685.75" in messages
    assert "test '缺耕地面积': expected amount 1, got no amount" in messages
    assert any(m.startswith("test '包含': sms text lacks '本期发放105.5元'") for m in messages)
    exact = EMBEDDED.replace("本期发放685.75元。", "本期发放685.75元")
    make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}\n", exact)
    report = check_rules([Path(rule.file)], fields, templates)
    assert any("sms text differs" in p.message and p.line == 20 for p in report.errors), report.errors


@pytest.mark.parametrize(
    "amount, line, column, message",
    [
        (
            "per: {param: rate_per_acre, times_field: farmland_mu}",
            18,
            16,
            "unknown parameter 'rate_per_acre'",
        ),
        ("per: {param: rate_per_mu, times_field: registration}", 18, 42, "'registration' is a enum field"),
        ("bands: {field: age, table: [[80, 89, 50], [85, null, 100]]}", 18, 45, "must not overlap"),
        ("bands: {field: age, table: [[80, 89, 50.005]]}", 18, 40, "band amount 50.005 is not"),
        ("bands: {field: age, param: rate_per_mu}", 18, 30, "holds numbers, not band tables"),
        ("sum: [{value: 1}, {valu: 2}]", 18, 22, "unknown key 'valu' in amount"),
        ("value: 1\nmax: {param: elderly_bands}", 19, 16, "holds band tables, not an amount"),
        ("bands: {field: age, on: today, table: [[80, null, 1]]}", 18, 27, "on: takes run_date"),
        ("{value: 1, per: {param: rate_per_mu, times_field: farmland_mu}}", 18, 3, "exactly one of"),
    ],
)
def test_amount_errors_are_located(
    app: App, project: Path, amount: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(RuleError) as caught:
        make_rule(app, project, amount)
    found = [(p.line, p.column, p.message) for p in caught.value.problems]
    assert any(l == line and c == column and message in m for l, c, m in found), found


def test_run_messages_store_the_amount(app: App, project: Path) -> None:
    from notifier.runs import create_run
    from notifier.storage.schema import run_messages

    add(
        app,
        {
            "resident_id": "M1",
            "phone": "+8613800000001",
            "phone_kind": "mobile",
            "f_farmland_mu": Decimal("6.5"),
        },
    )
    rule = make_rule(app, project, "per: {param: rate_per_mu, times_field: farmland_mu}")
    create_run(app, rule, date(2026, 3, 1), "clerk")
    with app.engine.connect() as conn:
        row = conn.execute(sa.select(run_messages.c.amount, run_messages.c.body)).one()
    assert row.amount == 68575 and "685.75元" in row.body
