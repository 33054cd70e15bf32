"""Refusing XLSX files that would expand to absurd sizes (zip bombs) before openpyxl reads them.

An XLSX is a zip of XML parts. The checks use each member's declared sizes; Python's zipfile
stops reading a member at its declared size (and fails its CRC check if there was more), so a
member cannot expand past what is checked here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import InputError

MAX_MEMBER = 1 << 30  # 1 GiB of XML in one part: far beyond any roster (~1 KB per row)
MAX_TOTAL = 2 << 30
MAX_RATIO = 100  # real sheets compress 5-30:1; bombs 1000:1
RATIO_FLOOR = 16 << 20  # small parts may compress well (empty styled cells); only large ones are judged


def check_xlsx(path: Path) -> None:
    """InputError when a part of the workbook is implausibly large or compressed."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable XLSX workbook ({exc})") from None
    total = 0
    for info in infos:
        size = info.file_size
        total += size
        ratio = size / max(info.compress_size, 1)
        if size > MAX_MEMBER or (size > RATIO_FLOOR and ratio > MAX_RATIO):
            raise InputError(
                f"{path}: refused, part {info.filename} would expand to {size:,} bytes "
                f"({ratio:,.0f} times its compressed size); a real roster is far smaller: "
                "re-save the sheet with only the roster's rows and columns"
            )
    if total > MAX_TOTAL:
        raise InputError(
            f"{path}: refused, the workbook would expand to {total:,} bytes (limit {MAX_TOTAL:,})"
        )
