"""`rules review`: the residents a rule cannot decide (result `review`) and the data each one lacks.

A resident is undecided when a condition with `if_missing: review` meets a NULL and nothing else
decides the result. Only the fields whose NULL keeps the result open are listed, as `explain`
would name them (the conditions whose outcome is unknown), but pruned: in `any(a, b)` a missing
`a` does not matter once `b` passes, and in `all(a, b)` nothing matters once `b` fails (such a
resident is no_match, not in the queue at all). One query over the register, streamed in
chunks, ordered by township, village and id as village cadres go through it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..fields import FieldSpec
from ..masking import mask_name
from .compile import PASS, UNKNOWN, CompiledRule, compile_rule
from .model import Combinator, Condition, FieldCondition, Rule

CHUNK = 5_000  # rows fetched at a time: the queue is never all in memory


@dataclass(frozen=True)
class Waiting:
    """One undecided resident, masked as staff may see them, with the fields that would decide."""

    resident_id: str
    name: str  # masked
    township: str
    village: str
    missing: tuple[str, ...]  # field names, in the rule's order

    def as_json(self, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "resident": self.resident_id,
            "name": self.name,
            "township": self.township,
            "village": self.village,
            "missing": [{"field": f, "label": labels[f]} for f in self.missing],
        }


@dataclass(frozen=True)
class ReviewQueue:
    """The queue of one rule on a date: its size, counts by village and by field, and the first
    `shown` residents (all of them unless the caller limits it)."""

    rule: str
    version: str
    on: date
    total: int
    by_village: dict[str, int]  # "乡镇 村" -> residents
    by_field: dict[str, int]  # field name -> residents lacking it
    labels: dict[str, str]  # field name -> Chinese label (fields.yaml)
    shown: list[Waiting] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "on": self.on.isoformat(),
            "total": self.total,
            "by_village": self.by_village,
            "by_field": [
                {"field": f, "label": self.labels[f], "residents": n} for f, n in self.by_field.items()
            ],
            "residents": [w.as_json(self.labels) for w in self.shown],
        }


def _value(cond: Condition, got: dict[str, int]) -> int:
    """A condition's 0/1/2 from its leaves' (compile.py's arithmetic, in Python)."""
    if isinstance(cond, Combinator):
        parts = [_value(c, got) for c in cond.children]
        if cond.op == "not":
            return PASS - parts[0]
        return min(parts) if cond.op == "all" else max(parts)
    return got[cond.id]


def undecided(cond: Condition, got: dict[str, int]) -> list[str]:
    """The leaves whose unknown outcome keeps `cond` unknown: none when `cond` is decided; for
    all/any, those of the parts that are unknown themselves (a decided part adds nothing)."""
    if _value(cond, got) != UNKNOWN:
        return []
    if isinstance(cond, Combinator):
        return [leaf for child in cond.children for leaf in undecided(child, got)]
    return [cond.id]


def fillable(rule: Rule, specs: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
    """The fields whose absence can put a resident in the queue (conditions with if_missing:
    review), in the rule's order: the columns a fill-in sheet may carry."""
    out: dict[str, FieldSpec] = {}
    for leaf in rule.leaves():
        if isinstance(leaf, FieldCondition) and leaf.if_missing == "review" and leaf.op != "is_missing":
            out.setdefault(leaf.field, specs[leaf.field])
    return out


def _query(app: App, c: CompiledRule) -> sa.Select[Any]:
    t = app.residents
    return (
        sa.select(
            t.c.resident_id,
            t.c.name,
            t.c.township,
            t.c.village,
            *[v.label(f"cond_{k}") for k, v in c.conditions.items()],
        )
        .where(t.c.left_at.is_(None), sa.not_(c.matches), sa.not_(c.fails))
        .order_by(sa.nulls_last(t.c.township.asc()), sa.nulls_last(t.c.village.asc()), t.c.resident_id)
    )


def waiting(app: App, rule: Rule, on: date) -> Iterator[Waiting]:
    """Every undecided resident of `rule` on `on`, streamed, ordered by township/village/id."""
    c = compile_rule(rule, app.dictionary, app.residents, on)
    leaf_field = {leaf.id: leaf.field for leaf in c.leaves if isinstance(leaf, FieldCondition)}
    ids = list(c.conditions)
    with app.reader.connect() as conn:
        result = conn.execution_options(yield_per=CHUNK).execute(_query(app, c))
        for rows in result.partitions():
            for row in rows:
                got = dict(zip(ids, row[4:], strict=True))
                leaves = undecided(rule.match, got)
                missing = tuple(dict.fromkeys(leaf_field[i] for i in leaves if i in leaf_field))
                yield Waiting(row[0], mask_name(row[1]), row[2] or "", row[3] or "", missing)


def review_queue(app: App, rule: Rule, on: date, limit: int | None = None) -> ReviewQueue:
    """The queue's counts and its first `limit` residents (all when None), from one pass."""
    specs = app.dictionary.all_fields()
    order = fillable(rule, specs)
    villages: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    shown: list[Waiting] = []
    total = 0
    for w in waiting(app, rule, on):
        total += 1
        villages[place(w)] += 1
        fields.update(w.missing)
        if limit is None or len(shown) < limit:
            shown.append(w)
    return ReviewQueue(
        rule.id,
        rule.version,
        on,
        total,
        dict(villages),
        {f: fields[f] for f in order if fields[f]},
        {f: spec.label for f, spec in order.items()},
        shown,
    )


def place(w: Waiting) -> str:
    """Where a resident lives as a cadre says it: 乡镇 村 (either may be empty)."""
    return " ".join(p for p in (w.township, w.village) if p) or "—"
