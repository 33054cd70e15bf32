"""Finding the header row of a roster and telling residents' rows from footer rows.

Real rosters carry a title (often a merged cell) and a blank row or two above the header, and
totals and signatures (合计, 制表人：…) below the data. The header is the row, among the first
HEADER_SEARCH_ROWS, whose cells name the most known fields, one of them the resident id.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from ..fields import FieldSpec, header_map, norm_header

HEADER_SEARCH_ROWS = 10
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|【[^【】]*】|〔[^〔〕]*〕|<[^<>]*>|《[^《》]*》")
FOOTER_WORDS = (
    "合计",
    "小计",
    "总计",
    "共计",
    "累计",
    "制表人",
    "制表",
    "审核人",
    "审核",
    "填表人",
    "填表日期",
    "填报人",
    "填报日期",
    "负责人",
    "经办人",
    "复核人",
    "统计人",
    "单位负责人",
    "填表单位",
    "制表日期",
)
_SPACES = re.compile(r"\s+")


class HeaderMatcher:
    """Spreadsheet header text -> field, including variants such as 身份证号码（18位） or 联系电话(手机)."""

    def __init__(self, specs: dict[str, FieldSpec]) -> None:
        self.lookup = header_map(specs)

    def field(self, title: str) -> FieldSpec | None:
        key = norm_header(title)
        spec = self.lookup.get(key)
        if spec is None and key:
            stripped = _BRACKETED.sub("", key)
            spec = self.lookup.get(stripped) if stripped and stripped != key else None
        return spec

    def score(self, cells: Sequence[Any]) -> int:
        """How many cells name a field; 0 unless one of them is the resident id."""
        found = [self.field(str(c)) for c in cells if c is not None and str(c).strip()]
        names = {s.name for s in found if s is not None}
        return len(names) if "resident_id" in names else 0


def pick_header(rows: Sequence[Sequence[Any]], matcher: HeaderMatcher) -> int | None:
    """Index (0-based) of the best header among `rows` (the first rows of a sheet), or None."""
    best, best_score = None, 0
    for i, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        s = matcher.score(cells)
        if s > best_score:
            best, best_score = i, s
    return best


def footer_label(cells: Sequence[Any]) -> str | None:
    """The footer word when a row is a total or signature line (first non-empty cell starts with one)."""
    for c in cells:
        if c is None:
            continue
        if not isinstance(c, str):
            return None
        text = c.strip()
        if not text:
            continue
        if text[0].isascii():
            return None
        text = _SPACES.sub("", unicodedata.normalize("NFKC", text))
        return next((w for w in FOOTER_WORDS if text.startswith(w)), None)
    return None
