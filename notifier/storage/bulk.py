"""executemany without SQLAlchemy's per-row parameter machinery.

A Core statement is compiled once for the connection's dialect; each column's bind processor
(e.g. date -> text on SQLite) is looked up once; rows then go to the driver's executemany as
plain tuples or dicts. SQLAlchemy's own executemany spends ~30 µs per row on the same work,
which dominated imports, run creation and the dispatcher's bookkeeping.
Only for statements without expanding (IN) parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from operator import itemgetter
from typing import Any

import sqlalchemy as sa


def executemany(conn: sa.Connection, stmt: sa.Executable, rows: Iterable[Mapping[str, Any]]) -> int:
    rows = list(rows)
    if not rows:
        return 0
    # An INSERT names just the columns the rows carry (as SQLAlchemy's own executemany does).
    keys = list(rows[0]) if isinstance(stmt, sa.Insert) else None
    compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)  # type: ignore[attr-defined]
    defaults = compiled.construct_params(_check=False)
    # The dialect's own type (SQLite's DATETIME, PostgreSQL's JSONB), as SQLAlchemy would use it:
    # the generic type has no processor for dates on SQLite, and the driver's adapter would then
    # store another text format than every other write (and than comparisons in SQL expect).
    procs = {
        name: bp.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
        for name, bp in compiled.binds.items()
    }
    names = list(compiled.positiontup) if compiled.positional else list(defaults)
    names_procs = [(n, procs.get(n)) for n in names]
    # A value the statement itself gives (`.values(updated_at=now)`) is the same in every row:
    # added to each row here, so the rows take the fast path rather than a lookup per cell.
    shared = {n: defaults.get(n) for n in names if n not in rows[0]}
    if shared:
        rows = [{**shared, **r} for r in rows]

    try:
        values = _fast(rows, names_procs)
    except KeyError:  # some row leaves a column to its default
        values = [tuple(_value(r, n, p, defaults) for n, p in names_procs) for r in rows]
    params: list[Any] = values if compiled.positional else [dict(zip(names, v, strict=False)) for v in values]
    conn.exec_driver_sql(compiled.string, params)
    return len(rows)


def _value(row: Mapping[str, Any], name: str, proc: Any, defaults: Mapping[str, Any]) -> Any:
    v = row[name] if name in row else defaults.get(name)
    return proc(v) if proc is not None and v is not None else v


def _fast(rows: list[Mapping[str, Any]], names_procs: list[tuple[str, Any]]) -> list[Any]:
    """Rows that carry every column: one itemgetter call per row, and bind processors only where
    a column has one, remembering the last value (a batch shares its timestamps)."""
    get = (
        itemgetter(*[n for n, _ in names_procs])
        if len(names_procs) > 1
        else (lambda r: (r[names_procs[0][0]],))
    )
    convert = [(i, p) for i, (_, p) in enumerate(names_procs) if p is not None]
    if not convert:
        return [get(r) for r in rows]
    memo: list[list[Any]] = [[object(), None] for _ in convert]
    out = []
    for r in rows:
        t = list(get(r))
        for (i, proc), last in zip(convert, memo, strict=False):
            v = t[i]
            if v is not None:
                if v is not last[0]:
                    last[0], last[1] = v, proc(v)
                t[i] = last[1]
        out.append(tuple(t))
    return out


def insert_new(engine: sa.Engine, table: sa.Table, *conflict_columns: str) -> Any:
    """INSERT that skips rows already present (ON CONFLICT DO NOTHING, on SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns) or None)
