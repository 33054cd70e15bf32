"""Reading spreadsheets into (row number, cells), numbered as the spreadsheet shows them.

The header is found among the first rows (`header.pick_header`), so title rows above it are
skipped; total and signature rows below the data are skipped with a warning. An XLSX is
checked against zip bombs before either reader opens it, and the sheet holding the header is
used unless one is named. XLSX cells are read by python-calamine (Rust, about 5x faster than
openpyxl's read-only mode: bench/importer.py) and given openpyxl's types, so both readers yield
identical rows; a workbook holding error cells (#N/A, #DIV/0!), which calamine reads as empty,
is read by openpyxl, which keeps their text. A sheet read by calamine is held in memory, so the
import's worker can be forked to read its rows (Table.sheet_rows, pool.parsed_table).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from .header import HEADER_SEARCH_ROWS, HeaderMatcher, footer_label, pick_header
from .parse import gc_paused
from .textcodec import decode_text
from .xlsxguard import check_xlsx

__all__ = ["Table", "decode_text", "read_table"]

XLSX_READER = "calamine"  # or "openpyxl": what read_table uses (bench/importer.py compares both)
CALAMINE_MAX_XML = 256 << 20  # ~500,000 rows of sheet XML; a larger workbook is streamed by openpyxl


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, list[Any]]]  # (spreadsheet row number, cells)
    total: int | None  # data rows, when known up front
    encoding: str | None = None
    header_row: int = 1
    sheet: str | None = None
    skipped: list[Problem] = field(default_factory=list)  # footer rows, filled while `rows` is read
    text: CsvText | None = None  # a CSV readable in pieces (by the pool's workers); `rows` reads it so too
    # A calamine sheet's rows after the header, numbered, empty and footer rows still in: `rows`
    # filters these, so reading either advances both. The sheet is in memory, so a forked worker
    # reads them too (pool.parsed_table); None for CSV and openpyxl (a file read as it goes).
    sheet_rows: Iterator[tuple[int, list[Any]]] | None = None


def _nonempty(cells: list[Any]) -> bool:
    try:  # a CSV row is all text: one C-level pass (stops at the first non-empty cell)
        return any(map(str.strip, cells))
    except TypeError:  # a None or a typed XLSX cell before any non-empty text
        return any(c is not None and (not isinstance(c, str) or c.strip()) for c in cells)


def _table(
    head: list[list[Any]],
    rest: Iterator[list[Any]],
    matcher: HeaderMatcher | None,
    total_rows: int | None,
    *,
    in_memory: bool = False,
    **kw: Any,
) -> Table:
    """A Table from a sheet's first rows and the rest: header found, footer rows skipped.
    `in_memory`: `rest` reads a sheet held in memory (Table.sheet_rows)."""
    at = (pick_header(head, matcher) if matcher else None) or 0
    header = ["" if h is None else str(h).strip() for h in head[at]]
    skipped: list[Problem] = []

    numbered = enumerate(chain(head[at + 1 :], rest), start=at + 2)
    total = None if total_rows is None else max(total_rows - at - 1, 0)
    table = Table(header, resident_rows(numbered, skipped), total, header_row=at + 1, skipped=skipped, **kw)
    if in_memory:
        table.sheet_rows = numbered
    return table


def resident_rows(
    rows: Iterable[tuple[int, list[Any]]], skipped: list[Problem]
) -> Iterator[tuple[int, list[Any]]]:
    """Numbered rows without empty ones and footer rows (those are added to `skipped`)."""
    for n, cells in rows:
        first = cells[0] if cells else None
        if type(first) is str and (text := first.lstrip()) and text[0].isascii():
            yield n, cells  # a resident id first: not empty, not a footer row (footer_label)
            continue
        if not _nonempty(cells):
            continue
        word = footer_label(cells)
        if word:
            skipped.append(Problem(f"a {word} row, not a resident: skipped", row=n))
            continue
        yield n, cells


def read_csv(path: Path, matcher: HeaderMatcher | None = None) -> Table:
    text, encoding = decode_text(path.read_bytes(), str(path))
    records = csv_records(text)
    if records is not None:  # rows read piece by piece, in process or by the pool's workers
        head_end = skip_records(text, 0, HEADER_SEARCH_ROWS)
        head = list(csv.reader(io.StringIO(text[:head_end], newline="")))
        at = (pick_header(head, matcher) if matcher else None) or 0
        start = skip_records(text, 0, at + 1)
        source = CsvText(text, start, at + 2)
        table = _table(head, iter(()), matcher, records, encoding=encoding)
        table.rows = _csv_rows(source, table.skipped)
        table.text = source
        return table
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        with gc_paused():
            lines = list(reader)
    except csv.Error as exc:
        raise InputError(
            f"{path}: line {reader.line_num}: not readable as CSV ({exc}); "
            "cells are limited to 10,000 characters"
        ) from None
    if not lines:
        raise InputError(f"{path}: the file is empty (expected a header row)")
    return _table(
        lines[:HEADER_SEARCH_ROWS], iter(lines[HEADER_SEARCH_ROWS:]), matcher, len(lines), encoding=encoding
    )


@dataclass(frozen=True)
class CsvText:
    """A CSV's text whose records end exactly at its newlines outside quotes (`csv_records`), so
    it can be cut there into pieces that csv.reader reads alone as it reads them in the whole."""

    text: str
    start: int  # offset of the first record after the header
    first_row: int  # that record's spreadsheet row number

    def pieces(self, size: int) -> Iterator[tuple[str, int]]:
        """(piece, row number of its first record): pieces of about `size` characters, each
        ending at a record's end."""
        text, pos, row = self.text, self.start, self.first_row
        while pos < len(text):
            end = skip_records(text, min(pos + size, len(text)) - 1, 1, inside=pos)
            piece = text[pos:end]
            yield piece, row
            row += csv_records(piece, check=False) or 0
            pos = end


