"""Finding a resident without knowing their 居民编号: by part of the name, optionally the village.

For staff who want to explain a rule for someone they can name: the answers are masked (张*,
138****5678) and capped, so a search shows which record is meant and never lists the register.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..app import App
from ..errors import InputError
from ..masking import mask_name, mask_phone

LIMIT = 20


@dataclass(frozen=True)
class FoundResident:
    resident_id: str
    name: str  # masked
    phone: str  # masked
    township: str
    village: str


@dataclass(frozen=True)
class ResidentSearch:
    found: list[FoundResident]  # by resident id, at most the limit
    more: bool  # more residents matched than are listed


def search_residents(app: App, name: str, village: str = "", limit: int = LIMIT) -> ResidentSearch:
    """Residents whose name contains `name` (and whose village contains `village`, if given)."""
    name, village = name.strip(), village.strip()
    if not name:
        raise InputError("give part of the resident's name")
    t = app.residents
    q = sa.select(t.c.resident_id, t.c.name, t.c.phone, t.c.township, t.c.village).where(
        t.c.name.contains(name, autoescape=True)
    )
    if village:
        q = q.where(t.c.village.contains(village, autoescape=True))
    with app.reader.connect() as conn:
        rows = conn.execute(q.order_by(t.c.resident_id).limit(limit + 1)).all()
    found = [
        FoundResident(
            r.resident_id, mask_name(r.name), mask_phone(r.phone), r.township or "", r.village or ""
        )
        for r in rows[:limit]
    ]
    return ResidentSearch(found, len(rows) > limit)
