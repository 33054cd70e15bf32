"""The rows of a 公示 list: who a run reached, as the public may see them.

One function, `list_rows`, decides what of a resident reaches a notice board: the name masked
(张*三), township, village, household size and amount when known, and the fields the rule names
public (`public_fields:`, checked by the rule loader: never an ID number, phone or e-mail).
Names, township, village and the amount (fen, as stated in the notice) come from the run's stored
messages (as they stood when the run was frozen), the rest from the register; a household's size
is its members in the register's care when the register declares `household_id` (a rule with
`notify: household` lists one row per head), else the `household_size` field. Rows are sorted by
township, village, then name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..fields import DataDictionary, FieldSpec, FieldType
from ..masking import mask_name_ends
from ..rendering.templates import display_value
from ..storage.fieldcols import column_name
from ..storage.schema import deliveries, run_messages

HOUSEHOLD_SIZE = "household_size"  # the data dictionary's field, when it declares one
HOUSEHOLD_ID = "household_id"  # households.py: members counted when the register declares it


@dataclass(frozen=True)
class ListRow:
    """One line of a public list. `public` holds the rule's public fields, label -> shown value."""

    name_masked: str
    township: str
    village: str
    household_size: int | None = None
    amount: Decimal | None = None
    public: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name_masked,
            "township": self.township,
            "village": self.village,
            "household_size": self.household_size,
            "amount": None if self.amount is None else str(self.amount),
            "public": self.public,
        }


def shown(spec: FieldSpec, value: Any) -> str:
    """A register value as a notice board prints it: 是/否, an enum's first spelling, 6.5 亩."""
    if value is None or value == "":
        return ""
    if spec.type is FieldType.BOOL:
        return "是" if value else "否"
    if spec.type is FieldType.ENUM:
        spellings = spec.values.get(str(value)) or ()
        return str(spellings[0]) if spellings else str(value)
    text = str(display_value(value))
    return f"{text} {spec.unit}" if spec.unit and spec.type in (FieldType.INT, FieldType.DECIMAL) else text


def list_rows(app: App, run_id: int, public_fields: Sequence[str]) -> list[ListRow]:
    """The public list of a run's audience (every resident it froze, reached or not)."""
    d, m, t = deliveries, run_messages, app.residents
    members = sa.select(sa.distinct(d.c.resident_id)).where(d.c.run_id == run_id).scalar_subquery()
    specs = _specs(app.dictionary, public_fields)
    size = app.dictionary.field(HOUSEHOLD_SIZE)
    size_col: sa.ColumnElement[Any] | None = (
        t.c[column_name(size)] if size is not None and size.type is FieldType.INT else None
    )
    household = app.dictionary.field(HOUSEHOLD_ID)
    if household is not None:  # the members of the resident's household still in the register's care
        h, key = t.alias("h"), column_name(household)
        members_of = (
            sa.select(sa.func.count())
            .where(h.c[key] == t.c[key], h.c.left_at.is_(None))
            .correlate(t)
            .scalar_subquery()
        )
        size_col = sa.case((t.c[key].is_not(None), members_of), else_=size_col)
    cols: list[sa.ColumnElement[Any]] = [t.c.resident_id, t.c.name, t.c.township, t.c.village]
    cols += [t.c[column_name(s)].label(f"p_{i}") for i, s in enumerate(specs)]
    cols += [size_col.label("size")] if size_col is not None else []
    with app.reader.connect() as conn:
        frozen = {
            r.resident_id: r
            for r in conn.execute(
                sa.select(m.c.resident_id, m.c.recipient_name, m.c.township, m.c.village, m.c.amount).where(
                    m.c.run_id == run_id
                )
            )
        }
        register = conn.execute(sa.select(*cols).where(t.c.resident_id.in_(members))).all()
    rows = []
    for r in register:
        f = frozen.get(r.resident_id)
        name = (f.recipient_name if f is not None else None) or r.name or ""
        rows.append(
            (
                name,
                ListRow(
                    name_masked=mask_name_ends(name),
                    township=(f.township if f is not None else None) or r.township or "",
                    village=(f.village if f is not None else None) or r.village or "",
                    household_size=r._mapping.get("size") or None,
                    amount=None if f is None or f.amount is None else Decimal(f.amount) / 100,
                    public={s.label: shown(s, r._mapping[f"p_{i}"]) for i, s in enumerate(specs)},
                ),
            )
        )
    # by the full name (the pinyin-less codepoint order staff expect), not the masked one
    rows.sort(key=lambda x: (x[1].township, x[1].village, x[0]))
    return [row for _, row in rows]


def _specs(dictionary: DataDictionary, names: Sequence[str]) -> list[FieldSpec]:
    return [spec for n in names if (spec := dictionary.field(n)) is not None]


def rows_sha256(rows: Sequence[ListRow]) -> str:
    """The list's fingerprint, printed on it and audited: SHA-256 of its rows as canonical JSON."""
    body = json.dumps([r.as_json() for r in rows], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
