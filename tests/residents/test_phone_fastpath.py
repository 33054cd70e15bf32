"""The 11-digit mainland mobile fast path of normalize_phone gives exactly what a full
phonenumbers parse gives: the same E.164 number and kind, or the same refusal."""

from __future__ import annotations

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.residents.validate import _MOBILE_TYPES, normalize_phone


def _full(raw: str) -> tuple[str, str] | None:
    try:
        p = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(p):
        return None
    kind = "mobile" if phonenumbers.number_type(p) in _MOBILE_TYPES else "landline"
    return phonenumbers.format_number(p, phonenumbers.PhoneNumberFormat.E164), kind


def _fast(raw: str) -> tuple[str, str] | None:
    try:
        return normalize_phone(raw)
    except ValueError:
        return None


numbers = st.builds(
    lambda second, rest, prefix, sep: prefix + sep.join([f"1{second}{rest[:1]}", rest[1:5], rest[5:]]),
    st.integers(0, 9).map(str),
    st.text("0123456789", min_size=9, max_size=9),
    st.sampled_from(["", "+86", "0086", "86", "+86 "]),
    st.sampled_from(["", " ", "-"]),
)


@settings(max_examples=400, deadline=None)
@given(numbers)
def test_fast_path_equals_phonenumbers(raw: str) -> None:
    assert _fast(raw) == _full(raw)


def test_fast_path_examples() -> None:
    assert _fast("138 1234 5678") == ("+8613812345678", "mobile") == _full("138 1234 5678")
    assert _fast("12012345678") is None is _full("12012345678")
