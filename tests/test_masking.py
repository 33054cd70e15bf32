"""Masking personal data: fixed examples, and properties that no full number survives mask_text."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.masking import (
    mask_address,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
    mask_value,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("13812345678", "138****5678"),
        ("+8613812345678", "138****5678"),
        ("8613812345678", "138****5678"),
        ("008613812345678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("(+86) 138 1234 5678", "138****5678"),
        (13812345678, "138****5678"),  # a number read from a spreadsheet cell
        ("010-12345678", "010****5678"),  # 11 digits with the trunk 0: same rule
        ("12345", "***45"),
        ("123", "*23"),
        ("12", "*2"),  # never the whole value
        ("1", "*"),
        ("abc", "*bc"),  # odd values keep at most the last 2 characters
        ("ext. 12", "***12"),
        (None, ""),
        ("", ""),
    ],
)
def test_mask_phone(value: object, expected: str) -> None:
    assert mask_phone(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("110101199003071234", "110101********1234"),
        ("11010119900307123X", "110101********123X"),
        (" 110101199003071234 ", "110101********1234"),
        ("110101900307123", "*************23"),  # 15-digit (pre-1999) number: last 2 only
        ("12", "*2"),
        ("1", "*"),
        (None, ""),
        ("", ""),
    ],
)
def test_mask_id_number(value: str | None, expected: str) -> None:
    assert mask_id_number(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("王", "*"),
        ("Wang Wei", "W*******"),
        (" 李四 ", "李*"),
        (None, ""),
        ("", ""),
    ],
)
def test_mask_name(value: str | None, expected: str) -> None:
    assert mask_name(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("zhangsan@example.com", "z***@example.com"),
        ("a@b.cn", "a***@b.cn"),
        ("13812345678@163.com", "1***@163.com"),
        ("@example.com", "***@example.com"),
        ("not-an-address", "n*************"),
        (None, ""),
        ("", ""),
    ],
)
def test_mask_email(value: str | None, expected: str) -> None:
    assert mask_email(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("城关镇柳林村12号", "城关镇柳林村***"),
        ("河口乡石桥村3组45号", "河口乡石桥村*****"),
        ("东岭镇人民路8号院2单元", "东岭镇*********"),
        ("柳林村", "柳**"),  # nothing after the village: most of it still hidden
        ("Flat 3, 12 High Street", "Flat 3,***************"),  # no Chinese area: the first third stays
        (None, ""),
    ],
)
def test_mask_address(value: str | None, expected: str) -> None:
    assert mask_address(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, "None"),
        (True, "True"),
        ("张三", "str '张*'"),
        ("13812345678", "str '1**********'"),
        (20260302, "int '2*******'"),
        ("", "str ''"),
    ],
)
def test_mask_value(value: object, expected: str) -> None:
    assert mask_value(value) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("call 13812345678 now", "call 138****5678 now"),
        ("call +86 138-1234-5678 now", "call +86 138****5678 now"),
        ("电话：8613812345678。", "电话：86138****5678。"),
        ("电话0086 13812345678", "电话0086 138****5678"),
        ("tel:13812345678,13900001111", "tel:138****5678,139****1111"),
        ("身份证号110101199003071234，", "身份证号110101********1234，"),
        ("ID110101199003071234x", "ID110101********1234x"),
        ("id 11010119900307123X end", "id 110101********123X end"),
        ("mail zhangsan@example.com.", "mail z***@example.com."),
        ("邮箱zhangsan@example.com", "邮箱z***@example.com"),
        ("bounce for 13812345678@163.com", "bounce for 1***@163.com"),
        # not personal data: too long to be a mobile or ID number, or not a mobile prefix
        ("order 2024031312345678901", "order 2024031312345678901"),
        ("order 123456789012", "order 123456789012"),
        ("code 12812345678", "code 12812345678"),
        ("", ""),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


mobiles = st.builds(
    lambda second, rest: f"1{second}{rest:09d}", st.sampled_from("3456789"), st.integers(0, 10**9 - 1)
)
ids = st.builds(
    lambda head, check: f"{head:017d}{check}", st.integers(10**16, 10**17 - 1), st.sampled_from("0123456789X")
)
non_digit = st.text(st.characters(blacklist_categories=("Nd", "Cs")), min_size=1, max_size=3)
noise = st.text(max_size=30)


@given(noise, non_digit, mobiles, non_digit, noise, st.sampled_from(["", "+86", "86", "0086", "+86 ", "86-"]))
def test_no_mobile_survives(before: str, sep1: str, mobile: str, sep2: str, after: str, prefix: str) -> None:
    masked = mask_text(before + sep1 + prefix + mobile + sep2 + after)
    assert mobile not in masked


@given(noise, non_digit, ids, non_digit, noise)
def test_no_id_number_survives(before: str, sep1: str, id_number: str, sep2: str, after: str) -> None:
    masked = mask_text(before + sep1 + id_number + sep2 + after)
    assert id_number not in masked and id_number[6:14] not in masked  # the birth date goes


@given(st.text(alphabet=st.sampled_from("13800 +-@.abc汉X"), max_size=80))
def test_mask_text_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


@given(st.text(max_size=40))
def test_masks_never_raise_and_never_show_long_values_whole(value: str) -> None:
    for mask in (mask_phone, mask_id_number, mask_name, mask_email, mask_address):
        out = mask(value)
        assert isinstance(out, str)
        if "*" not in value and len(value.strip()) >= 2:  # (an already masked value may mask to itself)
            assert out != value.strip()


@pytest.mark.parametrize(
    "text", ["a" * 100_000, "1" * 100_000, "a@" * 50_000, "x@" + "a." * 50_000, "138 " * 25_000]
)
def test_mask_text_is_linear(text: str) -> None:
    start = time.perf_counter()
    mask_text(text)
    assert time.perf_counter() - start < 1.0  # ~0.03 s; a backtracking pattern takes tens of seconds
