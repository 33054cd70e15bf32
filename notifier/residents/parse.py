"""Cells of spreadsheet rows -> typed, validated values with their errors and warnings.

Pure work on values (no database, no report), so chunks of rows can be parsed in worker
processes (residents/pool.py) and give exactly what the in-process path gives. A chunk is
parsed column by column (`Chunk`): a column of text or enum cells is read by C-level `map`
calls and a column of numbers, dates, yes/no, phones or ID numbers by one comprehension; only a
cell those fast paths cannot read takes the per-cell path that locates its error or warning.
Per row that is ~3x cheaper than building a dict of each row's values (bench/importer.py).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import itemgetter
from typing import Any

from ..errors import Problem
from ..fields import FieldSpec, FieldType, norm_key
from ..masking import mask_email, mask_id_number, mask_phone, mask_text
from .validate import check_id_number, first_phone, id_birth_date, normalize_email

MAX_CELL = 10_000  # characters; a longer cell is a pasted document or an attack, not a roster value
_MISS = object()
_TEXT_OR_EMPTY = {str, type(None)}
# Types whose equal values are alike (1 == 1.0 == True are not; -0.0 == 0.0 neither): a column of
# one of them converts each distinct value once. str, or one of these, with empty cells.
_ALIKE = {int, bool, datetime}


@dataclass
class ParsedRow:
    row: int
    values: dict[str, Any]  # field name -> typed value (None when empty)
    errors: list[Problem]
    warnings: list[Problem]


@dataclass
class Chunk:
    """Parsed rows by column: `values[name][i]` is row `rows[i]`'s value. A row with errors is
    invalid; errors and warnings of a row are in the order the per-row reading gives them."""

    rows: list[int]  # spreadsheet row numbers
    values: dict[str, list[Any]]  # field name -> typed values (None when empty), one per row
    errors: dict[int, list[Problem]]  # index in the chunk -> the row's errors
    warnings: dict[int, list[Problem]]  # index in the chunk -> the row's warnings

    def __len__(self) -> int:
        return len(self.rows)

    def row_values(self, i: int) -> dict[str, Any]:
        return {name: col[i] for name, col in self.values.items()}

    def parsed_rows(self) -> Iterator[ParsedRow]:
        for i, n in enumerate(self.rows):
            yield ParsedRow(n, self.row_values(i), self.errors.get(i, []), self.warnings.get(i, []))

    def all_warnings(self) -> list[Problem]:
        return [p for i in sorted(self.warnings) for p in self.warnings[i]]


@dataclass(frozen=True)
class Column:
    idx: int
    name: str
    title: str
    convert: Callable[[Any], Any]
    lookup: dict[Any, Any] | None  # an enum: its spellings -> values (any other cell goes to `convert`)
    text: bool  # a text field: a text cell is its value


@dataclass(frozen=True)
class Plan:
    """How one sheet's columns are read (built once per import, sent once to each worker)."""

    columns: tuple[Column, ...]
    titles: dict[str, str]  # field name -> its header in the file
    birth: FieldSpec | None
    width: int  # cells a row needs for every mapped column


def plan(header: list[str], mapping: list[tuple[int, FieldSpec]], birth: FieldSpec | None = None) -> Plan:
    special: dict[str, Callable[[Any], Any]] = {
        "phone": first_phone,
        "email": normalize_email,
        "id_number": check_id_number,
        "resident_id": norm_key,
    }
    columns = []
    for idx, spec in mapping:
        convert = special.get(spec.name) or spec.converter()
        enum = spec.name not in special and spec.type is FieldType.ENUM
        lookup: dict[Any, Any] | None = spec.lookup if enum else None
        text = spec.name not in special and spec.type is FieldType.TEXT
        columns.append(Column(idx, spec.name, header[idx], convert, lookup, text))
    titles = {c.name: c.title for c in columns}
    return Plan(
        tuple(columns),
        titles,
        birth if "id_number" in titles else None,
        max((c.idx for c in columns), default=-1) + 1,
    )


def parse_rows(
    table_rows: Iterable[tuple[int, list[Any]]],
    header: list[str],
    mapping: list[tuple[int, FieldSpec]],
    birth: FieldSpec | None = None,
    chunk_rows: int = 2000,
) -> Iterator[ParsedRow]:
    """Row by row (what import_records and tests read): the rows of parse_chunk's chunks."""
    p = plan(header, mapping, birth)
    for chunk in chunks(table_rows, chunk_rows):
        yield from parse_chunk(chunk, p).parsed_rows()


