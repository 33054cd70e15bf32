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
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str   # "GSM-7" | "UCS-2"
    units: int      # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def _pack(sizes: list[int], single: int, part: int) -> int:
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


def count_segments(text: str) -> SegmentInfo:
    if all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text):
        sizes = [2 if ch in GSM_EXTENDED else 1 for ch in text]
        return SegmentInfo("GSM-7", sum(sizes), _pack(sizes, 160, 153))
    sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo("UCS-2", sum(sizes), _pack(sizes, 70, 67))
