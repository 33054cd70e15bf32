"""Row writers for auditors' files: CSV (UTF-8 with BOM, so Excel shows Chinese), XLSX, JSON Lines.

Rows are written as they come (openpyxl in write-only mode), so a million-event export needs
no more memory than a small one.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

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
            ws.append(list(header))
            yield lambda row: ws.append(_cells(row))
            wb.save(tmp)
        else:
            with tmp.open("w", encoding="utf-8-sig" if fmt == "csv" else "utf-8", newline="") as f:
                if fmt == "csv":
                    w = csv.writer(f)
                    w.writerow(header)
                    yield lambda row: w.writerow(_cells(row))
                else:
                    keys = list(header)
                    yield lambda row: f.write(json.dumps(row if isinstance(row, dict) else dict(zip(keys, row)),
                                                        ensure_ascii=False, default=str) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _cells(row: Sequence[Any] | dict[str, Any]) -> list[Any]:
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return [v if v is None or isinstance(v, (str, int, float)) else str(v) for v in values]
