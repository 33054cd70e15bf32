"""Reading spreadsheets into (row number, cells), numbered as the spreadsheet shows them.

The header is found among the first rows (`header.pick_header`), so title rows above it are
skipped; total and signature rows below the data are skipped with a warning. An XLSX is
checked against zip bombs before openpyxl opens it, and the sheet holding the header is used
unless one is named.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import InputError, Problem
from .header import HEADER_SEARCH_ROWS, HeaderMatcher, footer_label, pick_header
from .textcodec import decode_text
from .xlsxguard import check_xlsx

__all__ = ["Table", "decode_text", "read_table"]


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, list[Any]]]  # (spreadsheet row number, cells)
    total: int | None  # data rows, when known up front
    encoding: str | None = None
    header_row: int = 1
    sheet: str | None = None
    skipped: list[Problem] = field(default_factory=list)  # footer rows, filled while `rows` is read


def _nonempty(cells: list[Any]) -> bool:
    return any(c is not None and (not isinstance(c, str) or c.strip()) for c in cells)


def _table(
    head: list[list[Any]],
    rest: Iterator[list[Any]],
    matcher: HeaderMatcher | None,
    total_rows: int | None,
    **kw: Any,
) -> Table:
    """A Table from a sheet's first rows and the rest: header found, footer rows skipped."""
    at = (pick_header(head, matcher) if matcher else None) or 0
    header = ["" if h is None else str(h).strip() for h in head[at]]
    skipped: list[Problem] = []

    def body() -> Iterator[tuple[int, list[Any]]]:
        for n, cells in enumerate(chain(head[at + 1 :], rest), start=at + 2):
            if not _nonempty(cells):
                continue
            word = footer_label(cells)
            if word:
                skipped.append(Problem(f"a {word} row, not a resident: skipped", row=n))
                continue
            yield n, cells

    total = None if total_rows is None else max(total_rows - at - 1, 0)
    return Table(header, body(), total, header_row=at + 1, skipped=skipped, **kw)


def read_csv(path: Path, matcher: HeaderMatcher | None = None) -> Table:
    text, encoding = decode_text(path.read_bytes(), str(path))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
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


def read_xlsx(path: Path, matcher: HeaderMatcher | None = None, sheet: str | None = None) -> Table:
    import openpyxl

    check_xlsx(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        wb.close()
        raise InputError(f"{path}: no sheet named {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
    candidates = [wb[sheet]] if sheet is not None else list(wb.worksheets)
    chosen = None
    for ws in candidates:
        it = ws.iter_rows(values_only=True)
        head = [list(r) for _, r in zip(range(HEADER_SEARCH_ROWS), it, strict=False)]
        if chosen is None:
            chosen = (ws, it, head)  # no sheet has a header: the first one, to say what is missing
        if matcher is None or pick_header(head, matcher) is not None:
            chosen = (ws, it, head)
            break
    assert chosen is not None
    ws, it, head = chosen
    if not head:
        wb.close()
        raise InputError(f"{path}: sheet {ws.title!r} is empty (expected a header row)")

    def rest() -> Iterator[list[Any]]:
        for row in it:
            yield list(row)
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
