"""Row writers for auditors' files: CSV (UTF-8 with BOM, so Excel shows Chinese), XLSX, JSON Lines.

Rows are written as they come (openpyxl in write-only mode), so a million-event export needs
no more memory than a small one. Every cell goes through cellsafe.safe_cell (no formula
injection), and XLSX text cells are typed as strings, so openpyxl never stores a formula.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from ..cellsafe import safe_row
from ..errors import InputError

FORMATS = ("csv", "jsonl", "xlsx")
Writer = Callable[[Sequence[Any] | dict[str, Any]], None]


@contextmanager
def table_writer(path: Path, fmt: str, header: Sequence[str], sheet: str = "audit") -> Iterator[Writer]:
    """`write(row)` for rows aligned with `header` (JSON Lines objects are keyed by the header);
    `write(dict)` for a closing line: one JSON object as is, or its values as a spreadsheet row.

    The file appears only when writing finished: a failed export leaves no half file behind.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        if fmt == "xlsx":
            from openpyxl import Workbook

            wb = Workbook(write_only=True)
            ws = wb.create_sheet(sheet)
            ws.append(_xlsx_cells(ws, safe_row(header)))
            yield lambda row: ws.append(_xlsx_cells(ws, _cells(row)))
            wb.save(tmp)
        else:
            with tmp.open("w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as f:
                if fmt == "csv":
                    w = csv.writer(f)
                    w.writerow(safe_row(header))
                    yield lambda row: None if w.writerow(_cells(row)) else None
                else:
                    keys = list(header)

                    def line(row: Sequence[Any] | dict[str, Any]) -> None:
                        obj = row if isinstance(row, dict) else dict(zip(keys, row, strict=False))
                        f.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")

                    yield line
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _cells(row: Sequence[Any] | dict[str, Any]) -> list[Any]:
    return safe_row(row.values() if isinstance(row, dict) else row)


def _xlsx_cells(ws: Any, values: Sequence[Any]) -> list[Any]:
    """Text as string cells: openpyxl would otherwise store any text starting with `=` as a formula."""
    from openpyxl.cell import WriteOnlyCell

    out: list[Any] = []
    for v in values:
        if isinstance(v, str):
            cell = WriteOnlyCell(ws, value=v)
            cell.data_type = "s"
            out.append(cell)
        else:
            out.append(v)
    return out