_QUOTES = re.compile('"+')


def csv_records(text: str, *, check: bool = True) -> int | None:
    """The number of records csv.reader reads from `text`, when every record ends at a newline
    outside quotes and csv.reader cannot fail on it; None otherwise (the text is then read whole).

    That holds when each quote opens a field (the text's start, a comma or a newline before it)
    or is inside a quoted field, and each quote closing one is followed by a comma, a line end
    or the end; `\r` only in `\r\n`; no line or quoted cell longer than csv's field limit.
    Then csv.reader's state at every quote is what the count of quotes before it says, and its
    records are the text's lines outside quotes. `check=False`: counting a piece of such text."""
    if not text:
        return None
    inner = 0  # newlines inside quoted fields
    if check and text.count("\r") != text.count("\r\n"):
        return None
    if '"' in text:
        limit, n, opened = csv.field_size_limit(), 0, 0
        for m in _QUOTES.finditer(text):
            s, e = m.span()
            if n % 2 == 0:
                if check and s and text[s - 1] not in ",\n":
                    return None
                opened = s
            n += e - s
            if n % 2 == 0:
                if check and (e < len(text) and text[e] not in ",\r\n" or e - opened > limit):
                    return None
                inner += text.count("\n", opened, e)
        if n % 2:
            return None
    if check and _long_line(text, csv.field_size_limit()):
        return None
    return text.count("\n") - inner + (not text.endswith("\n"))


