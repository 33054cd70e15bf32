"""Coverage: every resident of a run accounted for, and one resident's notices across runs.

A run's audience was frozen at creation as one delivery row per resident (plus later fallback
rows on other channels). Coverage counts each resident once, by the best thing that happened
to them, so the totals add up to the audience exactly; a mismatch means rows went missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..clock import as_utc
from ..errors import NotFound
from ..masking import mask_address, mask_email, mask_phone, mask_text
from ..residents.leaving import LEFT_REASON
from ..retention import PURGED
from ..storage.schema import deliveries, runs

OUTCOMES = ("delivered", "sent", "fallback", "failed", "skipped", "unknown", "pending")
SKIP_REASONS = ("opted_out", "no_contact", "cancelled", "already_notified", "window_closed", "left", "other")
# Best first: reached on the first channel, reached by a fallback, maybe reached, still open, not reached.
_RANK = {"delivered": 0, "sent": 1, "fallback": 2, "unknown": 3, "pending": 4, "failed": 5, "skipped": 6}
_STATUS_OUTCOME = {
    "delivered": "delivered",
    "sent": "sent",
    "failed": "failed",
    "undelivered": "failed",
    "skipped": "skipped",
    "unknown": "unknown",
    "pending": "pending",
    "sending": "pending",
}


def skip_reason(reason: str | None) -> str:
    """The stored reason text (written by run creation and the dispatcher) as a category."""
    text = reason or ""
    if "opted out" in text:
        return "opted_out"
    if text.startswith("no usable contact"):
        return "no_contact"
    if text.startswith("run cancelled"):
        return "cancelled"
    if text.startswith("already notified"):
        return "already_notified"
    if text.startswith("publication window") or "restricted" in text:
        return "window_closed"
    if text.startswith(LEFT_REASON):
        return "left"
    return "other"


def _outcome(row: sa.Row[Any]) -> str:
    out = _STATUS_OUTCOME.get(row.status, "unknown")
    return "fallback" if out in ("delivered", "sent") and row.fallback_of is not None else out


def _when(row: sa.Row[Any]) -> str | None:
    ts = row.sent_at if row.status == "sent" else row.updated_at
    return as_utc(ts).isoformat() if ts is not None and row.status not in ("pending", "sending") else None


@dataclass
class Coverage:
    run: int
    rule: str
    status: str
    audience: int
    review: int
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    skipped_by_reason: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    by_change: dict[str, int] = field(default_factory=dict)  # change runs: residents by kind of notice

    @property
    def counted(self) -> int:
        return sum(self.totals.values())

    @property
    def balanced(self) -> bool:
        return self.counted == self.audience

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "rule": self.rule,
            "status": self.status,
            "audience": self.audience,
            "review": self.review,
            "counted": self.counted,
            "balanced": self.balanced,
            "totals": self.totals,
            "skipped_by_reason": self.skipped_by_reason,
            **({"by_change": self.by_change} if self.by_change else {}),
        }


RESIDENT_COLUMNS = (
    "resident",
    "outcome",
    "channel",
    "status",
    "at",
    "reason",
    "skip_reason",
    "channels",
    "change",
)


def _rows_by_resident(conn: sa.Connection, run_id: int, batch: int = 5000) -> Iterator[list[sa.Row[Any]]]:
    """The run's delivery rows grouped by resident, keyset-paginated on (resident_id, id)."""
    d = deliveries
    cols = (
        d.c.id,
        d.c.resident_id,
        d.c.channel,
        d.c.status,
        d.c.reason,
        d.c.fallback_of,
        d.c.sent_at,
        d.c.updated_at,
        d.c.change_kind,
    )
    last: tuple[str, int] | None = None
    group: list[sa.Row[Any]] = []
    while True:
        q = sa.select(*cols).where(d.c.run_id == run_id)
        if last is not None:
            q = q.where(
                sa.or_(d.c.resident_id > last[0], sa.and_(d.c.resident_id == last[0], d.c.id > last[1]))
            )
        rows = conn.execute(q.order_by(d.c.resident_id, d.c.id).limit(batch)).all()
        for r in rows:
            if group and group[0].resident_id != r.resident_id:
                yield group
                group = []
            group.append(r)
        if len(rows) < batch:
            break
        last = (rows[-1].resident_id, rows[-1].id)
    if group:
        yield group


