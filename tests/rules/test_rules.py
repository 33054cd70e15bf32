"""Rule loading (located errors) and compilation (three-valued results on SQLite and PostgreSQL)."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.errors import RuleError
from notifier.rules.compile import compile_rule, result_name, years_before
from notifier.rules.load import read_rule
from notifier.status import Channel
from notifier.storage.fieldcols import column_name
from notifier.storage.schema import records
from tests.support.campaign import sample_register
from tests.support.project import REPO, write_config

BASE = """\
id: test-rule
item: {title: 测试, domain: rural_housing_repair, department: 县住建局, url: https://example.gov.cn/x,
       publish: {from: 2026-01-01, until: 2026-12-31}, disclosure: public}
parameters:
  line: {unit: 元, reference: 某号文, values: {2025-01-01: 6960, 2026-01-01: 7440}}
channels: [sms]
templates: {sms: housing_repair.sms.j2}
"""


def write_rule(tmp_path: Path, match: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(BASE + "match:\n" + textwrap.indent(textwrap.dedent(match), "  "), encoding="utf-8")
    return p


def load(app: App, path: Path):  # type: ignore[no-untyped-def]
    return read_rule(path, app.dictionary, REPO / "templates")


def test_sample_rules_load_with_versions(app: App) -> None:
    from notifier.rules.load import load_rules, rule_files

    rules, problems = load_rules(rule_files(REPO / "rules"), app.dictionary, REPO / "templates")
    assert problems == []
    assert set(rules) == {"dibao-monthly-payment", "farm-subsidy-2026", "rural-housing-repair-2026"}
    assert all(len(r.version) == 64 for r in rules.values())


@pytest.mark.parametrize(
    "match, line, column, message",
    [
        (
            "all:\n  - {field: registraton, equals: rural}\n",
            10,
            15,
            "unknown field 'registraton' (did you mean \"registration\"?)",
        ),
        (
            "all:\n  - {field: registration, equal: rural}\n",
            10,
            29,
            "unknown key 'equal' in condition (did you mean \"equals\"?)",
        ),
        (
            "all:\n  - {field: registration, equals: rurl}\n",
            10,
            37,
            "'rurl' is not a value of 'registration' (did you mean \"rural\"?)",
        ),
        (
            "all:\n  - {field: birth_date, less_than: 12}\n",
            10,
            38,
            "'birth_date' is a date field; 12 is not a date",
        ),
        ("all:\n  - {field: house_grade, less_than: 3}\n", 10, 39, "less_than needs a number or date field"),
        (
            "all:\n  - {field: income_per_capita, less_than: {param: lin}}\n",
            10,
            53,
            "unknown parameter 'lin' (did you mean \"line\"?)",
        ),
        ("any: []\n", 9, 8, "'any' needs a non-empty list"),
        (
            "all:\n  - {field: registration, equals: rural, if_missing: skip}\n",
            10,
            56,
            "if_missing must be review, fail or pass",
        ),
    ],
)
def test_rule_errors_are_located(
    app: App, tmp_path: Path, match: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(RuleError) as err:
        load(app, write_rule(tmp_path, match))
    problems = err.value.problems
    assert any(p.line == line and p.column == column and message in p.message for p in problems), problems


def test_several_errors_reported_together(app: App, tmp_path: Path) -> None:
    path = write_rule(
        tmp_path, "all:\n  - {field: nope, equals: 1}\n  - {field: registration, equals: mars}\n"
    )
    with pytest.raises(RuleError) as err:
        load(app, path)
    assert [p.line for p in err.value.problems] == [10, 11]


def test_years_before_handles_leap_day() -> None:
    assert years_before(date(2028, 2, 29), 1) == date(2027, 2, 28)
    assert years_before(date(2026, 3, 2), 3) == date(2023, 3, 2)


PEOPLE = [
    # id, registration, house_grade, income, birth_date, grant (domain, date)
    ("a", "rural", "D", Decimal("12000"), date(1950, 3, 2), None),  # match (12000 < 14880)
    ("b", "rural", "C", Decimal("14880"), date(1950, 3, 2), None),  # no: strict less_than at the line
    ("c", "rural", "C", None, date(1950, 3, 2), None),  # review: income missing
    ("d", "urban", "D", None, date(1950, 3, 2), None),  # no_match: failing beats missing
    (
        "e",
        "rural",
        "D",
        Decimal("5000"),
        date(1950, 3, 2),
        ("rural_housing_repair", date(2023, 3, 2)),
    ),  # no: funded 3y ago today
    (
        "f",
        "rural",
        "D",
        Decimal("5000"),
        date(1950, 3, 2),
        ("rural_housing_repair", date(2023, 3, 1)),
    ),  # match: a day older
    (
        "g",
        "rural",
        "D",
        Decimal("5000"),
        date(1950, 3, 2),
        ("farm_subsidy", date(2025, 1, 1)),
    ),  # match: other domain
    ("h", None, "D", Decimal("6000"), date(1950, 3, 2), None),  # review: registration missing
]


def seed(app: App) -> None:
    t = app.residents
    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        for rid, reg, grade, income, born, grant in PEOPLE:
            conn.execute(
                t.insert().values(
                    resident_id=rid,
                    name="x",
                    created_at=now,
                    updated_at=now,
                    f_registration=reg,
                    f_house_grade=grade,
                    f_income_per_capita=income,
                    f_birth_date=born,
                )
            )
            if grant:
                conn.execute(
                    records.insert().values(
                        kind="grants",
                        resident_id=rid,
                        record_date=grant[1],
                        data={"item_domain": grant[0], "granted_on": grant[1].isoformat()},
                        fingerprint=rid,
                        imported_at=now,
                    )
                )


def results(app: App, rule, on: date) -> dict[str, str]:  # type: ignore[no-untyped-def]
    compiled = compile_rule(rule, app.dictionary, app.residents, on)
    with app.engine.connect() as conn:
        return {r.resident_id: result_name(r.result) for r in conn.execute(compiled.query)}


def test_three_valued_results_in_sql(app: App, tmp_path: Path) -> None:
    seed(app)
    rule = load(
        app,
        write_rule(
            tmp_path,
            """\
        all:
          - {id: rural, field: registration, equals: rural}
          - {id: unsafe, field: house_grade, in: [C, D]}
          - {id: low, field: income_per_capita, less_than: {param: line, times: 2}}
          - {id: nf, none: {records: grants, where: {item_domain: rural_housing_repair}, within_years: 3}}
        """,
        ),
    )
    assert results(app, rule, date(2026, 3, 2)) == {
        "a": "match",
        "b": "no_match",
        "c": "review",
        "d": "no_match",
        "e": "no_match",
        "f": "match",
        "g": "match",
        "h": "review",
    }
    # In 2025 the line was 6960 (x2 = 13920): 12000 still matches, the dated value is used.
    compiled = compile_rule(rule, app.dictionary, app.residents, date(2025, 6, 1))
    assert compiled.params_used["line"]["value"] == "6960"


def test_any_not_if_missing_and_ages(app: App, tmp_path: Path) -> None:
    seed(app)
    rule = load(
        app,
        write_rule(
            tmp_path,
            """\
        any:
          - {field: income_per_capita, at_most: 5000, if_missing: fail}
          - not: {field: registration, equals: rural}
        """,
        ),
    )
    assert results(app, rule, date(2026, 3, 2)) == {
        "a": "no_match",
        "b": "no_match",
        "c": "no_match",
        "d": "match",
        "e": "match",
        "f": "match",
        "g": "match",
        "h": "review",
    }
    rule = load(app, write_rule(tmp_path, "all:\n  - {field: birth_date, age_at_least: 76}\n"))
    assert set(results(app, rule, date(2026, 3, 1)).values()) == {
        "no_match"
    }  # 75 the day before the birthday
    assert set(results(app, rule, date(2026, 3, 2)).values()) == {"match"}  # 76 on it
    rule = load(app, write_rule(tmp_path, "all:\n  - {field: income_per_capita, is_missing: true}\n"))
    assert sorted(k for k, v in results(app, rule, date(2026, 3, 2)).items() if v == "match") == ["c", "d"]


def test_between_and_not_in(app: App, tmp_path: Path) -> None:
    seed(app)
    rule = load(
        app,
        write_rule(
            tmp_path,
            "all:\n  - {field: income_per_capita, between: [5000, 12000]}\n"
            "  - {field: house_grade, not_in: [C]}\n",
        ),
    )
    r = results(app, rule, date(2026, 3, 2))
    assert sorted(k for k, v in r.items() if v == "match") == ["a", "e", "f", "g", "h"]
    assert r["c"] == "no_match" and r["d"] == "review"


def test_column_names_are_stable() -> None:
    from notifier.fields import BUILTIN_FIELDS, FieldSpec, FieldType

    assert column_name(BUILTIN_FIELDS["phone"]) == "phone"
    assert column_name(FieldSpec("income", FieldType.DECIMAL, "收入")) == "f_income"
    assert sa is not None


def test_embedded_tests_run_through_the_compiled_sql(tmp_path: Path) -> None:
    from notifier.rules.checking import check_rules

    rule = tmp_path / "r.yaml"
    rule.write_text(
        BASE
        + textwrap.dedent("""\
        match:
          all:
            - {id: rural, field: registration, equals: rural}
            - {id: nf, none: {records: grants, where: {item_domain: rural_housing_repair}, within_years: 3}}
        tests:
          - {name: ok, on: 2026-03-02, resident: {registration: 农村}, expect: match}
          - name: funded
            on: 2026-03-02
            resident: {registration: rural}
            grants: [{item_domain: 危房改造, granted_on: 2024-01-01}]
            expect: match
          - {name: typo, on: 2026-03-02, resident: {registraton: rural}, expect: review}
        """),
        encoding="utf-8",
    )
    report = check_rules([rule], REPO / "rules" / "fields.yaml", REPO / "templates")
    assert any(
        p.line == 19
        and "has no field 'registraton'" in p.message
        and 'did you mean "registration"' in p.message
        for p in report.errors
    ), report.errors
    rule.write_text(rule.read_text(encoding="utf-8").replace("registraton", "registration"), encoding="utf-8")
    report = check_rules([rule], REPO / "rules" / "fields.yaml", REPO / "templates")
    assert (report.passed, report.failed) == (1, 2)
    failures = {p.message.split(":")[0]: p for p in report.errors}
    assert "expected match, got no_match (rural pass, nf fail)" in failures["test 'funded'"].message
    assert failures["test 'funded'"].line == 14
    assert "expected review, got match" in failures["test 'typo'"].message


def test_sample_rules_in_one_scan_equal_one_at_a_time(app: App, tmp_path: Path) -> None:
    """All rules in one scan (evaluate_many) give what each rule's preview and run get
    (evaluate): counts, members in order with channel and recipient, missing-data counts.
    (`rules preview --all` counts in the database, rules/counting.py; tests/rules/
    test_counting.py holds it equal to evaluate_many.)"""
    from notifier.audience import evaluate, evaluate_many
    from notifier.residents.importer import import_records, import_residents
    from notifier.rules.load import load_rules, rule_files
    from notifier.storage.schema import opt_outs

    people, grants = sample_register(tmp_path, 600)
    import_residents(app, people)
    import_records(app, "grants", grants)
    with app.engine.begin() as conn:  # some residents opted out of SMS: they get a letter or e-mail
        phones = (
            conn.execute(
                sa.select(app.residents.c.phone)
                .where(app.residents.c.phone.is_not(None))
                .distinct()
                .order_by(app.residents.c.phone)
            )
            .scalars()
            .all()
        )  # household members share phones
        conn.execute(
            opt_outs.insert(),
            [{"phone": p, "source": "test", "created_at": datetime.now(timezone.utc)} for p in phones[::5]],
        )
    rules, problems = load_rules(rule_files(REPO / "rules"), app.dictionary, REPO / "templates")
    assert problems == []
    for on in (date(2026, 3, 2), date(2026, 12, 5)):
        many = evaluate_many(app, rules.values(), on)
        for rule in rules.values():
            one, got = evaluate(app, rule, on), many[rule.id]
            assert (got.counts, got.members, got.review_conditions) == (
                one.counts,
                one.members,
                one.review_conditions,
            ), rule.id
            assert sum(got.counts.values()) == len(people.read_text(encoding="utf-8").splitlines()) - 1
        assert all(a.counts["match"] and a.counts["review"] and a.review_conditions for a in many.values())
        assert {m.channel for a in many.values() for m in a.members} >= {Channel.SMS, Channel.LETTER}


def test_audiences_read_without_the_sqlite_write_lock(tmp_path: Path) -> None:
    """A preview of the whole register must not wait for (or block) the dispatcher's writes: it
    reads one snapshot through `app.reader`, so an open write transaction is neither waited for
    nor seen."""
    from notifier.audience import evaluate_many
    from notifier.rules.load import find_rule

    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        seed(app)
        rule = find_rule("farm-subsidy-2026", app.config.rules_dir, app.dictionary, app.config.templates_dir)
        before = evaluate_many(app, [rule], date(2026, 3, 2))[rule.id].counts
        with app.engine.begin() as conn:  # BEGIN IMMEDIATE: holds the write lock until the end of the block
            now = datetime.now(timezone.utc)
            conn.execute(
                app.residents.insert().values(
                    resident_id="z", created_at=now, updated_at=now, f_registration="rural"
                )
            )
            assert evaluate_many(app, [rule], date(2026, 3, 2))[rule.id].counts == before
        assert (
            sum(evaluate_many(app, [rule], date(2026, 3, 2))[rule.id].counts.values())
            == sum(before.values()) + 1
        )
    finally:
        app.close()
