"""Cells for files people open in a spreadsheet: no text can turn into a formula.

Excel and LibreOffice run a CSV cell that starts with `=`, `+`, `-` or `@` (and, after a tab
or carriage return, the same) as a formula: `=HYPERLINK(...)` in a resident's name would
become a live link in an auditor's export. As OWASP advises, every text cell starting with one
of those characters gets a leading `'`, which spreadsheets show as text. This includes masked
phone numbers in E.164 (`+86139****5678` is written `'+86139****5678`): the apostrophe costs an
auditor nothing, while an exception for "looks like a phone" is the hole an attacker would use.
Numbers (int, float, bool) are written as they are; only text is neutralised.

Every CSV/XLSX writer of the project goes through `safe_row` (audit exports and coverage via
audit.sheets, the letter roster); XLSX cells are also typed as strings, never formulas.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` as it may go into a CSV or XLSX cell: None and numbers as they are, anything else
    as text, with a `'` in front when a spreadsheet would read it as a formula."""
    if value is None or isinstance(value, (int, float)):  # bool is an int
        return value
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(TRIGGERS) else text


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