def coverage(app: App, run_id: int) -> tuple[Coverage, Iterator[dict[str, Any]]]:
    """The run's header and a stream of one outcome per resident; totals fill in as the stream is read."""
    with app.reader.connect() as conn:
        run = conn.execute(
            sa.select(runs.c.id, runs.c.rule_id, runs.c.status, runs.c.audience, runs.c.review).where(
                runs.c.id == run_id
            )
        ).one_or_none()
    if run is None:
        raise NotFound(f"no run {run_id}")
    cov = Coverage(run.id, run.rule_id, run.status, run.audience, run.review)

    def stream() -> Iterator[dict[str, Any]]:
        with app.reader.connect() as conn:
            for group in _rows_by_resident(conn, run_id):
                best = min(group, key=lambda r: (_RANK[_outcome(r)], r.id))
                out = _outcome(best)
                cov.totals[out] += 1
                why = skip_reason(best.reason) if out == "skipped" else None
                if why:
                    cov.skipped_by_reason[why] += 1
                change = group[0].change_kind  # the first row is the resident's own (fallbacks copy it)
                if change:
                    cov.by_change[change] = cov.by_change.get(change, 0) + 1
                yield {
                    "resident": best.resident_id,
                    "outcome": out,
                    "channel": best.channel,
                    "status": best.status,
                    "at": _when(best),
                    "reason": mask_text(best.reason) if best.reason else None,
                    "skip_reason": why,
                    "channels": ",".join(f"{r.channel}:{r.status}" for r in group),
                    "change": change,
                }

    return cov, stream()


@dataclass(frozen=True)
class ResidentHistory:
    """One resident's deliveries across runs, oldest first, recipients masked."""

    resident: str
    in_register: bool
    deliveries: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"resident": self.resident, "in_register": self.in_register, "deliveries": self.deliveries}


def resident_history(app: App, resident_id: str) -> ResidentHistory:
    """Every delivery for one resident across runs, oldest first: what to look at when they complain."""
    d, r = deliveries, runs
    t = app.residents
    with app.reader.connect() as conn:
        known = (
            conn.execute(sa.select(t.c.resident_id).where(t.c.resident_id == resident_id)).first() is not None
        )
        rows = conn.execute(
            sa.select(d, r.c.rule_id, r.c.status.label("run_status"))
            .join(r, r.c.id == d.c.run_id)
            .where(d.c.resident_id == resident_id)
            .order_by(d.c.run_id, d.c.id)
        ).all()
    if not rows and not known:
        raise NotFound(f"no resident {resident_id!r} in the register and no deliveries for it")
    return ResidentHistory(
        resident_id,
        known,
        [
            {
                "run": x.run_id,
                "rule": x.rule_id,
                "run_status": x.run_status,
                "delivery": x.id,
                "channel": x.channel,
                "status": x.status,
                "recipient": PURGED if x.purged_at is not None else _mask_recipient(x.channel, x.recipient),
                "provider": x.provider,
                "message_id": x.provider_message_id,
                "attempts": x.attempts,
                "fallback_of": x.fallback_of,
                "created_at": as_utc(x.created_at).isoformat(),
                "sent_at": as_utc(x.sent_at).isoformat() if x.sent_at else None,
                "at": _when(x),
                "reason": mask_text(x.reason) if x.reason else None,
                "change": x.change_kind,
            }
            for x in rows
        ],
    )


def _mask_recipient(channel: str, value: str | None) -> str | None:
    if not value:
        return None
    return (
        mask_phone(value)
        if channel == "sms"
        else mask_email(value)
        if channel == "email"
        else mask_address(value)
    )


def write_coverage(app: App, run_id: int, path: Path, fmt: str) -> Coverage:
    """The run's one-row-per-resident coverage as a CSV / XLSX / JSONL file; returns the totals
    (complete once the file is written). Shared by `audit coverage -o` and the console."""
    from .sheets import table_writer

    cov, residents = coverage(app, run_id)
    with table_writer(path, fmt, RESIDENT_COLUMNS, sheet=f"run {run_id}") as write:
        for r in residents:
            write([r[c] for c in RESIDENT_COLUMNS])
    return cov
