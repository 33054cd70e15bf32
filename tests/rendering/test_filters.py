"""Template filters: money, Chinese dates, masking; bad input is a ValueError that does not leak the value."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier import masking
from notifier.rendering.filters import FILTERS, cn_date, cn_datetime, money


@pytest.mark.parametrize(
    "value, expected",
    [
        (Decimal("1234.5"), "¥1,234.50"),
        (1234.5, "¥1,234.50"),
        ("1234.5", "¥1,234.50"),
        (" 88 ", "¥88.00"),
        (0, "¥0.00"),
        (-12, "-¥12.00"),
        (Decimal("-1234.567"), "-¥1,234.57"),
        (1_000_000, "¥1,000,000.00"),
        (Decimal("2.675"), "¥2.68"),  # half up (banker's rounding would give 2.67)
        (2.675, "¥2.68"),  # via str(): not the binary 2.67499999...
        ("0.005", "¥0.01"),
        ("-0.005", "-¥0.01"),
        ("-0.001", "¥0.00"),  # rounds to zero: no "-¥0.00"
        (0.1 + 0.2, "¥0.30"),
        ("1e3", "¥1,000.00"),
        (Decimal("6.5000"), "¥6.50"),
    ],
)
def test_money(value: object, expected: str) -> None:
    assert money(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (date(2026, 3, 2), "2026年3月2日"),
        (datetime(2026, 3, 2, 9, 5), "2026年3月2日"),
        ("2026-03-02", "2026年3月2日"),
        (" 2026-12-31 ", "2026年12月31日"),
        ("2026-03-02T09:05:00", "2026年3月2日"),
        ("2026-03-02 23:59", "2026年3月2日"),
    ],
)
def test_cn_date(value: object, expected: str) -> None:
    assert cn_date(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (datetime(2026, 3, 2, 9, 5), "2026年3月2日 09:05"),
        (datetime(2026, 3, 2, 9, 5, 59), "2026年3月2日 09:05"),  # seconds are dropped, not rounded
        ("2026-03-02T09:05", "2026年3月2日 09:05"),
        ("2026-03-02 18:30:00", "2026年3月2日 18:30"),
        (
            datetime(2026, 3, 2, 9, 5, tzinfo=timezone(timedelta(hours=8))),
            "2026年3月2日 09:05",
        ),  # wall-clock time as given
        (date(2026, 3, 2), "2026年3月2日"),  # a date has no time: none is invented
        ("2026-03-02", "2026年3月2日"),
    ],
)
def test_cn_datetime(value: object, expected: str) -> None:
    assert cn_datetime(value) == expected


PERSONAL = ["13812345678", "11010119900307123X", "张三丰", "zhangsan@example.com", "+86 138 1234 5678"]


@pytest.mark.parametrize(
    "name, value",
    [
        (name, value)
        for name in ("money", "cn_date", "cn_datetime")
        for value in PERSONAL
        if not (name == "money" and value.isdigit())
    ],
)  # digits are an amount
def test_bad_input_is_reported_masked(name: str, value: str) -> None:
    """A template passing a personal field to the wrong filter must not print it in the error."""
    with pytest.raises(ValueError) as err:
        FILTERS[name](value)
    message = str(err.value)
    assert message.startswith(f"{name}: str ") and value not in message and value[1:] not in message


@pytest.mark.parametrize(
    "value, match",
    [
        ("about 5", r"money: str 'a\*{6}' is not an amount"),
        ("1,234", "not an amount"),
        ("", r"money: str '' is not an amount"),
        (None, "money: None is not an amount"),
        (True, "money: True is not an amount"),
        (float("nan"), "not a finite amount"),
        ("Infinity", "not an amount"),
        ([1], "not an amount"),
    ],
)
def test_money_bad_input(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        money(value)


@pytest.mark.parametrize(
    "value", ["next week", "2026-02-30", "2026/03/02", "", None, 20260302, 1.5, ["2026-03-02"]]
)
@pytest.mark.parametrize("f", [cn_date, cn_datetime])
def test_dates_bad_input(f: object, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{f.__name__}: .* is not a date"):  # type: ignore[attr-defined]
        f(value)  # type: ignore[operator]


@given(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False)
)
def test_money_round_trips(amount: Decimal) -> None:
    text = money(amount)
    parsed = Decimal(text.replace("¥", "").replace(",", ""))
    assert parsed == amount.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert text.count(".") == 1 and len(text.split(".")[1]) == 2


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("mask_phone", "+8613812345678", "138****5678"),
        ("mask_name", "欧阳娜娜", "欧***"),
        ("mask_id", "110101199003071234", "110101********1234"),
        ("mask_email", "zhangsan@example.com", "z***@example.com"),
        ("mask_phone", None, ""),
    ],
)
def test_mask_filters(name: str, value: str | None, expected: str) -> None:
    assert FILTERS[name](value) == expected


def test_filter_names() -> None:
    assert set(FILTERS) == {
        "money",
        "yuan",
        "cn_date",
        "cn_datetime",
        "mask_phone",
        "mask_name",
        "mask_id",
        "mask_email",
    }
    assert FILTERS["mask_id"] is masking.mask_id_number and FILTERS["mask_phone"] is masking.mask_phone


def test_filters_in_a_template() -> None:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(FILTERS)
    out = env.from_string(
        "{{ name | mask_name }}：{{ amount | money }}，"
        "请于{{ until | cn_date }}前领取（{{ phone | mask_phone }}）"
    ).render(name="张三", amount=Decimal("1234.5"), until="2026-03-31", phone="13812345678")
    assert out == "张*：¥1,234.50，请于2026年3月31日前领取（138****5678）"
