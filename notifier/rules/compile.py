"""A rule, a date and the residents table -> one SQL query with one column per condition.

Each condition column is 2 (pass), 1 (unknown: data missing) or 0 (fail); `if_missing` turns
unknown into pass or fail. In this order Kleene's three-valued logic is plain arithmetic:
`all` is the minimum of its parts, `any` the maximum, `not` is 2 - x. So a missing value never
silently drops anyone (the overall `result` is 2 match, 0 no_match or 1 review), no NULL
reaches the combination, and each condition is computed once per resident. The same query gives
counts, the audience and per-resident explanations. Only bound parameters reach the SQL.

A rule's `amount:` (rules/amounts.py) is one more column of the same query, in fen. A matched
resident whose amount cannot be computed (a field it needs is NULL) is `review`, not matched:
nobody is told "0 yuan" because data is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from ..errors import Problem, RuleError
from ..fields import DataDictionary, FieldType
from ..storage.fieldcols import column_name
from ..storage.schema import records
from .amounts import compile_amount
from .model import (
    Combinator,
    Condition,
    FieldCondition,
    Leaf,
    ParamRef,
    RecordCondition,
    Rule,
    amount_fields,
)

MATCH, NO_MATCH, REVIEW = "match", "no_match", "review"
FAIL, UNKNOWN, PASS = 0, 1, 2
OUTCOME = {PASS: "pass", FAIL: "fail", UNKNOWN: "unknown"}
RESULT = {PASS: MATCH, FAIL: NO_MATCH, UNKNOWN: REVIEW}


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (29 Feb becomes 28 Feb in a common year)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def params_in_force(rule: Rule, on: date) -> dict[str, dict[str, Any]]:
    """Every parameter's value on the date (templates may use ones no condition does)."""
    out = {}
    for name, p in rule.parameters.items():
        value = p.value_on(on)
        if value is not None:
            out[name] = {"value": str(value), "unit": p.unit, "reference": p.reference}
    return out


def result_name(value: int) -> str:
    return RESULT[value]


@dataclass
class CompiledRule:
    rule: Rule
    on: date
    query: sa.Select[Any]  # resident_id, cond_<id>..., result: for explanations and tests
    leaves: list[Leaf]
    conditions: dict[str, sa.ColumnElement[Any]]  # condition id -> its value over the residents table
    result: sa.ColumnElement[Any]  # the overall value over the residents table
    matches: sa.ColumnElement[bool]  # result is match, as a plain predicate
    fails: sa.ColumnElement[bool]  # result is no_match, as a plain predicate
    thresholds: dict[str, Any]  # condition id -> value in force (for explanations)
    params_used: dict[str, dict[str, Any]]
    # Condition id -> the column whose missing value makes it unknown, for the conditions that
    # can be unknown at all (if_missing: review): audiences tell which data review rows lack.
    unknown_when_null: dict[str, sa.ColumnElement[Any]]
    costly: bool  # needs related-records lookups: scans test it after cheap rules
    amount: sa.ColumnElement[Any] | None = None  # fen over the residents table; None: rule has no amount

    def column(self, leaf_id: str) -> str:
        return f"cond_{leaf_id}"


class least(GenericFunction[int]):
    """Scalar minimum of its arguments: LEAST on PostgreSQL, multi-argument min() on SQLite."""

    inherit_cache = True


class greatest(GenericFunction[int]):
    inherit_cache = True


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: Any, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: Any, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True)
class _Leaf:
    """A condition as its value (0/1/2) and as plain predicates "passes" / "fails": the
    predicates let counts and audiences filter like hand-written AND/OR SQL."""

    value: sa.ColumnElement[Any]
    passes: sa.ColumnElement[bool]
    fails: sa.ColumnElement[bool]
    unknown_when_null: sa.ColumnElement[Any] | None = None  # unknown exactly when this column is NULL


def _tri(test: sa.ColumnElement[bool], col: sa.ColumnElement[Any], if_missing: str) -> _Leaf:
    missing, present = col.is_(None), col.is_not(None)
    when_missing = {"review": UNKNOWN, "fail": FAIL, "pass": PASS}[if_missing]
    value = sa.case((missing, when_missing), (test, PASS), else_=FAIL)
    passes = sa.or_(missing, test) if if_missing == "pass" else sa.and_(present, test)
    fails = sa.or_(missing, sa.not_(test)) if if_missing == "fail" else sa.and_(present, sa.not_(test))
    return _Leaf(value, passes, fails, col if if_missing == "review" else None)


