"""Template filters: money (¥1,234.50), yuan (1,234.50元), Chinese dates (2026年3月2日) and masking.

A notice states amounts and deadlines that residents act on, so a value that is not what the
filter expects raises ValueError (the template set reports it with file and line) rather than
rendering something plausible. The message masks the value: it may be personal data that a
template author passed to the wrong filter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ..masking import mask_email, mask_id_number, mask_name, mask_phone, mask_value

_CENT = Decimal("0.01")


def money(value: Any) -> str:
    """¥1,234.50 / -¥12.00: two decimals, half-up (how amounts are rounded on paper).

    Floats go through str() so 0.1 + 0.2 prints as ¥0.30, not a binary-float artefact.
    """
    if isinstance(value, bool):  # Decimal(str(True)) fails anyway; say why
        raise ValueError(f"money: {mask_value(value)} is not an amount")
    try:
        amount = Decimal(str(value).strip()).quantize(_CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise ValueError(f"money: {mask_value(value)} is not an amount") from None
    if not amount.is_finite():
        raise ValueError(f"money: {mask_value(value)} is not a finite amount")
    sign = "-" if amount < 0 else ""  # -0.001 rounds to 0.00: no "-¥0.00"
    return f"{sign}¥{abs(amount):,.2f}"


def yuan(value: Any) -> str:
    """1,234.50元: the amount as notices write it in Chinese (same rounding and checks as money)."""
    text = money(value)
    return text.replace("¥", "") + "元"


def _as_date(value: Any, name: str) -> date:
    """A date or datetime as given, or parsed from an ISO string ("2026-03-02", "2026-03-02T09:05")."""
    if isinstance(value, date):  # datetime is a date too
        return value
    if isinstance(value, str):
        text = value.strip()
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                return parse(text)
            except ValueError:
                pass
    raise ValueError(
        f"{name}: {mask_value(value)} is not a date (expected a date or an ISO string like 2026-03-02)"
    )


def cn_date(value: Any) -> str:
    """2026年3月2日: the date only, even for a datetime, as notices print deadlines."""
    d = _as_date(value, "cn_date")
    return f"{d.year}年{d.month}月{d.day}日"


def cn_datetime(value: Any) -> str:
    """2026年3月2日 09:05 for a datetime; a plain date prints without a time rather than 00:00."""
    d = _as_date(value, "cn_datetime")
    if not isinstance(d, datetime):
        return f"{d.year}年{d.month}月{d.day}日"
    return f"{d.year}年{d.month}月{d.day}日 {d.hour:02d}:{d.minute:02d}"


FILTERS: dict[str, Callable[..., str]] = {
    "money": money,
    "yuan": yuan,
    "cn_date": cn_date,
    "cn_datetime": cn_datetime,
    "mask_phone": mask_phone,
    "mask_name": mask_name,
    "mask_id": mask_id_number,
    "mask_email": mask_email,
}
