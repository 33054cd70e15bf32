"""Decoding a CSV's bytes: UTF-8 or GBK/GB18030, and refusing text that only decodes by accident.

GB18030 accepts almost any byte string, Big5 included, so "it decoded" proves nothing. Big5
(or Shift-JIS, or Latin-1) read as GBK turns into kana, Greek, Cyrillic, box-drawing and
private-use characters and rare ideographs, none of which a Chinese roster contains; real GBK
rosters are overwhelmingly GB2312 ideographs. Text that fails that test is refused, never
imported as mojibake.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ..errors import InputError

# Kana, zhuyin, Greek, Cyrillic, box drawing, small form variants, private use, replacement
# character and C0 controls other than tab/newline: what other encodings become when read as GBK.
_FOREIGN = re.compile(
    "[\u0370-\u04ff\u2500-\u257f\u3040-\u30ff\u3100-\u312f\ufe50-\ufe6f"
    "\ue000-\uf8ff\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]"
)
_HAN = re.compile("[\u4e00-\u9fff]")
RARE_SHARE = 0.3  # above this share of distinct ideographs outside GB2312, the text is not GBK


@lru_cache(maxsize=1)
def _gb2312_han() -> frozenset[str]:
    chars = set()
    for lead in range(0xB0, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.add(bytes((lead, trail)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    return frozenset(chars)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _refuse(name: str, detail: str) -> InputError:
    return InputError(
        f"{name}: not UTF-8 or GBK text ({detail}); it may be Big5 or another encoding: "
        "save it as UTF-8 (CSV UTF-8 in Excel) or as XLSX and import again"
    )


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding): UTF-8 (with or without BOM) or GB18030, decoded strictly and checked."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise _refuse(name, f"undecodable byte at offset {exc.start + 3}") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise _refuse(name, f"undecodable byte at offset {utf8_error.start}") from None
    bad = _FOREIGN.search(text)
    if bad:
        raise _refuse(
            name,
            f"read as GBK, line {_line_of(text, bad.start())} holds {bad.group()!r} "
            f"(U+{ord(bad.group()):04X}), "
            "a character no roster contains",
        )
    han = set(_HAN.findall(text))
    if len(han) >= 5 and len(han - _gb2312_han()) > RARE_SHARE * len(han):
        raise _refuse(
            name,
            f"read as GBK, {len(han - _gb2312_han())} of its {len(han)} distinct characters are rare ones",
        )
    return text, "gb18030"
