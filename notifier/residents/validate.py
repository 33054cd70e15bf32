"""Contact and identity checks for imported rows: phone numbers, e-mail, PRC ID numbers."""

from __future__ import annotations

import operator
import re
from datetime import date
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from ..fields import norm_key

_SEPARATORS = re.compile(r"[\s\-().]")
_CN_MOBILE = re.compile(r"1\d{10}")
_EMAIL = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,}")
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_ZERO = ord("0") * sum(_ID_WEIGHTS)
_RECENT = date.today().year - 1  # a birth date in an earlier year is in the past, whenever it is checked
_SCIENTIFIC = re.compile(r"\d(?:\.\d+)?E\+?\d+", re.IGNORECASE)
_PHONE_LIST = re.compile(r"\s*[,，;；/、|]\s*|\s{2,}")
AS_NUMBER = (
    "is stored as a number, so Excel has rounded it: format the ID column as text and enter the numbers again"
)


_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
if _CN is None or _CN.mobile is None or not _CN.mobile.national_number_pattern:  # bundled with phonenumbers
    raise RuntimeError("phonenumbers has no metadata for China's mobile numbers")
_CN_MOBILE_PATTERN = re.compile(str(_CN.mobile.national_number_pattern))


@lru_cache(maxsize=4096)
def _classify(number: str, region: str) -> tuple[str, str]:
    p = phonenumbers.parse(number, region)
    if not phonenumbers.is_valid_number(p):
        raise ValueError("not a valid phone number")
    kind = "mobile" if phonenumbers.number_type(p) in _MOBILE_TYPES else "landline"
    return phonenumbers.format_number(p, PhoneNumberFormat.E164), kind


def normalize_phone(raw: str, region: str = "CN") -> tuple[str, str]:
    """(E.164, 'mobile' | 'landline'); ValueError if unusable.

    phonenumbers' metadata decides validity. An 11-digit mainland number is matched against
    its compiled mobile pattern directly (~1 µs); anything else takes the full parse (~50 µs),
    which would otherwise dominate a large import.
    """
    text = _SEPARATORS.sub("", str(raw))
    national = text
    if national.startswith("+86"):
        national = national[3:]
    elif national.startswith("0086"):
        national = national[4:]
    elif national.startswith("86") and len(national) == 13:
        national = national[2:]
    if region == "CN" and _CN_MOBILE.fullmatch(national) and _CN_MOBILE_PATTERN.fullmatch(national):
        return "+86" + national, "mobile"
    try:
        return _classify(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a valid phone number") from None


def normalize_email(raw: str) -> str:
    text = str(raw).strip()
    if not _EMAIL.fullmatch(text):
        raise ValueError("not a valid e-mail address")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def first_phone(raw: Any) -> tuple[tuple[str, str], bool]:
    """(normalize_phone of the cell, whether the cell held more numbers than the one used).

    People put two numbers in one cell (`138… / 139…`, `138…，139…`); the first usable one is
    taken and the caller warns. A cell that is one number takes the fast path only."""
    try:
        return normalize_phone(raw), False
    except ValueError:
        text = str(raw).strip()
        parts = [p for p in _PHONE_LIST.split(text) if p]
        if len(parts) < 2:
            words = text.split()
            parts = words if len(words) > 1 and all(sum(ch.isdigit() for ch in w) >= 7 for w in words) else []
        for part in parts:
            try:
                return normalize_phone(part), True
            except ValueError:
                continue
        raise


def check_id_number(raw: Any) -> str:
    """An 18-character PRC resident ID number, normalised (NFKC, invisible characters and spaces
    around it removed) and upper-cased; ValueError says what is wrong."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raise ValueError(AS_NUMBER)
    text = norm_key(raw).upper()
    if len(text) != 18 or not text[:17].isdigit() or text[17] not in _ID_CHECK:
        if _SCIENTIFIC.fullmatch(text):  # (18 characters of digits and X never are)
            raise ValueError(AS_NUMBER)
        raise ValueError("an ID number has 17 digits and a check digit or X")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise ValueError("the birth date inside the ID number is not a real date") from None
    # date-dependent on purpose: nobody is born tomorrow (today is asked only for recent years)
    if born.year < 1890 or (born.year >= _RECENT and born > date.today()):
        raise ValueError("the birth date inside the ID number is out of range")
    if text.isascii():  # the digits' code points less 48 each: no int() per digit
        total = sum(map(operator.mul, text[:17].encode(), _ID_WEIGHTS)) - _ID_ZERO
    else:  # other Unicode digits
        total = sum(map(operator.mul, map(int, text[:17]), _ID_WEIGHTS))
    if _ID_CHECK[total % 11] != text[17]:
        raise ValueError("the ID number's check digit is wrong")
    return text


def id_birth_date(id_number: str) -> date:
    """The birth date inside a checked ID number."""
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
