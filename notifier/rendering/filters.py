"""Template filters: money (¥1,234.50), Chinese dates (2026年3月2日) and masking."""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from ..masking import mask_email, mask_id_number, mask_name, mask_phone


def money(value: Any) -> str:
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        raise ValueError(f"money: {value!r} is not an amount") from None
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def _as_date(value: Any) -> date | datetime:
    if isinstance(value, (date, datetime)):
        return value
    try:
        return datetime.fromisoformat(str(value)) if "T" in str(value) or " " in str(value).strip() else date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"cn_date: {value!r} is not a date") from None


def cn_date(value: Any) -> str:
    d = _as_date(value)
    return f"{d.year}年{d.month}月{d.day}日"


def cn_datetime(value: Any) -> str:
    d = _as_date(value)
    if not isinstance(d, datetime):
        return cn_date(d)
    return f"{d.year}年{d.month}月{d.day}日 {d.hour:02d}:{d.minute:02d}"


FILTERS: dict[str, Callable[..., str]] = {
    "money": money, "cn_date": cn_date, "cn_datetime": cn_datetime,
    "mask_phone": mask_phone, "mask_name": mask_name, "mask_id": mask_id_number, "mask_email": mask_email,
}
