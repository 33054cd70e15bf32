"""records(): the rows of a result as named tuples, the same values as SQLAlchemy's Row, by name
and by position; a column that cannot be a field name is refused rather than renamed."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.storage.records import records


@pytest.fixture
def conn(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    meta = sa.MetaData()
    a = sa.Table("a", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("at", sa.DateTime))
    b = sa.Table("b", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a_id", sa.Integer))
    meta.create_all(engine)
    with engine.begin() as c:
        at = datetime(2026, 4, 1, 8, 30, tzinfo=timezone.utc).replace(tzinfo=None)
        c.execute(a.insert(), [{"id": 1, "at": at}, {"id": 2, "at": None}])
        c.execute(b.insert(), [{"id": 10, "a_id": 1}])
        yield c, a, b
    engine.dispose()


def test_records_hold_the_values_rows_hold_by_name_and_by_position(conn) -> None:  # type: ignore[no-untyped-def]
    c, a, b = conn
    other = b.alias()
    has_b = sa.exists().where(other.c.a_id == a.c.id).label("has_b")
    q = (
        sa.select(a.c.id, a.c.at, b.c.id.label("b_id"), has_b)
        .join(b, b.c.a_id == a.c.id, isouter=True)
        .order_by(a.c.id)
    )
    rows = c.execute(q).all()
    got = records(c.execute(q))
    assert [tuple(r) for r in got] == [tuple(r) for r in rows]
    assert got[0].at == datetime(2026, 4, 1, 8, 30)  # the column type's result processing is kept
    assert (got[0].id, got[0].b_id, bool(got[0].has_b)) == (1, 10, True)
    assert (got[1].at, got[1].b_id, bool(got[1].has_b)) == (None, None, False)
    assert got[1][0] == 2
    assert records(c.execute(q.where(a.c.id > 5))) == []


def test_a_column_that_is_no_field_name_is_refused(conn) -> None:  # type: ignore[no-untyped-def]
    c, a, b = conn
    for name in ("from", "count(*)", "_private"):
        with pytest.raises(ValueError):
            records(c.execute(sa.select(a.c.id.label(name))))
