"""Masking personal data for logs, previews and error messages: 138****5678, 110101********1234, 张*."""
from __future__ import annotations

import re

_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_phone(value: str | None) -> str:
    if not value:
        return ""
    digits = re.sub(r"\D", "", str(value))
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * max(0, len(digits) - 2) + digits[-2:]


def mask_id_number(value: str | None) -> str:
    if not value:
        return ""
    text = str(value).strip()
    if len(text) == 18:
        return f"{text[:6]}********{text[-4:]}"
    return "*" * max(0, len(text) - 2) + text[-2:]


def mask_name(value: str | None) -> str:
    if not value:
        return ""
    text = str(value).strip()
    if len(text) <= 1:
        return "*"
    return text[0] + "*" * (len(text) - 1)


def mask_email(value: str | None) -> str:
    if not value:
        return ""
    local, at, domain = str(value).partition("@")
    if not at:
        return mask_name(local)
    return f"{local[:1]}***@{domain}"


def mask_text(text: str) -> str:
    """Mask mobile numbers, ID numbers and e-mail addresses inside free text."""
    text = _ID_IN_TEXT.sub(lambda m: f"{m.group(1)}********{m.group(3)}", text)
    text = _MOBILE_IN_TEXT.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
