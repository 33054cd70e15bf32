"""A rule, a date and the residents table -> one SQL query with one column per condition.

Each condition column is 2 (pass), 1 (unknown: data missing) or 0 (fail); `if_missing` turns
unknown into pass or fail. In this order Kleene's three-valued logic is plain arithmetic:
`all` is the minimum of its parts, `any` the maximum, `not` is 2 - x. So a missing value never
silently drops anyone (the overall `result` is 2 match, 0 no_match or 1 review), no NULL
reaches the combination, and each condition is computed once per resident. The same query gives
counts, the audience and per-resident explanations. Only bound parameters reach the SQL.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from ..errors import RuleError, Problem
from ..fields import DataDictionary, FieldType
from ..storage.fieldcols import column_name
from ..storage.schema import records
from .model import Combinator, Condition, FieldCondition, Leaf, ParamRef, RecordCondition, Rule

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
    query: sa.Select           # resident_id, cond_<id>..., result: for explanations and tests
    leaves: list[Leaf]
    conditions: dict[str, sa.ColumnElement[Any]]   # condition id -> its value over the residents table
    result: sa.ColumnElement[Any]                  # the overall value over the residents table
    thresholds: dict[str, Any]  # condition id -> value in force (for explanations)
    params_used: dict[str, dict[str, Any]]

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


def _tri(test: sa.ColumnElement[bool], missing: sa.ColumnElement[bool], if_missing: str) -> sa.ColumnElement[Any]:
    when_missing = {"review": UNKNOWN, "fail": FAIL, "pass": PASS}[if_missing]
    return sa.case((missing, when_missing), (test, PASS), else_=FAIL)


class _Compiler:
    def __init__(self, rule: Rule, dictionary: DataDictionary, table: sa.Table, on: date) -> None:
        self.rule, self.d, self.t, self.on = rule, dictionary, table, on
        self.thresholds: dict[str, Any] = {}
        self.params_used: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []

    def value(self, v: Any, leaf: FieldCondition) -> Any:
        if isinstance(v, ParamRef):
            p = self.rule.parameters[v.name]
            base = p.value_on(self.on)
            if base is None:
                self.problems.append(Problem(f"parameter {v.name!r} has no value in force on {self.on}",
                                             file=self.rule.file, line=leaf.mark[0], column=leaf.mark[1]))
                return Decimal(0)
            self.params_used[v.name] = {"value": str(base), "unit": p.unit, "reference": p.reference}
            return base * v.times
        return v

    def field_leaf(self, c: FieldCondition) -> sa.ColumnElement[Any]:
        spec = self.d.all_fields()[c.field]
        col = self.t.c[column_name(spec)]
        missing = col.is_(None)
        op, raw = c.op, c.value
        if op == "is_missing":
            self.thresholds[c.id] = raw
            return sa.case((missing, PASS if raw else FAIL), else_=FAIL if raw else PASS)
        if op in ("age_at_least", "age_below"):
            cutoff = years_before(self.on, raw)
            self.thresholds[c.id] = raw
            test = col <= cutoff if op == "age_at_least" else col > cutoff
            return _tri(test, missing, c.if_missing)
        val: Any = tuple(self.value(v, c) for v in raw) if isinstance(raw, tuple) else self.value(raw, c)
        self.thresholds[c.id] = val
        if spec.type is FieldType.BOOL and op in ("equals", "not_equals"):
            val = bool(val)
        tests = {
            "equals": lambda: col == val, "not_equals": lambda: col != val,
            "in": lambda: col.in_(val), "not_in": lambda: col.not_in(val),
            "less_than": lambda: col < val, "at_most": lambda: col <= val,
            "greater_than": lambda: col > val, "at_least": lambda: col >= val,
            "between": lambda: col.between(val[0], val[1]),
        }
        return _tri(tests[op](), missing, c.if_missing)

    def record_leaf(self, c: RecordCondition) -> sa.ColumnElement[Any]:
        r = records
        conds = [r.c.kind == c.kind, r.c.resident_id == self.t.c.resident_id]
        for fname, value in c.where:
            conds.append(r.c.data[fname].as_string() == str(value))
        if c.within_years:
            cutoff = years_before(self.on, c.within_years)
            conds.append(r.c.record_date >= cutoff)
            self.thresholds[c.id] = cutoff
        exists = sa.exists().where(*conds)
        return sa.case((exists, PASS if c.quantifier == "any" else FAIL), else_=FAIL if c.quantifier == "any" else PASS)

    def combine(self, cond: Condition, cols: Any) -> sa.ColumnElement[Any]:
        if isinstance(cond, (FieldCondition, RecordCondition)):
            return cols[f"cond_{cond.id}"]
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


def compile_rule(rule: Rule, dictionary: DataDictionary, table: sa.Table, on: date) -> CompiledRule:
    comp = _Compiler(rule, dictionary, table, on)
    leaves = rule.leaves()
    conditions = {leaf.id: comp.field_leaf(leaf) if isinstance(leaf, FieldCondition) else comp.record_leaf(leaf)
                  for leaf in leaves}
    if comp.problems:
        raise RuleError(f"{rule.file}: cannot be evaluated on {on}", comp.problems)
    # Counts and audiences filter on `result` straight over the table (no subquery to join back):
    # SQLite then stops at the first decisive condition of each resident, as AND/OR would.
    result = comp.combine(rule.match, {f"cond_{k}": v for k, v in conditions.items()})
    query = sa.select(table.c.resident_id, *[v.label(f"cond_{k}") for k, v in conditions.items()], result.label("result"))
    return CompiledRule(rule, on, query, leaves, conditions, result, comp.thresholds, comp.params_used)
