"""executemany without SQLAlchemy's per-row parameter machinery.

A Core statement is compiled once for the connection's dialect; each column's bind processor
(e.g. date -> text on SQLite) is looked up once; rows then go to the driver's executemany as
plain tuples or dicts. SQLAlchemy's own executemany spends ~30 µs per row on the same work,
which dominated imports, run creation and the dispatcher's bookkeeping.
Only for statements without expanding (IN) parameters.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    procs = {name: bp.type.bind_processor(conn.dialect) for name, bp in compiled.binds.items()}
    names = list(compiled.positiontup) if compiled.positional else list(defaults)
    names_procs = [(n, procs.get(n)) for n in names]

    def value(row: Mapping[str, Any], name: str, proc: Any) -> Any:
        v = row[name] if name in row else defaults.get(name)
        return proc(v) if proc is not None and v is not None else v

    if compiled.positional:
        params: list[Any] = [tuple(value(r, n, p) for n, p in names_procs) for r in rows]
    else:
        params = [{n: value(r, n, p) for n, p in names_procs} for r in rows]
    conn.exec_driver_sql(compiled.string, params)  # type: ignore[arg-type]
    return len(rows)


def insert_new(engine: sa.Engine, table: sa.Table, *conflict_columns: str) -> Any:
    """INSERT that skips rows already present (ON CONFLICT DO NOTHING, on SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns) or None)
