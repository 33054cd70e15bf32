"""The import's INSERT of new residents: values by column -> tuples -> the driver's executemany.

Parsed rows arrive by column (residents/parse.py `Chunk`), so the rows to insert are one
`zip` of the columns after each column's bind processor (a date as text on SQLite) has been
applied to it; no dict per row, no per-row parameter handling. The statement is written for
the driver's positional parameter style (SQLite `?`, psycopg `%s`), column names quoted by
the dialect. Values are converted exactly as SQLAlchemy converts them (the dialect's own
type's bind processor), so what is stored is what any other write stores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import sqlalchemy as sa

_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class ColumnInsert:
    """INSERT INTO table (columns) of rows given as one list of values per column."""

    def __init__(self, conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> None:
        dialect = conn.dialect
        mark = _MARKS.get(dialect.paramstyle)
        if mark is None:  # pragma: no cover - notifier runs on sqlite3 and psycopg
            raise RuntimeError(f"no positional parameters for the {dialect.paramstyle!r} style")
        q = dialect.identifier_preparer
        names = ", ".join(q.quote(c) for c in columns)
        self.sql = (
            f"INSERT INTO {q.format_table(table)} ({names}) VALUES ({', '.join([mark] * len(columns))})"
        )
        self.columns = list(columns)
        self.procs = [table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns]

    def __call__(
        self,
        conn: sa.Connection,
        values: Sequence[Sequence[Any]],
        keep: list[int] | None,
        constants: dict[str, Any] | None = None,
    ) -> int:
        """Insert rows `keep` (indices; None: all) of `values` (one sequence per column, in the
        order of `columns`, those named in `constants` left out: the same value on every row)."""
        constants = constants or {}
        given = iter(values)
        cols: list[Any] = []
        for name, proc in zip(self.columns, self.procs, strict=True):
            if name in constants:
                v = constants[name]
                cols.append(repeat(proc(v) if proc is not None and v is not None else v))
                continue
            col = next(given)
            if keep is not None:
                col = [col[i] for i in keep]
            if proc is not None:
                col = [None if v is None else proc(v) for v in col]
            cols.append(col)
        rows = list(zip(*cols, strict=False))  # constants repeat: the lists set the length
        if rows:
            conn.exec_driver_sql(self.sql, rows)
        return len(rows)


class KeysIn:
    """`column IN (keys)` for a few thousand keys as ONE bound parameter: a JSON array read by
    json_each on SQLite, an array compared with = ANY on PostgreSQL. An expanding IN costs
    SQLAlchemy a named parameter and a bind conversion per key (~3 µs each), more than the
    query itself; this costs one json.dumps."""

    def __init__(self, conn: sa.Connection) -> None:
        self.postgresql = conn.dialect.name == "postgresql"

    def where(self, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
        if self.postgresql:
            from sqlalchemy.dialects.postgresql import ARRAY

            return column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))
        values: sa.Select[Any] = sa.select(sa.column("value")).select_from(
            sa.func.json_each(sa.bindparam(name))
        )
        return column.in_(values.scalar_subquery())

    def param(self, keys: Sequence[Any]) -> Any:
        return list(keys) if self.postgresql else json.dumps(list(keys), ensure_ascii=False)
