"""The column-by-column import path gives what a cell-by-cell reading gives: each cell's value is
its field's own `FieldSpec.parse` (or that cell's located error), chunk boundaries change
nothing, the column INSERT stores exactly what SQLAlchemy's own insert stores, one-parameter
key lookups find exactly the keys, and the ID check digit's fast sum is the digit-by-digit sum."""

from __future__ import annotations

import operator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.app import App
from notifier.clock import utcnow
from notifier.fields import FieldType
from notifier.residents.header import HeaderMatcher
from notifier.residents.importer import ImportReport, _map_columns, import_residents
from notifier.residents.insert import ColumnInsert, KeysIn
from notifier.residents.parse import parse_rows
from notifier.residents.pool import IN_PROCESS, Pooling
from notifier.residents.validate import _ID_CHECK, _ID_WEIGHTS, check_id_number
from notifier.samplegen import RESIDENTS_HEADER, generate, write_csv
from tests.support.project import write_config

TYPED = (FieldType.TEXT, FieldType.ENUM, FieldType.BOOL, FieldType.DATE, FieldType.INT, FieldType.DECIMAL)
SPECIAL = {"resident_id", "phone", "email", "id_number"}


def _odd_rows() -> list[tuple[int, list[Any]]]:
    """Generated rows with invalid ones, plus typed (XLSX-like) cells, short rows and odd spellings."""
    sample = generate(300, invalid=30, seed=3)
    rows: list[tuple[int, list[Any]]] = [(n, list(r)) for n, r in enumerate(sample.residents_rows, start=2)]
    rows[5][1][12] = 3  # household size as a number
    rows[6][1][13] = 4200.5  # income as a float
    rows[7][1][15] = True  # 是否低保对象 as a bool
    rows[8][1][3] = date(1970, 1, 1)  # birth date as a date
    del rows[9][1][5:]  # a short row: the rest is empty
    rows[10][1][2] = "  女 "  # spaces around an enum spelling
    rows[11][1][2] = "妇"  # not a spelling
    rows[12][1][15] = "也许"  # not a yes/no
    rows[13][1][12] = "三口"  # not a number
    rows[14][1][1] = "王" * 10_001  # too long
    rows[15][1][0] = "Ｒ０１５"  # full-width id, normalised
    rows[16][1][9] = "13812345678 / 13912345678"  # two numbers
    rows[20][1][18], rows[21][1][18] = 1, True  # equal, not alike: True is no area of farmland
    rows[22][1][3] = datetime(1980, 2, 3)  # typed dates among text ones
    return rows


def test_each_cell_is_what_its_field_parses(tmp_path: Path) -> None:
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        specs = app.dictionary.all_fields()
    finally:
        app.close()
    header = list(RESIDENTS_HEADER)
    mapping = _map_columns(header, HeaderMatcher(specs), "x.csv", ImportReport("x.csv"))
    rows = _odd_rows()
    parsed = list(parse_rows(rows, header, mapping, None, chunk_rows=1_000))
    checked = 0
    for (rownum, cells), got in zip(rows, parsed, strict=True):
        assert got.row == rownum
        for idx, spec in mapping:
            if spec.name in SPECIAL or spec.type not in TYPED:
                continue
            raw = cells[idx] if idx < len(cells) else None
            located = [e for e in got.errors if e.column == header[idx]]
            if isinstance(raw, str) and len(raw.strip()) > 10_000:
                assert got.values[spec.name] is None and "10,000" in located[0].message
                continue
            try:
                want = spec.parse(raw)
            except ValueError:
                assert got.values.get(spec.name) is None and len(located) == 1, (rownum, spec.name)
                continue
            assert got.values[spec.name] == want and not located, (rownum, spec.name, raw)
            assert type(got.values[spec.name]) is type(want)
            checked += 1
    assert checked > 2_000
    by_row = {p.row: p for p in parsed}
    assert by_row[17].values["resident_id"] == "R015"
    assert by_row[18].values["phone"] == "+8613812345678"
    assert "more than one number" in by_row[18].warnings[-1].message
    assert by_row[11].values["household_size"] is None  # the short row: its missing cells are empty
    assert not [e for e in by_row[11].errors if e.column == "家庭人口数"]
    # chunk boundaries change nothing: one chunk, chunks of 1, chunks of 7
    for size in (1, 7):
        assert list(parse_rows(rows, header, mapping, None, chunk_rows=size)) == parsed


