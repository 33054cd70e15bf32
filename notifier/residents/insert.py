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
from collections.abc import Callable, Sequence
from datetime import date
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
_NONE = type(None)
_ALIKE = {bool, int, str}  # equal values of one of these types bind alike (1 == True does not)
_SQLITE_DATE = "%(year)04d-%(month)02d-%(day)02d"  # SQLAlchemy's DATE on SQLite: date.isoformat()


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
        impls = [table.c[c].type.dialect_impl(dialect) for c in columns]
        self.procs = [impl.bind_processor(dialect) for impl in impls]
        self.iso = list(map(_isoformat, impls))

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
        for name, proc, iso in zip(self.columns, self.procs, self.iso, strict=True):
            if name in constants:
                v = constants[name]
                cols.append(repeat(proc(v) if proc is not None and v is not None else v))
                continue
            col = next(given)
            if keep is not None:
                col = [col[i] for i in keep]
            if proc is not None:
                col = _bound(col, proc, iso)
            cols.append(col)
        rows = list(zip(*cols, strict=False))  # constants repeat: the lists set the length
        if rows:
            conn.exec_driver_sql(self.sql, rows)
        return len(rows)


def _isoformat(impl: Any) -> bool:
    """Whether a column type binds a date as date.isoformat() writes it: SQLite's DATE in its
    default storage format (SQLAlchemy formats year, month and day with `%`, ~2 µs a value)."""
    return isinstance(impl, sqlite.DATE) and getattr(impl, "_storage_format", None) == _SQLITE_DATE


def _bound(col: Sequence[Any], proc: Callable[[Any], Any], iso: bool) -> list[Any]:
    """A column through its bind processor: a column of dates (on SQLite) by date.isoformat, one
    of few distinct bools, ints or strings one call per distinct value; any other value by value."""
    kinds = set(map(type, col))
    kinds.discard(_NONE)
    if iso and kinds == {date}:  # not datetime: its isoformat writes the time too
        return [None if v is None else v.isoformat() for v in col]
    if len(kinds) == 1 and kinds <= _ALIKE:
        distinct = set(col)
        if len(distinct) * 2 <= len(col):
            bound: dict[Any, Any] = {v: None if v is None else proc(v) for v in distinct}
            return list(map(bound.__getitem__, col))
    return [None if v is None else proc(v) for v in col]


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
