"""SMS segment counting (hand-written: small and specific).

GSM-7 when every character is in the GSM 03.38 basic set or its extension table (extension
characters take two septets): 160 septets in one message, 153 per part when split. Otherwise
UCS-2 (all Chinese text): 70 UTF-16 units in one message, 67 per part. A two-unit sequence
(GSM escape + character, or a UTF-16 surrogate pair) is never split across parts.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SegmentInfo:
    """What a provider will bill for one SMS body: previews show it, sends record it."""

    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _pack(sizes: list[int], single: int, part: int) -> int:
    """Fill parts greedily, as a phone splits a message: a two-unit character that does not fit
    moves whole to the next part, so a part can hold fewer units than `part`."""
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return parts


GSM_ALL = GSM_BASIC | GSM_EXTENDED


def count_segments(text: str) -> SegmentInfo:
    """Encoding, units and number of parts of `text`; the empty text is 0 parts (nothing to send).

    Called once per message at send time, so the common cases (no two-unit characters) are
    plain arithmetic and only texts with escapes or surrogate pairs are packed part by part.
    """
    if GSM_ALL.issuperset(text):
        double = sum(text.count(ch) for ch in GSM_EXTENDED)
        units, single, part, encoding = len(text) + double, 160, 153, "GSM-7"
        sizes = [2 if ch in GSM_EXTENDED else 1 for ch in text] if double else None
    else:
        units, single, part, encoding = len(text.encode("utf-16-le", "surrogatepass")) // 2, 70, 67, "UCS-2"
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text] if units != len(text) else None
    if units <= single:
        return SegmentInfo(encoding, units, 1 if units else 0)
    if sizes is None:  # every character is one unit: plain division
        return SegmentInfo(encoding, units, -(-units // part))
    return SegmentInfo(encoding, units, _pack(sizes, single, part))