def chunks(rows: Iterable[tuple[int, list[Any]]], size: int) -> Iterator[list[tuple[int, list[Any]]]]:
    from itertools import islice

    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection while rows are read or parsed: they allocate a list per row (of text
    or values: no cycles), and collections meanwhile walk every object still young. Reading and
    parsing 100,000 CSV rows in a process holding a generated register took 2.2 s of CPU with the
    collector on, 1.7-1.9 s with it paused (~4 µs a row). Garbage is freed as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_chunk(chunk: list[tuple[int, list[Any]]], p: Plan) -> Chunk:
    with gc_paused():
        return _parse_chunk(chunk, p)


def _parse_chunk(chunk: list[tuple[int, list[Any]]], p: Plan) -> Chunk:
    rows = [n for n, _ in chunk]
    cells: list[list[Any]] = [c for _, c in chunk]
    if cells and min(map(len, cells)) < p.width:  # a short row: its missing cells are empty
        cells = [c if len(c) >= p.width else [*c, *repeat(None, p.width - len(c))] for c in cells]
    out = Chunk(rows, {}, {}, {})
    for col in p.columns:
        out.values[col.name] = _column(col, list(map(itemgetter(col.idx), cells)), out)
    _after(out, p)
    return out


def _column(col: Column, raw: list[Any], out: Chunk) -> list[Any]:
    """One column's values; cells that are too long, unreadable or unusable get their error or
    warning (by row index) and None."""
    try:
        raw = list(map(str.strip, raw))
        all_text = alike = True
    except TypeError:  # an empty or typed (XLSX) cell
        types = set(map(type, raw))
        all_text = types <= _TEXT_OR_EMPTY
        typed = types - _TEXT_OR_EMPTY
        alike = all_text or (len(typed) == 1 and typed <= _ALIKE)  # numbers, dates or yes/no
        if all_text:
            raw = [None if c is None else c.strip() for c in raw]
        else:
            raw = [c.strip() if isinstance(c, str) else c for c in raw]
    if all_text and None not in raw:
        if max(map(len, raw), default=0) > MAX_CELL:
            _too_long(col, raw, out)
        if col.text:
            return [c or None for c in raw]
        if col.name == "resident_id" and all(map(str.isascii, raw)):
            return [c or None for c in raw]  # norm_key of stripped ASCII text is the text
        raw = [c or None for c in raw]
    else:  # text and empty (XLSX) cells, or typed ones
        raw = [(c or None) if isinstance(c, str) else c for c in raw]
        if any(isinstance(c, str) and len(c) > MAX_CELL for c in raw):
            _too_long(col, raw, out)
        if col.text and all_text:
            return raw
    if col.lookup is not None:
        values = list(map(col.lookup.get, raw, repeat(_MISS)))
        if values.count(_MISS):  # empty cells, and spellings the lookup does not hold
            for i, v in enumerate(values):
                if v is _MISS:
                    values[i] = None if raw[i] is None else _one(col, raw[i], i, out)
        return values
    if col.text:
        return [c if c is None or isinstance(c, str) else _one(col, c, i, out) for i, c in enumerate(raw)]
    convert = col.convert
    try:
        if alike:  # cells of one type (text, whole numbers, dates or yes/no; empty ones aside):
            distinct = set(raw)  # equal cells read alike, so each distinct one is read once
            distinct.discard(None)
            if len(distinct) * 2 <= len(raw):  # household sizes, incomes, yes/no; not phones
                return list(map({c: convert(c) for c in distinct}.get, raw))
        return [None if c is None else convert(c) for c in raw]
    except ValueError:  # the column again, cell by cell, to locate each bad cell
        return [None if c is None else _one(col, c, i, out) for i, c in enumerate(raw)]


def _too_long(col: Column, raw: list[Any], out: Chunk) -> None:
    for i, c in enumerate(raw):
        if isinstance(c, str) and len(c) > MAX_CELL:
            out.errors.setdefault(i, []).append(
                Problem(
                    f"the cell holds {len(c):,} characters; at most {MAX_CELL:,} are accepted",
                    row=out.rows[i],
                    column=col.title,
                )
            )
            raw[i] = None


