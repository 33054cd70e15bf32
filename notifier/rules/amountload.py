"""Reading `amount:` and band-table parameters: every problem located (file:line:col).

Amounts are money paid out, so everything is checked before any SQL exists: yuan with at most
two decimals (whole fen), rates with at most four (what rules/amounts.py computes exactly in
integers), bands in order without overlap, fields of the right type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from ..errors import did_you_mean
from ..fields import DataDictionary, FieldType
from ..yamlsafe import YList, YMap
from .model import Amount, Band, Bands, FieldAmount, Fixed, Parameter, Per, Sum

Mark = tuple[int, int]
Bad = Callable[[Mark, str], None]
KINDS = ("value", "field", "bands", "per", "sum")
NODE_KEYS = (*KINDS, "label", "min", "max")
NUMBER_TYPES = (FieldType.INT, FieldType.DECIMAL)
RATE_PLACES = 4  # a rate of 0.0001 yuan per unit is the finest rules/amounts.py computes exactly


def _number(raw: Any) -> bool:
    return isinstance(raw, (int, Decimal)) and not isinstance(raw, bool)


def places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 99


def to_fen(value: Decimal) -> int | None:
    """Whole fen of a yuan amount, or None when it has fractions of a fen."""
    return int(value * 100) if places(value) <= 2 else None


def band_table(raw: Any, mark: Mark, bad: Bad, *, whole: bool) -> tuple[Band, ...] | None:
    """[[low, high, yuan], ...]: ends inclusive, null an open end, rows in order without overlap."""
    if not isinstance(raw, YList) or not raw:
        bad(mark, "a band table is a list of [low, high, amount] rows, e.g. [[80, 89, 50], [90, null, 100]]")
        return None
    out: list[Band] = []
    for i, row in enumerate(raw):
        where = raw.where(i)
        if not isinstance(row, YList) or len(row) != 3:
            bad(where, "each band is [low, high, amount]; null leaves an end open")
            return None
        low, high, pay = row
        for end in (low, high):
            if end is not None and (not _number(end) or (whole and not isinstance(end, int))):
                bad(
                    where, f"band end {end!r} is not a {'whole number (age in years)' if whole else 'number'}"
                )
                return None
        if not _number(pay) or to_fen(Decimal(pay)) is None:
            bad(row.where(2), f"band amount {pay} is not an amount in yuan with at most 2 decimals")
            return None
        lo = None if low is None else Decimal(low)
        hi = None if high is None else Decimal(high)
        if lo is not None and hi is not None and hi < lo:
            bad(where, f"band [{low}, {high}] ends below where it starts")
            return None
        if out:
            prev = out[-1].high
            if prev is None or lo is None or lo <= prev:
                bad(where, "bands must be in order and must not overlap (each starts above the previous end)")
                return None
        fen = to_fen(Decimal(pay))
        assert fen is not None
        out.append(Band(lo, hi, fen))
    return tuple(out)


def table_parameter(name: str, body: YMap, values: YMap, bad: Bad) -> Parameter | None:
    """A parameter whose dated values are band tables ({DATE: [[low, high, amount], ...]})."""
    tables = []
    for since, raw in values.items():
        try:
            day = date.fromisoformat(str(since))
        except ValueError:
            bad(
                values.key_where(since),
                f"{since!r} is not a date (values are keyed by the date they take effect)",
            )
            continue
        table = band_table(raw, values.where(since), bad, whole=False)
        if table is not None:
            tables.append((day, table))
    return Parameter(
        name, str(body.get("unit") or ""), str(body.get("reference") or ""), (), tuple(sorted(tables))
    )


class AmountReader:
    """`amount:` of one rule file, read against its parameters and the data dictionary."""

    def __init__(self, dictionary: DataDictionary, params: dict[str, Parameter], bad: Bad) -> None:
        self.d, self.params, self.bad = dictionary, params, bad

    def node(self, raw: Any, mark: Mark) -> Amount | None:
        if _number(raw) or (isinstance(raw, YMap) and "param" in raw):
            fixed = self.fixed(raw, mark)
            return Amount(fixed, "", None, None, mark) if fixed else None
        if not isinstance(raw, YMap):
            self.bad(
                mark, f"an amount is a mapping with one of {', '.join(KINDS)} (and optional min, max, label)"
            )
            return None
        for key in raw:
            if key not in NODE_KEYS:
                self.bad(raw.key_where(key), f"unknown key {key!r} in amount{did_you_mean(key, NODE_KEYS)}")
        kinds = [k for k in raw if k in KINDS]
        if len(kinds) != 1:
            self.bad(
                raw.mark,
                f"an amount needs exactly one of {', '.join(KINDS)}"
                + (f"; found {', '.join(kinds)}" if kinds else ""),
            )
            return None
        kind = kinds[0]
        body: Any = {
            "value": self.fixed,
            "field": self.field_amount,
            "bands": self.bands,
            "per": self.per,
            "sum": self.sum,
        }[kind](raw[kind], raw.where(kind))
        low = self.fixed(raw["min"], raw.where("min")) if "min" in raw else None
        high = self.fixed(raw["max"], raw.where("max")) if "max" in raw else None
        if body is None or ("min" in raw and low is None) or ("max" in raw and high is None):
            return None
        return Amount(body, str(raw.get("label") or ""), low, high, raw.mark)

    def fixed(self, raw: Any, mark: Mark) -> Fixed | None:
        if isinstance(raw, YMap) and "param" in raw:
            for key in raw:
                if key != "param":
                    self.bad(raw.key_where(key), f"unknown key {key!r} in parameter reference")
            p = self.param(raw.get("param"), raw.where("param"))
            if p is None:
                return None
            if p.tables:
                self.bad(raw.where("param"), f"parameter {p.name!r} holds band tables, not an amount")
                return None
            if any(to_fen(v) is None for _, v in p.values):
                self.bad(raw.where("param"), f"parameter {p.name!r} has values with fractions of a fen")
                return None
            return Fixed(None, p.name, raw.where("param"))
        if not _number(raw) or to_fen(Decimal(raw)) is None:
            self.bad(mark, f"{raw} is not an amount in yuan with at most 2 decimals (or {{param: NAME}})")
            return None
        return Fixed(to_fen(Decimal(raw)), None, mark)

    def param(self, name: Any, mark: Mark) -> Parameter | None:
        p = self.params.get(str(name))
        if p is None:
            self.bad(mark, f"unknown parameter {name!r}{did_you_mean(str(name), self.params)}")
        return p

    def number_field(self, name: Any, mark: Mark, *, dates: bool = False) -> tuple[str, bool] | None:
        """(field, is an age) for a number field, or a date field read as an age (`age` is birth_date's)."""
        if name == "age" and self.d.field("age") is None and self.d.field("birth_date") is not None:
            name = "birth_date"
        spec = self.d.field(str(name))
        if spec is None:
            self.bad(mark, f"unknown field {name!r}{did_you_mean(str(name), self.d.all_fields())}")
            return None
        if spec.type in NUMBER_TYPES:
            return spec.name, False
        if dates and spec.type is FieldType.DATE:
            return spec.name, True
        wanted = "a number or date field (a date is read as an age)" if dates else "a number field"
        self.bad(mark, f"{spec.name!r} is a {spec.type.value} field; an amount needs {wanted}")
        return None

    def field_amount(self, raw: Any, mark: Mark) -> FieldAmount | None:
        found = self.number_field(raw, mark)
        return FieldAmount(found[0], mark) if found else None

    def bands(self, raw: Any, mark: Mark) -> Bands | None:
        if not isinstance(raw, YMap):
            self.bad(
                mark,
                "bands: takes {field: NAME, table: [[low, high, amount], ...]} or {field: NAME, param: NAME}",
            )
            return None
        allowed = ("field", "on", "table", "param")
        for key in raw:
            if key not in allowed:
                self.bad(raw.key_where(key), f"unknown key {key!r} in bands{did_you_mean(key, allowed)}")
        found = self.number_field(raw.get("field"), raw.where("field"), dates=True)
        if found is None:
            return None
        fname, age = found
        on = raw.get("on", "run_date")
        if on != "run_date":
            self.bad(raw.where("on"), f"on: takes run_date (the date the run is for), not {on!r}")
            return None
        if ("table" in raw) == ("param" in raw):
            self.bad(raw.mark, "bands: needs either table: or param:")
            return None
        if "param" in raw:
            p = self.param(raw["param"], raw.where("param"))
            if p is None:
                return None
            if not p.tables:
                self.bad(raw.where("param"), f"parameter {p.name!r} holds numbers, not band tables")
                return None
            if age and any(
                b.low is not None and b.low % 1 or b.high is not None and b.high % 1
                for _, t in p.tables
                for b in t
            ):
                self.bad(raw.where("param"), f"parameter {p.name!r}: age bands take whole years")
                return None
            return Bands(fname, age, (), p.name, raw.where("param"))
        table = band_table(raw["table"], raw.where("table"), self.bad, whole=age)
        return Bands(fname, age, table, None, raw.where("table")) if table is not None else None

    def per(self, raw: Any, mark: Mark) -> Per | None:
        if not isinstance(raw, YMap) or "param" not in raw or "times_field" not in raw:
            self.bad(mark, "per: takes {param: RATE, times_field: FIELD}")
            return None
        for key in raw:
            if key not in ("param", "times_field"):
                self.bad(
                    raw.key_where(key),
                    f"unknown key {key!r} in per{did_you_mean(key, ('param', 'times_field'))}",
                )
        p = self.param(raw["param"], raw.where("param"))
        found = self.number_field(raw["times_field"], raw.where("times_field"))
        if p is None or found is None:
            return None
        if p.tables:
            self.bad(raw.where("param"), f"parameter {p.name!r} holds band tables, not a rate")
            return None
        if any(places(v) > RATE_PLACES for _, v in p.values):
            self.bad(raw.where("param"), f"rate {p.name!r} has more than {RATE_PLACES} decimals")
            return None
        return Per(p.name, found[0], raw.where("param"))

    def sum(self, raw: Any, mark: Mark) -> Sum | None:
        if not isinstance(raw, YList) or not raw:
            self.bad(mark, "sum: takes a non-empty list of amounts")
            return None
        parts = [self.node(part, raw.where(i)) for i, part in enumerate(raw)]
        kept = tuple(p for p in parts if p is not None)
        return Sum(kept, mark) if len(kept) == len(parts) else None
