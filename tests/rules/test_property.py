"""Property: the compiled SQL agrees with an independent reference evaluation of the rule
semantics (DESIGN §4) for random rules and random residents with missing values, on SQLite and
PostgreSQL. Explanations read the same per-condition columns, so they agree by construction;
this proves those columns and the combination are right."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.app import App
from notifier.rules.compile import compile_rule
from notifier.rules.load import read_rule
from tests.support.project import REPO

ON = date(2026, 3, 1)

FIELDS: dict[str, Any] = {
    "income_per_capita": st.sampled_from(
        [Decimal(x) for x in ("0", "5000", "7440", "14879.99", "14880", "20000")]
    ),
    "house_grade": st.sampled_from(["A", "B", "C", "D"]),
    "registration": st.sampled_from(["rural", "urban"]),
    "disabled": st.booleans(),
    "household_size": st.integers(1, 6),
    "birth_date": st.sampled_from(
        [date(1966, 3, 1), date(1966, 3, 2), date(1966, 2, 28), date(2008, 2, 29), date(2000, 1, 1)]
    ),
}
resident = st.fixed_dictionaries({k: st.none() | v for k, v in FIELDS.items()})


def leaf() -> st.SearchStrategy[dict[str, Any]]:
    missing = st.sampled_from([None, "review", "fail", "pass"])

    def build(field: str, op: str, value: Any, if_missing: str | None) -> dict[str, Any]:
        d = {"field": field, op: value}
        if if_missing:
            d["if_missing"] = if_missing
        return d

    num = st.sampled_from([Decimal("5000"), Decimal("14880"), Decimal("7440")])
    options = [
        st.builds(
            build,
            st.just("income_per_capita"),
            st.sampled_from(["less_than", "at_most", "greater_than", "at_least", "equals"]),
            num,
            missing,
        ),
        st.builds(
            build,
            st.just("income_per_capita"),
            st.just("between"),
            st.just([Decimal("5000"), Decimal("14880")]),
            missing,
        ),
        st.builds(
            build, st.just("house_grade"), st.sampled_from(["in", "not_in"]), st.just(["C", "D"]), missing
        ),
        st.builds(
            build,
            st.just("registration"),
            st.sampled_from(["equals", "not_equals"]),
            st.just("rural"),
            missing,
        ),
        st.builds(build, st.just("disabled"), st.just("equals"), st.booleans(), missing),
        st.builds(
            build,
            st.just("household_size"),
            st.sampled_from(["at_least", "less_than"]),
            st.integers(1, 6),
            missing,
        ),
        st.builds(
            build,
            st.just("birth_date"),
            st.sampled_from(["age_at_least", "age_below"]),
            st.sampled_from([18, 60]),
            missing,
        ),
        st.builds(build, st.sampled_from(list(FIELDS)), st.just("is_missing"), st.booleans(), st.none()),
    ]
    return st.one_of(options)


tree = st.recursive(
    leaf(),
    lambda kids: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, kids),
    ),
    max_leaves=6,
)


def age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def evaluate(cond: dict[str, Any], person: dict[str, Any]) -> bool | None:
    """Kleene three-valued logic, written from the design text, independent of the compiler."""
    if "all" in cond:
        parts = [evaluate(c, person) for c in cond["all"]]
        return False if False in parts else None if None in parts else True
    if "any" in cond:
        parts = [evaluate(c, person) for c in cond["any"]]
        return True if True in parts else None if None in parts else False
    if "not" in cond:
        inner = evaluate(cond["not"], person)
        return None if inner is None else not inner
    field = cond["field"]
    v = person[field]
    if "is_missing" in cond:
        return (v is None) == cond["is_missing"]  # type: ignore[no-any-return]
    if v is None:
        return {"review": None, "fail": False, "pass": True}[cond.get("if_missing", "review")]
    op = next(k for k in cond if k not in ("field", "if_missing"))
    x = cond[op]
    return {  # type: ignore[no-any-return, no-untyped-call]
        "equals": lambda: v == x,
        "not_equals": lambda: v != x,
        "in": lambda: v in x,
        "not_in": lambda: v not in x,
        "less_than": lambda: v < x,
        "at_most": lambda: v <= x,
        "greater_than": lambda: v > x,
        "at_least": lambda: v >= x,
        "between": lambda: x[0] <= v <= x[1],
        "age_at_least": lambda: age(v, ON) >= x,
        "age_below": lambda: age(v, ON) < x,
    }[op]()


def to_yaml(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: to_yaml(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_yaml(v) for v in obj]
    return float(obj) if isinstance(obj, Decimal) else obj


def evaluate_counts(app: App, rule: Any) -> dict[str, int]:
    """Previews and runs count and select with plain predicates: they must agree too."""
    from notifier.audience import evaluate as audience

    aud = audience(app, rule, ON)
    assert len(aud.members) == aud.counts["match"]
    return aud.counts


HEAD = {
    "id": "prop",
    "item": {"title": "t", "domain": "farm_subsidy"},
    "channels": ["sms"],
    "templates": {"sms": "farm_subsidy.sms.j2"},
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_tree=tree, people=st.lists(resident, min_size=1, max_size=8))
def test_sql_agrees_with_reference(
    app: App, tmp_path: Path, rule_tree: dict[str, Any], people: list[dict[str, Any]]
) -> None:
    path = tmp_path / "prop.yaml"
    path.write_text(
        yaml.safe_dump({**HEAD, "match": to_yaml(rule_tree)}, allow_unicode=True), encoding="utf-8"
    )
    rule = read_rule(path, app.dictionary, REPO / "templates")
    t = app.residents
    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        conn.execute(t.delete())
        conn.execute(
            t.insert(),
            [
                {
                    "resident_id": f"p{i}",
                    "created_at": now,
                    "updated_at": now,
                    **{f"f_{k}": v for k, v in p.items()},
                }
                for i, p in enumerate(people)
            ],
        )
        compiled = compile_rule(rule, app.dictionary, t, ON)
        got = {r.resident_id: r.result for r in conn.execute(compiled.query)}
    want = {f"p{i}": evaluate(rule_tree, p) for i, p in enumerate(people)}
    assert {k: {0: False, 1: None, 2: True}[v] for k, v in got.items()} == want
    counts = evaluate_counts(app, rule)
    from notifier.audience import evaluate as audience

    assert {m.resident_id for m in audience(app, rule, ON).members} == {
        k for k, v in want.items() if v is True
    }
    assert counts == {
        "match": sum(v is True for v in want.values()),
        "no_match": sum(v is False for v in want.values()),
        "review": sum(v is None for v in want.values()),
    }


BOUNDARY_VALUES: dict[str, list[Any]] = {
    "income_per_capita": [
        Decimal("4999.99"),
        Decimal("5000"),
        Decimal("5000.01"),
        Decimal("14880"),
        Decimal("20000"),
    ],
    "house_grade": ["A", "C", "D"],
    "registration": ["rural", "urban"],
    "disabled": [True, False],
    "household_size": [1, 3, 4],
    "birth_date": [date(2008, 3, 1), date(2008, 3, 2), date(2008, 2, 29), date(1966, 3, 1), date(1966, 3, 2)],
}
LEAVES: list[dict[str, Any]] = [
    *(
        {"field": "income_per_capita", op: Decimal("5000")}
        for op in ("less_than", "at_most", "greater_than", "at_least", "equals", "not_equals")
    ),
    {"field": "income_per_capita", "between": [Decimal("5000"), Decimal("14880")]},
    {"field": "house_grade", "in": ["C", "D"]},
    {"field": "house_grade", "not_in": ["C", "D"]},
    {"field": "registration", "equals": "rural"},
    {"field": "disabled", "equals": True},
    {"field": "disabled", "equals": False},
    {"field": "household_size", "at_least": 3},
    {"field": "household_size", "less_than": 4},
    {"field": "birth_date", "age_at_least": 18},
    {"field": "birth_date", "age_below": 18},
    {"field": "birth_date", "age_at_least": 60},
    {"field": "birth_date", "less_than": date(2008, 3, 1)},
]


@pytest.mark.parametrize("if_missing", ["review", "fail", "pass"])
def test_every_operator_at_its_boundaries(app: App, tmp_path: Path, if_missing: str) -> None:
    """Exhaustive over operators x boundary values x a missing value: no randomness to miss an edge."""
    t = app.residents
    now = datetime.now(timezone.utc)
    for n, cond in enumerate(LEAVES):
        field = cond["field"]
        cond = {**cond, "if_missing": if_missing}
        path = tmp_path / f"leaf{n}.yaml"
        path.write_text(
            yaml.safe_dump({**HEAD, "match": {"all": [to_yaml(cond)]}}, allow_unicode=True), encoding="utf-8"
        )
        rule = read_rule(path, app.dictionary, REPO / "templates")
        values = [None, *BOUNDARY_VALUES[field]]
        with app.engine.begin() as conn:
            conn.execute(t.delete())
            conn.execute(
                t.insert(),
                [
                    {"resident_id": f"v{i}", "created_at": now, "updated_at": now, f"f_{field}": v}
                    for i, v in enumerate(values)
                ],
            )
            got = {
                r.resident_id: r.result for r in conn.execute(compile_rule(rule, app.dictionary, t, ON).query)
            }
        want = {f"v{i}": evaluate(cond, {field: v}) for i, v in enumerate(values)}
        assert {k: {0: False, 1: None, 2: True}[v] for k, v in got.items()} == want, cond


# --- Many rules in one scan -----------------------------------------------------------------
# `evaluate_many` keeps the residents that any rule does not fail and tallies every rule from
# the same rows; each rule's audience must be exactly the one `evaluate` gives it alone, and both
# must match the reference, including related records, contacts, opt-outs and missing data.

GRANT_DATES = [date(2023, 2, 28), date(2023, 3, 1), date(2025, 6, 1)]  # 3 years before ON is 2023-03-01
DOMAINS = ["rural_housing_repair", "farm_subsidy"]
CHANNEL_ORDERS = st.permutations(["sms", "email", "letter"]).flatmap(
    lambda p: st.integers(1, 3).map(lambda k: list(p[:k]))
)

record_leaf = st.builds(
    lambda quantifier, domain, years: {
        quantifier: {
            "records": "grants",
            "where": {"item_domain": domain},
            **({"within_years": years} if years else {}),
        }
    },
    st.sampled_from(["any", "none"]),
    st.sampled_from(DOMAINS),
    st.sampled_from([None, 3]),
)
tree_with_records = st.recursive(
    leaf() | record_leaf,
    lambda kids: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(kids, min_size=1, max_size=3)),
        st.builds(lambda x: {"not": x}, kids),
    ),
    max_leaves=5,
)
person = st.fixed_dictionaries(
    {
        "fields": resident,
        "grants": st.lists(st.tuples(st.sampled_from(DOMAINS), st.sampled_from(GRANT_DATES)), max_size=2),
        "phone_kind": st.sampled_from([None, "mobile", "landline"]),
        "opted_out": st.booleans(),
        "email": st.booleans(),
        "address": st.booleans(),
        "preferred_channel": st.sampled_from([None, "sms", "email", "letter"]),
    }
)


def reference(cond: dict[str, Any], p: dict[str, Any]) -> bool | None:
    """`evaluate` above, plus related records: any/none over grants with a where and a cutoff."""
    quantifier = next((q for q in ("any", "none") if isinstance(cond.get(q), dict)), None)
    if quantifier is None:
        if "all" in cond or "any" in cond:
            parts = [reference(c, p) for c in cond.get("all", cond.get("any"))]  # type: ignore[union-attr]
            decisive = False if "all" in cond else True
            return decisive if decisive in parts else None if None in parts else not decisive
        if "not" in cond:
            inner = reference(cond["not"], p)
            return None if inner is None else not inner
        return evaluate(cond, p["fields"])
    spec = cond[quantifier]
    cutoff = date(ON.year - spec.get("within_years", 0), ON.month, ON.day) if "within_years" in spec else None
    found = any(
        d == spec["where"]["item_domain"] and (cutoff is None or on >= cutoff) for d, on in p["grants"]
    )
    return found if quantifier == "any" else not found


def lacking(rule: Any, people: list[dict[str, Any]], results: list[bool | None]) -> list[dict[str, object]]:
    """Among review residents, how many miss the field of each condition that can be unknown."""
    from notifier.rules.model import FieldCondition

    review = [p["fields"] for p, r in zip(people, results, strict=False) if r is None]
    out: list[dict[str, object]] = []
    for c in rule.leaves():
        if isinstance(c, FieldCondition) and c.op != "is_missing" and c.if_missing == "review":
            k = sum(1 for f in review if f[c.field] is None)
            out += [{"id": c.id, "label": c.label, "missing": k}] if k else []
    return out


def seed_people(app: App, people: list[dict[str, Any]]) -> None:
    from notifier.storage.schema import opt_outs, records

    now = datetime.now(timezone.utc)
    with app.engine.begin() as conn:
        for table in (app.residents, records, opt_outs):
            conn.execute(table.delete())
        conn.execute(
            app.residents.insert(),
            [
                {
                    "resident_id": f"p{i}",
                    "created_at": now,
                    "updated_at": now,
                    "phone": f"+8613800000{i:03d}" if p["phone_kind"] else None,
                    "phone_kind": p["phone_kind"],
                    "email": f"p{i}@example.com" if p["email"] else None,
                    "address": f"{i}号" if p["address"] else None,
                    "preferred_channel": p["preferred_channel"],
                    **{f"f_{k}": v for k, v in p["fields"].items()},
                }
                for i, p in enumerate(people)
            ],
        )
        grants = [
            {
                "kind": "grants",
                "resident_id": f"p{i}",
                "record_date": on,
                "data": {"item_domain": d, "granted_on": on.isoformat()},
                "fingerprint": f"p{i}-{j}",
                "imported_at": now,
            }
            for i, p in enumerate(people)
            for j, (d, on) in enumerate(p["grants"])
        ]
        if grants:
            conn.execute(records.insert(), grants)
        opted = [
            {"phone": f"+8613800000{i:03d}", "source": "test", "created_at": now}
            for i, p in enumerate(people)
            if p["phone_kind"] and p["opted_out"]
        ]
        if opted:
            conn.execute(opt_outs.insert(), opted)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(st.tuples(tree_with_records, CHANNEL_ORDERS), min_size=1, max_size=4),
    people=st.lists(person, min_size=1, max_size=8),
)
def test_many_rules_in_one_scan_agree(
    app: App, tmp_path: Path, specs: list[tuple[dict[str, Any], list[str]]], people: list[dict[str, Any]]
) -> None:
    from notifier.audience import evaluate as audience
    from notifier.audience import evaluate_many

    rules = []
    for n, (rule_tree, channels) in enumerate(specs):
        path = tmp_path / f"prop{n}.yaml"
        doc = {
            **HEAD,
            "id": f"prop{n}",
            "match": to_yaml(rule_tree),
            "channels": channels,
            "templates": {c: f"farm_subsidy.{c}.j2" for c in channels},
        }
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        rules.append(read_rule(path, app.dictionary, REPO / "templates"))
    seed_people(app, people)
    many, counted = evaluate_many(app, rules, ON), evaluate_many(app, rules, ON, members=False)
    assert list(many) == [r.id for r in rules]
    for rule, (rule_tree, _) in zip(rules, specs, strict=False):
        want = [reference(rule_tree, p) for p in people]
        one, got = audience(app, rule, ON), many[rule.id]
        assert one.counts == {
            "match": want.count(True),
            "no_match": want.count(False),
            "review": want.count(None),
        }
        assert [m.resident_id for m in one.members] == sorted(
            f"p{i}" for i, w in enumerate(want) if w is True
        )
        assert one.review_conditions == lacking(rule, people, want)
        assert (got.counts, got.members, got.by_channel(), got.review_conditions) == (
            one.counts,
            one.members,
            one.by_channel(),
            one.review_conditions,
        )
        assert (counted[rule.id].counts, counted[rule.id].members, counted[rule.id].review_conditions) == (
            one.counts,
            [],
            one.review_conditions,
        )
