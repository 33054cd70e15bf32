"""A CSV read in pieces (by the pool's workers, or piece by piece in process) gives exactly what
csv.reader gives reading the whole text: the same records with the same row numbers, for any
cut; a text where that cannot be proven is refused and read whole. Parsed chunks split and
joined again are the chunk of all their rows; an import pooled by pieces (forked, or spawned from
a thread) reports and stores what the in-process import does; the INSERT's faster bind
conversions give what the type's own bind processor gives."""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from notifier.app import App
from notifier.fields import BUILTIN_FIELDS
from notifier.residents import readers
from notifier.residents.header import HeaderMatcher, footer_label
from notifier.residents.importer import ImportReport, _map_columns, import_residents
from notifier.residents.insert import _bound, _isoformat
from notifier.residents.parse import parse_chunk, plan, split
from notifier.residents.pool import IN_PROCESS, Pooling
from notifier.residents.readers import CsvText, csv_records, read_csv
from notifier.samplegen import generate, write_csv
from tests.support.project import write_config
from tests.support.threads import call


def _whole(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


# quotes, separators and line ends where they break naive splitting, and text between them
texts = st.lists(
    st.sampled_from(['"', '""', ",", "\n", "\r\n", "\r", "a", "b c", "王", " ", '"x,\ny"', "\t"]),
    max_size=30,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(texts, st.integers(1, 12))
def test_pieces_are_the_whole_texts_records(text: str, size: int) -> None:
    records = csv_records(text)
    if records is None:
        return
    whole = _whole(text)
    assert records == len(whole)
    got: list[list[str]] = []
    for piece, row in CsvText(text, 0, 1).pieces(size):
        assert row == len(got) + 1  # each piece numbered from where the last one ended
        got.extend(_whole(piece))
    assert got == whole


def test_texts_that_might_split_wrongly_are_refused() -> None:
    accepted = ['a,"b\nc"\nd\n', '"say ""hi""",x\r\ny\r\n', "a,b", '"",\n', "\n\n"]
    for text in accepted:
        assert csv_records(text) == len(_whole(text)), text
    refused = [
        "",
        'ab"c,d\n"e\n',  # a quote inside an unquoted cell is text to csv.reader
        '"ab"c,d\n',  # text after a closing quote
        ' "a,b"\n',  # a space before the opening quote
        'a,"b\n',  # never closed
        "a\rb\n",  # a lone carriage return ends a record too
        "x" * (csv.field_size_limit() + 1),  # longer than csv's field limit: its error is kept
        '"' + "x" * csv.field_size_limit() + '"\n',
    ]
    for text in refused:
        assert csv_records(text) is None, text[:20]


def _reference(text: str, matcher: HeaderMatcher) -> tuple[list[tuple[int, list[str]]], list[int], int]:
    """Rows as the whole-text reading numbers them, without empty and footer rows (the footer
    rows' numbers apart), the header found as the readers find it, and the data rows' count."""
    lines = _whole(text)
    at = readers.pick_header(lines[:10], matcher) or 0
    kept, footers = [], []
    for n, cells in enumerate(lines[at + 1 :], start=at + 2):
        if not any(c.strip() for c in cells):
            continue
        if footer_label(cells):
            footers.append(n)
            continue
        kept.append((n, cells))
    return kept, footers, len(lines) - at - 1


def test_a_roster_read_in_pieces_is_the_roster_read_whole(tmp_path: Path, monkeypatch: Any) -> None:
    sample = generate(400, invalid=20, seed=5)
    rows = [list(r) for r in sample.residents_rows]
    rows[3][8] = "桐山县\n白沙镇, 4组"  # a quoted cell over two lines, with a comma
    rows[7][1] = '王"小"二'  # quotes inside a quoted cell
    rows[50:50] = [[""] * 5, [], ["合计", "400"], [" ", "\t"]]  # blank and footer rows mid-file
    rows[120][0] = "张三"  # a first cell that is not ASCII
    rows.append(["制表人：李四"])
    path = tmp_path / "r.csv"
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerows([["花名册"], [], sample.residents_header, *rows])
    path.write_text(buf.getvalue(), encoding="utf-8")
    matcher = HeaderMatcher(dict(BUILTIN_FIELDS))
    kept, footers, total = _reference(buf.getvalue(), matcher)
    for chars in (1, 300, 5_000, 1 << 20):
        monkeypatch.setattr(readers, "PIECE_CHARS", chars)
        table = read_csv(path, matcher)
        assert table.text is not None and table.header == sample.residents_header
        assert (table.header_row, table.total) == (3, total)
        assert list(table.rows) == kept
        assert [p.row for p in table.skipped] == footers


def test_chunks_split_and_joined_are_the_chunk_of_their_rows(tmp_path: Path) -> None:
    app = App.open(write_config(tmp_path, f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        specs = app.dictionary.all_fields()
    finally:
        app.close()
    sample = generate(700, invalid=60, seed=9)
    header = sample.residents_header
    mapping = _map_columns(header, HeaderMatcher(specs), "r.csv", ImportReport("r.csv"))
    p = plan(header, mapping, specs.get("birth_date"))
    rows = [(n, list(r)) for n, r in enumerate(sample.residents_rows, start=2)]
    whole = parse_chunk(rows, p)
    assert whole.errors and whole.warnings
    for cuts in ((0, 700), (0, 1, 2, 700), (0, 250, 251, 600, 700), (0, 333, 700)):
        parts = [parse_chunk(rows[a:b], p) for a, b in zip(cuts, cuts[1:], strict=False)]
        out, taken = [], 0
        while taken < 700:
            n = min(160, 700 - taken)
            chunk, parts = split(parts, n)
            out.append(chunk)
            taken += n
        assert not parts
        assert out == [parse_chunk(rows[a : a + 160], p) for a in range(0, 700, 160)]


def _stored(app: App) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        q = "SELECT * FROM residents ORDER BY rowid"
        return [tuple(r)[:10] + tuple(r)[12:] for r in conn.exec_driver_sql(q)]  # not the stamps


def _imported(
    folder: Path, path: Path, pooling: Pooling, from_thread: bool
) -> tuple[dict[str, Any], list[Any]]:
    folder.mkdir()
    app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
    try:
        got: list[ImportReport] = []
        run = lambda: got.append(import_residents(app, path, pooling=pooling))  # noqa: E731
        call(run, from_thread=from_thread)
        return got[0].as_json() | {"file": None}, _stored(app)
    finally:
        app.close()


@pytest.mark.parametrize("from_thread", [False, True])
def test_import_pooled_by_pieces_equals_in_process(tmp_path: Path, from_thread: bool) -> None:
    """Pieces and chunks end at different rows; blank, footer and multi-line rows among them;
    from a thread the workers are spawned, not forked."""
    sample = generate(2_000, invalid=40, seed=13)
    rows = [list(r) for r in sample.residents_rows]
    rows[700][8] = "白沙镇\n红旗村"
    rows[900:900] = [[], ["小计", "900"], [""] * 3]
    rows.append(list(rows[10]))  # a duplicate of row 12
    path = tmp_path / "r.csv"
    write_csv(path, sample.residents_header, rows)
    pooled_by_pieces = Pooling(min_rows=500, chunk_rows=300, workers=1, min_workers=1, max_load=math.inf)
    results = [
        _imported(tmp_path / name, path, p, from_thread)
        for name, p in (("a", pooled_by_pieces), ("b", IN_PROCESS))
    ]
    (pooled, stored), (inline, stored_inline) = results
    assert pooled["rejected"] >= 40 and pooled["imported"] > 1_900 and len(stored) == pooled["imported"]
    assert any("小计" in w["message"] for w in pooled["warnings"])
    assert pooled == inline and stored == stored_inline


def test_bind_conversions_are_the_processors(app: App) -> None:
    dialect = app.engine.dialect
    t = app.residents
    dates: list[Any] = [date(1, 1, 1), date(999, 12, 31), date(2024, 2, 29), date(9999, 12, 31), None]
    typed = {
        "f_birth_date": [dates, dates * 3, [date(2020, 1, 2), datetime(2020, 1, 2, 3, 4), None]],
        "f_dibao": [[True, False, None] * 5, [True], [None, None]],
        "f_household_size": [[1, 2, 1, 2, 3, 1, None, 2], [True, 1, 1, 1]],  # True is not 1 here
    }
    for column, cols in typed.items():
        impl = t.c[column].type.dialect_impl(dialect)
        proc = impl.bind_processor(dialect)
        if proc is None:
            continue
        for col in cols:
            try:
                want = [None if v is None else proc(v) for v in col]
            except TypeError:  # a datetime in a DATE column: SQLAlchemy refuses it, and so do we
                with pytest.raises(TypeError):
                    _bound(col, proc, _isoformat(impl))
                continue
            assert _bound(col, proc, _isoformat(impl)) == want
    assert _isoformat(t.c["f_birth_date"].type.dialect_impl(dialect)) == (dialect.name == "sqlite")
    assert not _isoformat(sqlite.DATE(storage_format="%(day)02d/%(month)02d/%(year)04d"))
