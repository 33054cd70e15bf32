"""SMS segment counting: boundary table, and properties against a reference that really splits the text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.rendering.segments import GSM_BASIC, GSM_EXTENDED, SegmentInfo, count_segments

# The GSM 03.38 default alphabet in code-point order (0x1B, the escape, is not a character),
# written out here independently of the module so the reference does not share its tables.
GSM_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM_ESCAPED = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}


def test_gsm_tables() -> None:
    assert len(GSM_TABLE) == 128 and GSM_TABLE[0x1B] == "\x1b"
    assert GSM_BASIC == set(GSM_TABLE) - {"\x1b"}
    assert GSM_EXTENDED == set(GSM_ESCAPED.values())


A, H = "a", "汉"  # one GSM-7 septet; one UCS-2 unit
EMOJI = "😀"  # a surrogate pair: two UCS-2 units


@pytest.mark.parametrize(
    "text, encoding, units, segments",
    [
        ("", "GSM-7", 0, 0),
        ("Hello", "GSM-7", 5, 1),
        (A * 160, "GSM-7", 160, 1),
        (A * 161, "GSM-7", 161, 2),
        (A * 306, "GSM-7", 306, 2),
        (A * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        (A * 158 + "€", "GSM-7", 160, 1),
        (A * 159 + "€", "GSM-7", 161, 2),
        (A * 151 + "{" + A * 152, "GSM-7", 305, 2),  # the escape pair ends part 1 exactly
        (A * 152 + "{" + A * 152, "GSM-7", 306, 3),  # 306 septets, but the pair moves to part 2
        (A * 152 + "\f" + A * 10, "GSM-7", 164, 2),
        ("ç", "UCS-2", 1, 1),  # lower-case ç is not in the GSM table
        ("Hello 您好", "UCS-2", 8, 1),
        ("您好", "UCS-2", 2, 1),
        (H * 70, "UCS-2", 70, 1),
        (H * 71, "UCS-2", 71, 2),
        (H * 134, "UCS-2", 134, 2),
        (H * 135, "UCS-2", 135, 3),
        ("€" + H * 69, "UCS-2", 70, 1),  # in UCS-2 € is a single unit
        (H * 68 + EMOJI, "UCS-2", 70, 1),
        (H * 69 + EMOJI, "UCS-2", 71, 2),
        (H * 65 + EMOJI + H * 67, "UCS-2", 134, 2),  # the pair ends part 1 exactly
        (H * 66 + EMOJI + H * 66, "UCS-2", 134, 3),  # 134 units, but the pair moves to part 2
        (EMOJI * 67, "UCS-2", 134, 3),  # 33 pairs per part
        ("\ud800", "UCS-2", 1, 1),  # a lone surrogate is counted, not an error
    ],
)
def test_segments_table(text: str, encoding: str, units: int, segments: int) -> None:
    assert count_segments(text) == SegmentInfo(encoding, units, segments)


def reference_split(text: str) -> tuple[str, int, list[str]]:
    """Encode character by character and cut the text into the parts a phone would send."""
    escaped = set(GSM_ESCAPED.values())
    gsm = all(c in GSM_TABLE.replace("\x1b", "") or c in escaped for c in text)
    if gsm:
        units = [2 if c in escaped else 1 for c in text]
        single, part = 160, 153
    else:
        units = [len(c.encode("utf-16-be", "surrogatepass")) // 2 for c in text]
        single, part = 70, 67
    total = sum(units)
    if total <= single:
        return ("GSM-7" if gsm else "UCS-2"), total, [text] if text else []
    parts, used = [""], 0
    for c, u in zip(text, units, strict=False):
        if used + u > part:
            parts.append("")
            used = 0
        parts[-1] += c
        used += u
    return ("GSM-7" if gsm else "UCS-2"), total, parts


gsm_chars = st.sampled_from(sorted(GSM_BASIC | GSM_EXTENDED))
mixed_chars = st.sampled_from([A, "€", "{", "é", H, EMOJI, "ç", " "])


@st.composite
def near_boundary(draw: st.DrawFn) -> str:
    """A two-unit character just around a part boundary, with a total just around a multiple of
    the part size: the only texts where plain division and a real split disagree."""
    filler, special, single, part = draw(
        st.sampled_from(
            [
                (A, "€", 160, 153),
                (A, "|", 160, 153),
                (A, "\f", 160, 153),
                (H, EMOJI, 70, 67),
                (A, EMOJI, 70, 67),
            ]
        )
    )
    n = draw(st.sampled_from([single, part, 2 * part])) + draw(st.integers(-3, 1))
    total = draw(st.sampled_from([2 * part, 3 * part, 4 * part])) + draw(st.integers(-2, 2))
    return filler * n + special + filler * max(0, total - n - 2)


texts = st.one_of(
    st.text(gsm_chars, max_size=500),  # GSM-7, escapes at arbitrary places
    st.text(mixed_chars, max_size=300),
    st.text(max_size=200),  # anything (hypothesis leaves out lone surrogates)
    near_boundary(),
)


@given(texts)
def test_count_matches_reference_split(text: str) -> None:
    encoding, units, parts = reference_split(text)
    assert "".join(parts) == text
    info = count_segments(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, len(parts))


@given(texts, st.one_of(gsm_chars, mixed_chars, st.characters(blacklist_categories=["Cs"])))
def test_appending_never_reduces_segments(text: str, extra: str) -> None:
    assert count_segments(text + extra).segments >= count_segments(text).segments