def _long_line(text: str, limit: int) -> bool:
    """Whether a line is longer than `limit`: one that long holds a whole aligned window of
    limit/2 characters without a newline, so only such windows are measured exactly."""
    half = max(limit // 2, 1)
    for a in range(0, len(text), half):
        if a + half <= len(text) and text.find("\n", a, a + half) == -1:
            return max(map(len, text.split("\n"))) > limit
    return False


def skip_records(text: str, pos: int, n: int, *, inside: int | None = None) -> int:
    """The offset after the n-th record end (a newline outside quotes) from `pos`, or the text's
    end. `inside`: the record start from which quotes are counted, when `pos` is not one."""
    origin = pos if inside is None else inside
    for _ in range(n):
        nl = text.find("\n", pos)
        while nl != -1 and text.count('"', origin, nl) % 2:
            nl = text.find("\n", nl + 1)
        if nl == -1:
            return len(text)
        pos = origin = nl + 1
    return pos


def csv_piece_rows(piece: str, first_row: int, skipped: list[Problem]) -> list[tuple[int, list[str]]]:
    """A piece's residents' rows, numbered from `first_row`: what `_table` yields of them."""
    with gc_paused():
        numbered = list(enumerate(csv.reader(io.StringIO(piece, newline="")), start=first_row))
    try:  # every row's first cell non-empty and ASCII (a resident id): no empty nor footer row
        firsts = list(map(str.lstrip, map(itemgetter(0), map(itemgetter(1), numbered))))
    except IndexError:  # an empty line
        firsts = [""]
    if "" in firsts or not all(map(str.isascii, firsts)):
        return list(resident_rows(numbered, skipped))
    return numbered


def read_whole(table: Table) -> None:
    """Read a piecewise CSV table's rows now, all at once (what an import parsing in process
    does before it starts: its rows are then left out of the collector's passes, `_gc_frozen`)."""
    if table.text is not None:
        source = table.text
        table.rows = iter(csv_piece_rows(source.text[source.start :], source.first_row, table.skipped))
        table.text = None


def _csv_rows(source: CsvText, skipped: list[Problem]) -> Iterator[tuple[int, list[Any]]]:
    for piece, row in source.pieces(PIECE_CHARS):
        yield from csv_piece_rows(piece, row, skipped)


PIECE_CHARS = 1 << 20  # ~6,000 rows of a typical roster


def read_xlsx(
    path: Path, matcher: HeaderMatcher | None = None, sheet: str | None = None, *, reader: str | None = None
) -> Table:
    """`reader`: "calamine" (openpyxl when the workbook holds error cells) or "openpyxl";
    XLSX_READER when not given."""
    check_xlsx(path)
    if (reader or XLSX_READER) == "calamine" and _calamine_fits(path) and not has_error_cells(path):
        return _read_calamine(path, matcher, sheet)
    return _read_openpyxl(path, matcher, sheet)


def _calamine_fits(path: Path) -> bool:
    """calamine holds a whole sheet in memory (~1 KB per row), openpyxl's read-only mode streams:
    a workbook whose sheets hold more than CALAMINE_MAX_XML bytes of XML is read by openpyxl."""
    with zipfile.ZipFile(path) as zf:
        sheets = (i.file_size for i in zf.infolist() if i.filename.startswith("xl/worksheets/"))
        return sum(sheets) <= CALAMINE_MAX_XML


def has_error_cells(path: Path) -> bool:
    """Whether a worksheet part has a cell of type error (`t="e"`); checked after check_xlsx, so
    each part's size is bounded. Streams each part: a marker split between reads is found too."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.startswith("xl/worksheets/") or not info.filename.endswith(".xml"):
                continue
            with zf.open(info) as part:
                tail = b""
                while block := part.read(1 << 20):
                    if b't="e"' in tail + block:
                        return True
                    tail = block[-8:]
    return False


def _trimmed(row: list[Any]) -> list[Any]:
    """A row without its trailing empty cells: openpyxl pads rows to the sheet's declared width
    only when the workbook declares one, calamine always; no step after reading needs them."""
    while row and row[-1] is None:
        row.pop()
    return row


_TEXT = {str}


def _openpyxl_value(v: Any) -> Any:
    """A calamine cell as openpyxl gives it: empty is None, a whole number written without a
    decimal point an int, a date a datetime at midnight."""
    if v == "" and isinstance(v, str):
        return None
    if type(v) is float:
        return int(v) if v.is_integer() and abs(v) < 1e16 else v
    if type(v) is date:
        return datetime(v.year, v.month, v.day)
    return v


def _header_sheet(
    sheets: Iterable[tuple[Any, Iterator[list[Any]]]], matcher: HeaderMatcher | None
) -> tuple[Any, Iterator[list[Any]], list[list[Any]]]:
    """The first sheet whose first rows hold the header (any sheet without a matcher), with its
    rows iterator and those first rows; when none does, the first one, to say what is missing.
    Both XLSX readers choose this way (sheets are opened lazily, in order)."""
    chosen = None
    for ws, it in sheets:
        head = [r for _, r in zip(range(HEADER_SEARCH_ROWS), it, strict=False)]
        if chosen is None:
            chosen = (ws, it, head)
        if matcher is None or pick_header(head, matcher) is not None:
            return ws, it, head
    assert chosen is not None
    return chosen


def _read_calamine(path: Path, matcher: HeaderMatcher | None, sheet: str | None) -> Table:
    import python_calamine

    try:
        wb = python_calamine.CalamineWorkbook.from_path(str(path))
    except (python_calamine.CalamineError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    names = wb.sheet_names
    if sheet is not None and sheet not in names:
        wb.close()
        raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {', '.join(names)})")

    def rows_of(ws: Any) -> Iterator[list[Any]]:
        """Rows from the sheet's first row and column (calamine starts at the first used column)."""
        pad = [None] * (ws.start[1] if ws.start else 0)
        conv = _openpyxl_value
        for row in ws.iter_rows():
            if set(map(type, row)) == _TEXT:  # all text: only an empty cell changes (to None)
                cells = [c or None for c in row]
            else:
                cells = list(map(conv, row))
            yield _trimmed(pad + cells if pad else cells)

    chosen = [sheet] if sheet is not None else names
    ws, it, head = _header_sheet(((ws, rows_of(ws)) for ws in map(wb.get_sheet_by_name, chosen)), matcher)
    if not head:
        wb.close()
        raise InputError(f"{path}: sheet {ws.name!r} is empty (expected a header row)")

    def rest() -> Iterator[list[Any]]:
        yield from it
        wb.close()

    return _table(head, rest(), matcher, ws.end[0] + 1 if ws.end else None, in_memory=True, sheet=ws.name)


def _read_openpyxl(path: Path, matcher: HeaderMatcher | None, sheet: str | None) -> Table:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        wb.close()
        raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
    candidates = [wb[sheet]] if sheet is not None else list(wb.worksheets)
    rows = ((ws, (_trimmed(list(r)) for r in ws.iter_rows(values_only=True))) for ws in candidates)
    ws, it, head = _header_sheet(rows, matcher)
    if not head:
        wb.close()
        raise InputError(f"{path}: sheet {ws.title!r} is empty (expected a header row)")

    def rest() -> Iterator[list[Any]]:
        yield from it
        wb.close()

    return _table(head, rest(), matcher, ws.max_row or None, sheet=ws.title)


def read_table(path: Path, matcher: HeaderMatcher | None = None, sheet: str | None = None) -> Table:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the roster file (.csv or .xlsx)")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path, matcher, sheet)
    if sheet is not None:
        raise InputError(f"{path}: --sheet applies to XLSX workbooks only")
    if suffix in (".csv", ".txt", ""):
        return read_csv(path, matcher)
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .xlsx)")