def _stored_raw(conn: sa.Connection, table: sa.Table, key: str) -> tuple[Any, ...]:
    q = f"SELECT * FROM {table.name} WHERE resident_id = '{key}'"
    return tuple(conn.exec_driver_sql(q).one())


def test_column_insert_stores_what_sqlalchemy_stores(app: App) -> None:
    t = app.residents
    now = utcnow()
    values: dict[str, Any] = {
        "name": "王建国",
        "id_number": "110101195003071235",
        "phone": None,
        "f_birth_date": date(1950, 3, 7),
        "f_income_per_capita": Decimal("3990.50"),
        "f_dibao": True,
        "f_household_size": 4,
        "f_gender": "male",
    }
    names = list(values)
    with app.engine.begin() as conn:
        conn.execute(t.insert(), [{"resident_id": "A"} | values | {"created_at": now, "updated_at": now}])
        insert = ColumnInsert(conn, t, ["resident_id", *names, "created_at", "updated_at"])
        columns = [["B", "C"], *([v, None] for v in values.values())]
        assert insert(conn, columns, [0], {"created_at": now, "updated_at": now}) == 1
        a, b = _stored_raw(conn, t, "A"), _stored_raw(conn, t, "B")
        assert a[1:] == b[1:] and a[0] == "A" and b[0] == "B"
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() == 2  # row 1 ("C") left out
        typed = conn.execute(sa.select(t).where(t.c.resident_id == "B")).one()._mapping
        assert typed["f_birth_date"] == date(1950, 3, 7) and typed["f_income_per_capita"] == Decimal("3990.5")
        assert typed["f_dibao"] is True and typed["f_household_size"] == 4


def test_keys_in_finds_exactly_the_keys(app: App) -> None:
    t = app.residents
    now = utcnow()
    ids = ["R1", "张三'); --", 'quote"d', "R4"]
    with app.engine.begin() as conn:
        conn.execute(t.insert(), [{"resident_id": r, "created_at": now, "updated_at": now} for r in ids])
        keys = KeysIn(conn)
        q = sa.select(t.c.resident_id).where(keys.where(t.c.resident_id, "ids"))
        found = set(conn.execute(q, {"ids": keys.param([*ids[1:3], "R9", "r1"])}).scalars())
    assert found == set(ids[1:3])


def test_report_does_not_depend_on_chunks_or_dry_run(tmp_path: Path) -> None:
    """An ID number under two resident ids 2,000 rows apart: the same report with chunks of
    300 and of 5,000, in a dry run and in a real one (the later row is named by the earlier)."""
    sample = generate(2_500, invalid=10, seed=11)
    rows = [list(r) for r in sample.residents_rows]
    twin = next(i for i in range(5, 100) if i + 2 not in sample.invalid_rows and rows[i][4])
    other = list(rows[twin])
    other[0] = "R-OTHER"
    rows.append(other)
    path = tmp_path / "r.csv"
    write_csv(path, sample.residents_header, rows)
    reports = []
    for k, (pooling, dry) in enumerate(
        ((Pooling(min_rows=1 << 62, chunk_rows=300), False), (IN_PROCESS, False), (IN_PROCESS, True))
    ):
        folder = tmp_path / str(k)
        folder.mkdir()
        app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
        try:
            report = import_residents(app, path, pooling=pooling, dry_run=dry)
            reports.append(report.as_json() | {"dry_run": None})
        finally:
            app.close()
    assert reports[0] == reports[1] == reports[2]
    last = [e for e in reports[0]["errors"] if e["row"] == len(rows) + 1]
    assert len(last) == 1 and f"(row {twin + 2}): one person, one resident" in last[0]["message"]


bodies = st.builds(
    lambda region, born, seq: f"{region}{born:%Y%m%d}{seq}",
    st.text("0123456789", min_size=6, max_size=6),
    st.dates(date(1900, 1, 1), date(2020, 12, 31)),
    st.text("0123456789", min_size=3, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_id_check_digit_sum_is_the_digit_sum(body: str) -> None:
    """Exactly one check character is accepted: the one the digit-by-digit weighted sum gives."""
    check = _ID_CHECK[sum(map(operator.mul, map(int, body), _ID_WEIGHTS)) % 11]
    for last in "0123456789X":
        try:
            check_id_number(body + last)
        except ValueError as exc:
            assert last != check and "check digit" in str(exc)
        else:
            assert last == check
