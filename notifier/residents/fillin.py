"""Fill-in sheets (`rules review -o`): how the importer tells one from a roster.

A fill-in sheet lists residents by 居民编号 with their masked name and village for the cadre to
recognise them, then the columns of the data they lack. Its identity columns carry headers no
field answers to (a masked 姓名 must never overwrite a name), and their presence makes the
import complete residents instead of replacing rows: only the cells filled are written, an
empty cell keeps what is stored, and an id the register does not hold is an error, not a new
resident.
"""

from __future__ import annotations

from collections.abc import Sequence

NAME_HEADER = "核对姓名（已隐去）"
TOWNSHIP_HEADER = "核对乡镇"
VILLAGE_HEADER = "核对村组"
IDENTITY_HEADERS = (NAME_HEADER, TOWNSHIP_HEADER, VILLAGE_HEADER)
"""Shown to recognise the resident, never imported."""


def is_fill_in(header: Sequence[str]) -> bool:
    """Whether a sheet's header row is a fill-in sheet's (its masked-name column is the mark)."""
    return NAME_HEADER in (h.strip() for h in header)
