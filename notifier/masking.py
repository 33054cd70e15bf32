"""Masking personal data for logs, previews and error messages: 138****5678, 110101********1234, 张*,
城关镇柳林村****.

Residents' phone numbers, ID numbers, names and e-mail addresses must never reach a log, a
preview or an error message in full; the masked forms still let an operator recognise which
record is meant. Masking functions never raise: they run inside error paths, where a second
exception would hide the first.
"""

from __future__ import annotations

import re

# Patterns for free text. Each one may only start where the previous character cannot be part
# of the same token (the negative look-behinds), so a long run of digits or letters is scanned
# once, not once per position: mask_text stays linear on 100 kB inputs.
_MOBILE_IN_TEXT = re.compile(r"(?<!\d)((?:\+|00)?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
_ID_IN_TEXT = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
_EMAIL_IN_TEXT = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})"
)
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")


def _keep_last_two(text: str) -> str:
    """Mask all but (at most) the last two characters, and never show a value whole."""
    shown = min(2, len(text) - 1)
    return "*" * (len(text) - shown) + text[len(text) - shown :] if shown > 0 else "*" * len(text)


def mask_phone(value: str | None) -> str:
    """138****5678: first 3 and last 4 digits of the national number, so a caller can confirm it."""
    if not value:
        return ""
    compact = _PHONE_SEPARATORS.sub("", str(value))
    digits = compact[1:] if compact.startswith("+") else compact
    if not digits.isdigit() or not digits.isascii():
        return _keep_last_two(compact)
    for country in ("0086", "86"):  # +86 / 0086 / 86 in front of an 11-digit mainland number
        if digits.startswith(country) and len(digits) == len(country) + 11:
            digits = digits[len(country) :]
            break
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    return _keep_last_two(digits)


def mask_id_number(value: str | None) -> str:
    """110101********1234: region code and last 4 stay (how staff identify a record), birth date goes."""
    if not value:
        return ""
    text = str(value).strip()
    if len(text) == 18:
        return f"{text[:6]}********{text[-4:]}"
    return _keep_last_two(text)


def mask_name(value: str | None) -> str:
    """张* / 欧*** / W*******: only the first character (the surname) stays; length is kept."""
    if not value:
        return ""
    text = str(value).strip()
    if len(text) <= 1:
        return "*"
    return text[0] + "*" * (len(text) - 1)


def mask_name_ends(value: str | None) -> str:
    """张*三 / 张* / 欧**明: first and last character of a name of three or more, for the public
    verification page, where the resident recognises their own name."""
    if not value:
        return ""
    text = str(value).strip()
    if len(text) < 3:
        return mask_name(text)
    return text[0] + "*" * (len(text) - 2) + text[-1]


def mask_email(value: str | None) -> str:
    """z***@example.com: the domain tells an operator which provider bounced, the mailbox stays hidden."""
    if not value:
        return ""
    local, at, domain = str(value).strip().rpartition("@")
    if not at:
        return mask_name(domain)
    return f"{local[:1]}***@{domain}"


_ADDRESS_AREA = re.compile(r".*(?:村|社区|街道|镇|乡)")


def mask_address(value: str | None) -> str:
    """城关镇柳林村****: the township and village stay (where the letter went), the house does not."""
    if not value:
        return ""
    text = str(value).strip()
    area = _ADDRESS_AREA.match(text)
    keep = area.end() if area and area.end() < len(text) else len(text) // 3
    return text[:keep] + "*" * (len(text) - keep)


def mask_value(value: object) -> str:
    """Mask a value of unknown kind for an error message: type, first character, length.

    Used where a bad input is reported (a template filter given the wrong field, say) and the
    value could be anything: a name, a phone number, an ID number.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    text = str(value)
    shown = text[:1] + "*" * (len(text) - 1) if len(text) > 1 else "*" * len(text)
    return f"{type(value).__name__} {shown!r}"


def mask_text(text: str) -> str:
    """Mask mobile numbers, 18-character ID numbers and e-mail addresses inside free text.

    For messages that quote input (import errors, provider responses) before they are logged.
    E-mail addresses go first, so a mailbox like 13812345678@163.com masks as an address.
    """
    text = _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    text = _ID_IN_TEXT.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    return _MOBILE_IN_TEXT.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)
