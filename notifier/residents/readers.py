"""Reading spreadsheets into (row number, cells) with the header as row 1, as a user sees it."""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError


@dataclass
class Table:
    header: list[str]
    rows: Iterator[tuple[int, list[Any]]]   # (spreadsheet row number, cells)
    total: int | None                       # data rows, when known up front
    encoding: str | None = None


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """UTF-8 (with or without BOM) or GBK/GB18030, whichever decodes cleanly."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 or GBK text (undecodable byte at offset {utf8_error.start})") from None


def _nonempty(cells: list[Any]) -> bool:
    return any(c is not None and (not isinstance(c, str) or c.strip()) for c in cells)


def read_csv(path: Path) -> Table:
    text, encoding = decode_text(path.read_bytes(), str(path))
    lines = list(csv.reader(io.StringIO(text, newline="")))
    if not lines:
        raise InputError(f"{path}: the file is empty (expected a header row)")
    header = [h.strip() for h in lines[0]]
    body = ((i + 1, row) for i, row in enumerate(lines) if i > 0 and _nonempty(row))
    return Table(header, body, len(lines) - 1, encoding)


def read_xlsx(path: Path) -> Table:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    first = next(it, None)
    if first is None:
        raise InputError(f"{path}: the first sheet is empty (expected a header row)")
    header = ["" if h is None else str(h).strip() for h in first]

    def body() -> Iterator[tuple[int, list[Any]]]:
        for n, row in enumerate(it, start=2):
            cells = list(row)
            if _nonempty(cells):
                yield n, cells
        wb.close()

    total = (ws.max_row - 1) if ws.max_row else None
    return Table(header, body(), total)


def read_table(path: Path) -> Table:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the roster file (.csv or .xlsx)")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return read_xlsx(path)
    if suffix in (".csv", ".txt", ""):
        return read_csv(path)
    raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .xlsx)")
