"""Result rows as named tuples, for loops that read many columns of many rows.

SQLAlchemy 2.0's `Row` looks each attribute up by name in Python (about 1 µs here, as long
as the rest of a row's handling); a named tuple reads it from a slot (about 0.03 µs). The
dispatcher reads some 30 columns of every message it claims, so this is a tenth of its time.
"""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache
from typing import Any

import sqlalchemy as sa


@lru_cache(maxsize=64)
def _record(keys: tuple[str, ...]) -> Any:
    # No renaming: a column that is no identifier (a keyword, "count(*)", a leading underscore) is an
    # error here, where a silently renamed field would read as a missing column much later.
    return namedtuple("Record", keys)


def records(result: sa.Result[Any]) -> list[Any]:
    """All rows of `result`, each readable by column name (as `Row`) and by position."""
    make = _record(tuple(result.keys()))._make
    return [make(r) for r in result]
