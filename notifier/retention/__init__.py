"""Retention (issue 16; PIPL articles 6, 19, 47): personal data kept only as long as the notice
needs it. `policy` says what is due when, `purge` empties it in bulk SQL, `files` removes the
outbox and letter files; what stays (status, times, channel, digests, verification codes and the
audit chain) keeps every report answering. Views show PURGED where a value was removed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

PURGED = "已按保留期限删除"  # shown wherever retention removed a value (the wording staff read)


def shown(value: str | None, purged_at: datetime | None, mask: Callable[[str | None], str]) -> str:
    """What a view shows for a personal value: PURGED once retention removed it, else masked."""
    return PURGED if purged_at is not None else mask(value)