class RecordFlags:
    """Related-records conditions as columns of one aggregate over `records`, joined to the
    residents by resident_id, instead of correlated EXISTS: a whole-register scan then has no
    correlated SubPlan, which would keep PostgreSQL from scanning it in parallel. Give one to
    `compile_rule` for every rule of the scan, then join `subquery()` (LEFT OUTER) in FROM.
    PostgreSQL only (`bool_or`)."""

    NAME = "record_flags"

    def __init__(self) -> None:
        self.tests: dict[tuple[Any, ...], sa.ColumnElement[bool]] = {}  # one flag per distinct condition
        self.kinds: set[str] = set()

    def flag(self, key: tuple[Any, ...], kind: str, test: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
        """Whether the resident has a record for which `test` holds (False when none at all)."""
        self.tests.setdefault(key, test)
        self.kinds.add(kind)
        at = list(self.tests).index(key)
        return sa.func.coalesce(sa.literal_column(f"{self.NAME}.rf{at}", sa.Boolean), sa.false())

    def subquery(self) -> sa.Subquery:
        r = records
        flags = [sa.func.bool_or(test).label(f"rf{i}") for i, test in enumerate(self.tests.values())]
        return (
            sa.select(r.c.resident_id, *flags)
            .where(r.c.kind.in_(sorted(self.kinds)))
            .group_by(r.c.resident_id)
            .subquery(self.NAME)
        )


class _Compiler:
    def __init__(
        self, rule: Rule, dictionary: DataDictionary, table: sa.Table, on: date, flags: RecordFlags | None
    ) -> None:
        self.rule, self.d, self.t, self.on, self.flags = rule, dictionary, table, on, flags
        self.thresholds: dict[str, Any] = {}
        self.params_used: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []

    def value(self, v: Any, leaf: FieldCondition) -> Any:
        if isinstance(v, ParamRef):
            p = self.rule.parameters[v.name]
            base = p.value_on(self.on)
            if base is None:
                self.problems.append(
                    Problem(
                        f"parameter {v.name!r} has no value in force on {self.on}",
                        file=self.rule.file,
                        line=leaf.mark[0],
                        column=leaf.mark[1],
                    )
                )
                return Decimal(0)
            self.params_used[v.name] = {"value": str(base), "unit": p.unit, "reference": p.reference}
            return base * v.times
        return v

    def field_leaf(self, c: FieldCondition) -> _Leaf:
        spec = self.d.all_fields()[c.field]
        col = self.t.c[column_name(spec)]
        op, raw = c.op, c.value
        if op == "is_missing":
            self.thresholds[c.id] = raw
            missing, present = col.is_(None), col.is_not(None)
            return _Leaf(
                sa.case((missing, PASS if raw else FAIL), else_=FAIL if raw else PASS),
                missing if raw else present,
                present if raw else missing,
            )
        if op in ("age_at_least", "age_below"):
            cutoff = years_before(self.on, raw)
            self.thresholds[c.id] = raw
            test = col <= cutoff if op == "age_at_least" else col > cutoff
            return _tri(test, col, c.if_missing)
        val: Any = tuple(self.value(v, c) for v in raw) if isinstance(raw, tuple) else self.value(raw, c)
        self.thresholds[c.id] = val
        if spec.type is FieldType.BOOL and op in ("equals", "not_equals"):
            val = bool(val)
        tests: dict[str, Callable[[], sa.ColumnElement[bool]]] = {
            "equals": lambda: col == val,
            "not_equals": lambda: col != val,
            "in": lambda: col.in_(val),
            "not_in": lambda: col.not_in(val),
            "less_than": lambda: col < val,
            "at_most": lambda: col <= val,
            "greater_than": lambda: col > val,
            "at_least": lambda: col >= val,
            "between": lambda: col.between(val[0], val[1]),
        }
        return _tri(tests[op](), col, c.if_missing)

    def record_leaf(self, c: RecordCondition) -> _Leaf:
        r = records
        conds = [r.c.kind == c.kind, r.c.resident_id == self.t.c.resident_id]
        for fname, value in c.where:
            conds.append(r.c.data[fname].as_string() == str(value))
        cutoff = years_before(self.on, c.within_years) if c.within_years else None
        if cutoff is not None:
            conds.append(r.c.record_date >= cutoff)
            self.thresholds[c.id] = cutoff
        if self.flags is not None:  # the same test without the correlation, as a joined column
            test = sa.and_(conds[0], *conds[2:])
            exists = self.flags.flag((c.kind, c.where, cutoff), c.kind, test)
        else:
            exists = sa.exists().where(*conds)
        passes, fails = (exists, sa.not_(exists)) if c.quantifier == "any" else (sa.not_(exists), exists)
        return _Leaf(sa.case((passes, PASS), else_=FAIL), passes, fails)

    def predicates(
        self, cond: Condition, leaves: dict[str, _Leaf]
    ) -> tuple[sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """(passes, fails) of a condition in plain SQL booleans; neither holds for `review`.
        all passes when every part passes and fails when any part fails; any the other way round."""
        if isinstance(cond, (FieldCondition, RecordCondition)):
            return leaves[cond.id].passes, leaves[cond.id].fails
        if cond.op == "not":
            passes, fails = self.predicates(cond.children[0], leaves)
            return fails, passes
        parts = [self.predicates(ch, leaves) for ch in sorted(cond.children, key=_costly)]
        every, some = (sa.and_, sa.or_) if cond.op == "all" else (sa.or_, sa.and_)
        return every(*[p for p, _ in parts]), some(*[f for _, f in parts])

    def combine(self, cond: Condition, cols: Any) -> sa.ColumnElement[Any]:
        if isinstance(cond, (FieldCondition, RecordCondition)):
            found: sa.ColumnElement[Any] = cols[f"cond_{cond.id}"]
            return found
        if cond.op == "not":
            return PASS - self.combine(cond.children[0], cols)
        # Cheap conditions first, related-records lookups last, and stop at the first decisive
        # part (fail for all, pass for any) as SQL's AND/OR would: the last part appears once.
        parts = [self.combine(ch, cols) for ch in sorted(cond.children, key=_costly)]
        decisive, pick = (FAIL, least) if cond.op == "all" else (PASS, greatest)
        expr = parts[-1]
        for part in reversed(parts[:-1]):
            expr = sa.case((part == decisive, decisive), else_=pick(part, expr))
        return expr


def _costly(cond: Condition) -> bool:
    """Whether a condition needs a related-records lookup (evaluated after the cheap ones)."""
    if isinstance(cond, Combinator):
        return any(_costly(c) for c in cond.children)
    return isinstance(cond, RecordCondition)


def compile_rule(
    rule: Rule, dictionary: DataDictionary, table: sa.Table, on: date, flags: RecordFlags | None = None
) -> CompiledRule:
    """`flags`: related-records conditions become columns of that aggregate (see RecordFlags);
    every expression of the result, `query` included, then needs that subquery joined."""
    comp = _Compiler(rule, dictionary, table, on, flags)
    leaves = rule.leaves()
    compiled = {
        leaf.id: comp.field_leaf(leaf) if isinstance(leaf, FieldCondition) else comp.record_leaf(leaf)
        for leaf in leaves
    }
    fields = dictionary.all_fields()
    amount, amount_problems = compile_amount(
        rule, {name: table.c[column_name(spec)] for name, spec in fields.items()}, on
    )
    comp.problems += amount_problems
    if comp.problems:
        raise RuleError(f"{rule.file}: cannot be evaluated on {on}", comp.problems)
    conditions = {k: v.value for k, v in compiled.items()}
    result = comp.combine(rule.match, {f"cond_{k}": v for k, v in conditions.items()})
    # Counts and audiences filter with the equivalent plain predicates straight over the table,
    # so the database short-circuits them exactly as it would hand-written AND/OR.
    matches, fails = comp.predicates(rule.match, compiled)
    unknown = {k: v.unknown_when_null for k, v in compiled.items() if v.unknown_when_null is not None}
    extra: list[sa.ColumnElement[Any]] = []
    if amount is not None and rule.amount is not None:
        needed = [table.c[column_name(fields[f])] for f in amount_fields(rule.amount)]
        if needed:
            known = sa.and_(*[col.is_not(None) for col in needed])
            result = sa.case((sa.and_(result == PASS, sa.not_(known)), UNKNOWN), else_=result)
            matches = sa.and_(matches, known)
            unknown |= {f"amount_{col.key}": col for col in needed}
        comp.params_used |= amount.params
        extra = [amount.expr.label("amount")]
    query = sa.select(
        table.c.resident_id,
        *[v.label(f"cond_{k}") for k, v in conditions.items()],
        result.label("result"),
        *extra,
    )
    return CompiledRule(
        rule,
        on,
        query,
        leaves,
        conditions,
        result,
        matches,
        fails,
        comp.thresholds,
        comp.params_used,
        unknown,
        _costly(rule.match),
        amount.expr if amount is not None else None,
    )
