"""A rule's amount on a date: one SQL expression in integer fen, and the same computation in words.

SQLite has no exact decimal type (a NUMERIC column holds a binary float), so the SQL never
multiplies money as floats: a field is first read as an exact integer of 1/10000 units (fields
are stored with four decimals: ROUND(x * 10000) recovers it), a rate as an integer of 1/10000
yuan, and the product is divided back to fen with half-up rounding in integer arithmetic. Bands,
caps and sums are whole fen already, so the amount is exact on SQLite and PostgreSQL alike and
equals what `describe` computes with Decimal. A field the amount needs that is NULL makes the
amount NULL (compile.py then leaves the rule's result at review, never 0 yuan).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from ..errors import Problem
from .model import Amount, Band, Bands, FieldAmount, Fixed, Per, Rule

E4 = 10_000  # fields and rates as integers of 1/10000
FEN_PER_E8 = 1_000_000  # rate(1e-4 yuan) x quantity(1e-4) = 1e-8 yuan; 1 fen = 1e6 of those


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _int(value: int) -> sa.ColumnElement[int]:
    return sa.literal(value, sa.BigInteger())


def _div_half_up(x: sa.ColumnElement[Any], d: int) -> sa.ColumnElement[Any]:
    """x / d rounded half away from zero (Decimal's ROUND_HALF_UP), in integer arithmetic."""
    half = d // 2
    return sa.case((x >= 0, (x + _int(half)) // _int(d)), else_=-((_int(half) - x) // _int(d)))


def _e4(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(sa.func.round(col * _int(E4)), sa.BigInteger())


def fen_to_yuan(fen: int | None) -> Decimal | None:
    return None if fen is None else (Decimal(fen) / 100).quantize(Decimal("0.01"))


@dataclass
class AmountSQL:
    """The compiled amount: `expr` in fen; `steps` the values in force (for explanations and snapshots)."""

    expr: sa.ColumnElement[Any]
    params: dict[str, dict[str, Any]]


class _Compiler:
    def __init__(self, rule: Rule, columns: dict[str, sa.ColumnElement[Any]], on: date) -> None:
        self.rule, self.cols, self.on = rule, columns, on
        self.problems: list[Problem] = []
        self.params: dict[str, dict[str, Any]] = {}

    def missing(self, name: str, mark: tuple[int, int]) -> None:
        self.problems.append(
            Problem(
                f"parameter {name!r} has no value in force on {self.on}",
                file=self.rule.file,
                line=mark[0],
                column=mark[1],
            )
        )

    def rate(self, name: str, mark: tuple[int, int]) -> Decimal:
        p = self.rule.parameters[name]
        value = p.value_on(self.on)
        if value is None:
            self.missing(name, mark)
            return Decimal(0)
        self.params[name] = {"value": str(value), "unit": p.unit, "reference": p.reference}
        return value

    def fixed(self, f: Fixed) -> int:
        return f.fen or 0 if f.param is None else int(self.rate(f.param, f.mark) * 100)

    def table(self, b: Bands) -> tuple[Band, ...]:
        if b.param is None:
            return b.table
        p = self.rule.parameters[b.param]
        table = p.table_on(self.on)
        if table is None:
            self.missing(b.param, b.mark)
            return ()
        self.params[b.param] = {"value": _table_text(table), "unit": p.unit, "reference": p.reference}
        return table

    def node(self, a: Amount) -> sa.ColumnElement[Any]:
        b = a.body
        expr: sa.ColumnElement[Any]
        if isinstance(b, Fixed):
            expr = _int(self.fixed(b))
        elif isinstance(b, FieldAmount):
            expr = _div_half_up(_e4(self.cols[b.field]), E4 // 100)
        elif isinstance(b, Per):
            rate = int(self.rate(b.param, b.mark) * E4)
            expr = _div_half_up(_e4(self.cols[b.times_field]) * _int(rate), FEN_PER_E8)
        elif isinstance(b, Bands):
            expr = self.bands(b)
        else:
            parts = [self.node(p) for p in b.parts]
            expr = parts[0]
            for part in parts[1:]:
                expr = expr + part
        if a.at_least is not None:
            low = _int(self.fixed(a.at_least))
            expr = sa.case((expr < low, low), else_=expr)
        if a.at_most is not None:
            high = _int(self.fixed(a.at_most))
            expr = sa.case((expr > high, high), else_=expr)
        return expr

    def bands(self, b: Bands) -> sa.ColumnElement[Any]:
        col = self.cols[b.field]
        whens: list[tuple[sa.ColumnElement[bool], sa.ColumnElement[Any]]] = [(col.is_(None), sa.null())]
        for band in self.table(b):
            tests = []
            if b.age:  # age >= low <=> born on or before the day `low` years earlier
                if band.low is not None:
                    tests.append(col <= years_before(self.on, int(band.low)))
                if band.high is not None:
                    tests.append(col > years_before(self.on, int(band.high) + 1))
            else:
                if band.low is not None:
                    tests.append(col >= band.low)
                if band.high is not None:
                    tests.append(col <= band.high)
            whens.append((sa.and_(sa.true(), *tests), _int(band.fen)))
        return sa.case(*whens, else_=_int(0))


def compile_amount(
    rule: Rule, columns: dict[str, sa.ColumnElement[Any]], on: date
) -> tuple[AmountSQL | None, list[Problem]]:
    """The rule's amount over `columns` (field name -> column) on `on`, in fen; None without amount:."""
    if rule.amount is None:
        return None, []
    c = _Compiler(rule, columns, on)
    expr = c.node(rule.amount)
    return AmountSQL(expr, c.params), c.problems


def _table_text(table: tuple[Band, ...]) -> str:
    return "; ".join(f"{_end(b.low)}-{_end(b.high)}: {fen_to_yuan(b.fen)}" for b in table)


def _end(v: Decimal | None) -> str:
    return "" if v is None else f"{v.normalize():f}"


# -- the same computation in words (rules explain) -----------------------------------------
def half_up_fen(yuan: Decimal) -> int:
    return int((yuan * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Described:
    fen: int | None
    lines: list[str]


def _yuan(fen: int | None) -> str:
    return "无法计算" if fen is None else f"{fen_to_yuan(fen)}元"


class Describer:
    """The amount from a resident's values with each step in Chinese and the document behind it."""

    def __init__(self, rule: Rule, labels: dict[str, tuple[str, str]], on: date) -> None:
        self.rule, self.labels, self.on = rule, labels, on  # labels: field -> (label, unit)

    def ref(self, name: str) -> str:
        p = self.rule.parameters[name]
        return f"（依据{p.reference}）" if p.reference else ""

    def fixed(self, f: Fixed) -> tuple[int, str]:
        if f.param is None:
            return f.fen or 0, f"{fen_to_yuan(f.fen)}元"
        value = self.rule.parameters[f.param].value_on(self.on) or Decimal(0)
        return int(value * 100), f"{fen_to_yuan(int(value * 100))}元{self.ref(f.param)}"

    def describe(self, a: Amount, values: dict[str, Any], depth: int = 0) -> Described:
        pad = "  " * depth
        name = f"{a.label}：" if a.label else ""
        b = a.body
        lines: list[str] = []
        fen: int | None
        if isinstance(b, Fixed):
            fen, text = self.fixed(b)
            lines.append(f"{pad}{name}定额 {text}")
        elif isinstance(b, FieldAmount):
            label, unit = self.labels[b.field]
            v = values.get(b.field)
            fen = None if v is None else half_up_fen(Decimal(v))
            lines.append(f"{pad}{name}{label} {_value(v, unit)} = {_yuan(fen)}")
        elif isinstance(b, Per):
            label, unit = self.labels[b.times_field]
            rate = self.rule.parameters[b.param].value_on(self.on) or Decimal(0)
            p_unit = self.rule.parameters[b.param].unit
            q = values.get(b.times_field)
            fen = None if q is None else half_up_fen(rate * Decimal(q))
            lines.append(
                f"{pad}{name}{label} {_value(q, unit)} × {rate.normalize()}{p_unit or '元'}"
                f"{self.ref(b.param)} = {_yuan(fen)}（四舍五入到分）"
            )
        elif isinstance(b, Bands):
            fen, text = self.band(b, values.get(b.field))
            lines.append(f"{pad}{name}{text}")
        else:
            total: int | None = 0
            lines.append(f"{pad}{name}以下各项之和：")
            for part in b.parts:
                d = self.describe(part, values, depth + 1)
                lines += d.lines
                total = None if total is None or d.fen is None else total + d.fen
            fen = total
            lines.append(f"{pad}合计 {_yuan(fen)}")
        if fen is not None and a.at_least is not None:
            low, text = self.fixed(a.at_least)
            if fen < low:
                lines.append(f"{pad}低于最低标准，按{text}计")
                fen = low
        if fen is not None and a.at_most is not None:
            high, text = self.fixed(a.at_most)
            if fen > high:
                lines.append(f"{pad}超过最高限额，按{text}计")
                fen = high
        return Described(fen, lines)

    def band(self, b: Bands, raw: Any) -> tuple[int | None, str]:
        label, unit = self.labels[b.field]
        table = b.table if b.param is None else self.rule.parameters[b.param].table_on(self.on) or ()
        ref = self.ref(b.param) if b.param else ""
        if raw is None:
            return None, f"{label}无数据，无法确定档次"
        value = Decimal(age_on(raw, self.on)) if b.age else Decimal(raw)
        shown = f"{self.on.isoformat()}时年龄{value}岁" if b.age else f"{label} {_value(raw, unit)}"
        for band in table:
            if (band.low is None or value >= band.low) and (band.high is None or value <= band.high):
                span = _span(band, "岁" if b.age else unit)
                return band.fen, f"{shown}，属于{span}档，标准 {fen_to_yuan(band.fen)}元{ref}"
        return 0, f"{shown}，不在任何档次内，计 0.00元{ref}"


def _value(v: Any, unit: str) -> str:
    return "无数据" if v is None else f"{Decimal(v).normalize():f}{unit}"


def _span(band: Band, unit: str) -> str:
    if band.high is None:
        return f"{_end(band.low)}{unit}及以上"
    if band.low is None:
        return f"{_end(band.high)}{unit}及以下"
    return f"{_end(band.low)}-{_end(band.high)}{unit}"
