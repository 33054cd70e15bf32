"""Typed columns for the fields declared in the data dictionary.

Each declared resident field `x` is a column `f_x` on `residents`, with the SQL type of its
field type, so rules compile to plain typed comparisons. Columns are added (never dropped)
when the dictionary gains a field; a field whose type changed is refused, because the stored
values were read under the old type.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from ..errors import InputError
from ..fields import DataDictionary, FieldSpec, FieldType
from .schema import residents

SQL_TYPES: dict[FieldType, sa.types.TypeEngine[Any]] = {
    FieldType.TEXT: sa.Text(),
    FieldType.ENUM: sa.Text(),
    FieldType.INT: sa.BigInteger(),
    FieldType.DECIMAL: sa.Numeric(18, 4),
    FieldType.DATE: sa.Date(),
    FieldType.BOOL: sa.Boolean(),
}


def column_name(spec: FieldSpec) -> str:
    return spec.name if spec.builtin else f"f_{spec.name}"


@lru_cache(maxsize=32)
def _table(signature: tuple[tuple[str, str], ...]) -> sa.Table:
    md = sa.MetaData()
    table = residents.to_metadata(md)
    for name, ftype in signature:
        table.append_column(sa.Column(f"f_{name}", SQL_TYPES[FieldType(ftype)]))
    return table


def residents_table(dictionary: DataDictionary) -> sa.Table:
    """The residents table as the dictionary sees it (static columns + field columns)."""
    return _table(tuple((f.name, f.type.value) for f in dictionary.fields.values()))


def _affinity(t: sa.types.TypeEngine[Any]) -> str:
    for cls, name in (
        (sa.Boolean, "bool"),
        (sa.Date, "date"),
        (sa.Integer, "int"),
        (sa.Numeric, "decimal"),
        (sa.Float, "decimal"),
        (sa.String, "text"),
        (sa.Text, "text"),
    ):
        if isinstance(t, cls):
            return name
    return t.__class__.__name__


def sync_field_columns(engine: sa.Engine, dictionary: DataDictionary) -> list[str]:
    """Add missing field columns; refuse type changes. Returns the columns added."""
    existing = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("residents")}
    added: list[str] = []
    problems: list[str] = []
    for spec in dictionary.fields.values():
        col = column_name(spec)
        want = SQL_TYPES[spec.type]
        if col in existing:
            if _affinity(existing[col]) != _affinity(want):
                problems.append(
                    f"field {spec.name!r} is stored as {_affinity(existing[col])} but declared "
                    f"{spec.type.value}: give the new meaning a new field name"
                )
            continue
        with engine.begin() as conn:
            ddl = sa.schema.CreateColumn(sa.Column(col, want)).compile(dialect=engine.dialect)
            conn.exec_driver_sql(f"ALTER TABLE residents ADD COLUMN {ddl}")
        added.append(col)
    if problems:
        raise InputError(f"{dictionary.source}: " + "; ".join(problems))
    return added