def _one(col: Column, raw: Any, i: int, out: Chunk) -> Any:
    """One cell through the column's converter; a ValueError becomes the row's error (or, for a
    phone or e-mail, a warning: a mistyped number is masked as the number it was meant to be)."""
    try:
        return col.convert(raw)
    except ValueError as exc:
        rownum, name = out.rows[i], col.name
        if name in ("phone", "email"):
            shown = mask_phone(str(raw)) if name == "phone" else mask_email(str(raw))
            out.warnings.setdefault(i, []).append(
                Problem(f"{shown}: {exc}; dropped, row imported", row=rownum, column=col.title)
            )
        elif name == "id_number":
            out.errors.setdefault(i, []).append(
                Problem(f"{mask_id_number(str(raw))}: {exc}", row=rownum, column=col.title)
            )
        else:
            out.errors.setdefault(i, []).append(Problem(mask_text(str(exc)), row=rownum, column=col.title))
        return None


def _after(out: Chunk, p: Plan) -> None:
    """What depends on several cells of a row: the phone's kind and its "more than one number"
    warning, a missing resident id, the birth date against the ID number."""
    values = out.values
    phones = values.get("phone")
    if phones is not None:
        kinds: list[Any] = [None] * len(phones)
        for i, found in enumerate(phones):
            if found is None:
                continue
            (phones[i], kinds[i]), more = found
            if more:
                out.warnings.setdefault(i, []).append(
                    Problem(
                        f"the cell holds more than one number; the first usable one, "
                        f"{mask_phone(phones[i])}, was used",
                        row=out.rows[i],
                        column=p.titles["phone"],
                    )
                )
        values["phone_kind"] = kinds
    for i, rid in enumerate(values["resident_id"]):
        if not rid:
            out.errors.setdefault(i, []).insert(
                0, Problem("resident id is missing", row=out.rows[i], column=p.titles["resident_id"])
            )
    if p.birth is not None:
        _check_births(out, p.birth, p.titles.get(p.birth.name))


def _check_births(out: Chunk, birth: FieldSpec, title: str | None) -> None:
    """Fill a missing birth date from the ID number; warn when the two disagree (the cell is kept)."""
    idns = out.values["id_number"]
    given_col = out.values.setdefault(birth.name, [None] * len(idns))
    for i, idn in enumerate(idns):
        if not idn:
            continue
        born = id_birth_date(idn)
        given = given_col[i]
        if given is None:
            given_col[i] = born
        elif given != born:
            if (
                birth.precision == "month"
                and given.day == 1
                and (given.year, given.month) == (born.year, born.month)
            ):
                given_col[i] = born
            else:
                out.warnings.setdefault(i, []).append(
                    Problem(
                        f"{birth.label} {given.isoformat()} contradicts the birth date in the ID number; "
                        "the cell's date was kept",
                        row=out.rows[i],
                        column=title or birth.label,
                    )
                )


def split(pieces: list[Chunk], n: int) -> tuple[Chunk, list[Chunk]]:
    """The first `n` rows of chunks `pieces` (parsed from consecutive rows) as one chunk, and the
    rest: what parse_chunk gives those rows as one chunk, since it parses each row alone."""
    if len(pieces[0]) == n:
        return pieces[0], pieces[1:]
    taken: list[Chunk] = []
    need = n
    while need:
        first = pieces[0]
        if len(first) <= need:
            taken.append(first)
            pieces = pieces[1:]
            need -= len(first)
        else:
            taken.append(_rows(first, 0, need))
            pieces = [_rows(first, need, len(first)), *pieces[1:]]
            need = 0
    out = Chunk([], {name: [] for name in taken[0].values}, {}, {})
    for c in taken:
        base = len(out.rows)
        out.rows.extend(c.rows)
        for name, col in c.values.items():
            out.values[name].extend(col)
        out.errors.update((i + base, p) for i, p in c.errors.items())
        out.warnings.update((i + base, p) for i, p in c.warnings.items())
    return out, pieces


def _rows(c: Chunk, a: int, b: int) -> Chunk:
    """Rows a..b-1 of a chunk."""
    return Chunk(
        c.rows[a:b],
        {name: col[a:b] for name, col in c.values.items()},
        {i - a: p for i, p in c.errors.items() if a <= i < b},
        {i - a: p for i, p in c.warnings.items() if a <= i < b},
    )


def rows_of(chunks: Iterable[Chunk]) -> Iterator[ParsedRow]:
    for chunk in chunks:
        yield from chunk.parsed_rows()
