"""Providers paused by an account-level refusal (balance, day limit, signature or template not
approved), as the audit log records them (`provider.paused`, written by delivery/send.py): read
back for /metrics and for the console, so staff learn of it whichever worker paused it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..clock import as_utc
from ..storage.schema import audit_events

RECENT = 200  # pause events read back: far more than providers


@dataclass(frozen=True)
class Pause:
    provider: str
    until: datetime
    code: str | None
    reason: str
    next: str | None  # the provider that took over, or None (the channel waits)
    channel: str


def provider_pauses(conn: sa.Connection) -> list[Pause]:
    """The latest pause of each provider ever paused (its `until` may be past), by provider name."""
    rows = conn.execute(
        sa.select(audit_events.c.subject, audit_events.c.payload)
        .where(audit_events.c.action == "provider.paused")
        .order_by(audit_events.c.seq.desc())
        .limit(RECENT)
    ).all()
    latest: dict[str, Pause] = {}
    for subject, payload in rows:
        p = json.loads(payload) if isinstance(payload, str) else payload
        name = str(p.get("provider"))
        if name not in latest:
            latest[name] = Pause(
                name,
                as_utc(datetime.fromisoformat(str(p.get("until")))),
                p.get("code"),
                str(p.get("reason") or ""),
                p.get("next"),
                str(subject).partition(":")[2],
            )
    return sorted(latest.values(), key=lambda x: x.provider)


def paused_now(conn: sa.Connection, now: datetime) -> list[Pause]:
    return [p for p in provider_pauses(conn) if p.until > now]
