"""Run creation: freeze the audience (one delivery row per resident x channel), render and
store every message, and snapshot what will be sent (RunSnapshot).

Later edits to files or re-imports of the register never change an approved run. A notice
reaches a resident at most once per channel across runs: `notice_key` is the rule id (and the
date, for recurring notices), unique per resident and channel in the deliveries table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from ..actors import actor_name
from ..app import App
from ..audience import Member, evaluate
from ..audit import log as audit
from ..clock import utcnow
from ..errors import StateError
from ..messages import render_messages
from ..rules.model import Rule
from ..status import DeliveryStatus, RunStatus
from ..storage.bulk import executemany
from ..storage.schema import deliveries, run_messages, runs
from .snapshot import PublicationWindow, RunSnapshot


def notice_key(rule: Rule, on: date) -> str:
    return f"{rule.id}@{on.isoformat()}" if "cron" in rule.schedule else rule.id


@dataclass
class RunCreated:
    run: int
    status: str
    audience: int
    review: int
    skipped: int
    version: str
    rule: str = ""

    @property
    def review_note(self) -> str | None:
        """Where the residents the rule could not decide are listed (rules/reviewqueue.py)."""
        return review_note(self.rule, self.review)

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "status": self.status,
            "audience": self.audience,
            "review": self.review,
            "review_note": self.review_note,
            "skipped": self.skipped,
            "version": self.version,
        }


def review_note(rule: str, waiting: int) -> str | None:
    """The run's residents still waiting in review, in the words staff read (None when none)."""
    if not waiting:
        return None
    return f"另有 {waiting} 人因资料不全待核实，见 notifier rules review {rule}"


def window_problem(rule: Rule, on: date) -> str | None:
    """Why `on` lies outside the item's publication window, or None."""
    window = PublicationWindow.of(rule.item)
    if window.contains(on):
        return None
    return f"{on.isoformat()} is outside the publication window of {rule.id!r} ({window.describe()})"


def create_run(app: App, rule: Rule, on: date, by: str) -> RunCreated:
    """Freeze the audience and render its messages; refused, with nothing stored, when the
    date is outside the item's window or any message cannot render (a RenderError: no run, so
    no delivery and no channel fallback can come of it)."""
    by = actor_name(by)
    if rule.item.disclosure == "restricted":
        raise StateError.translatable(
            "rule '%(rule)s': item is restricted; restricted items are never sent", rule=rule.id
        )
    if window_problem(rule, on) is not None:
        raise StateError.translatable(
            "%(on)s is outside the publication window of '%(rule)s' (%(window)s): nothing dated outside "
            "it is created; pass --on a date inside the window",
            on=on.isoformat(),
            rule=rule.id,
            window=PublicationWindow.of(rule.item).describe(),
        )
    aud = evaluate(app, rule, on)
    key = notice_key(rule, on)
    rendered = render_messages(app, rule, on, aud.members, key)
    rendered.raise_for_failures(rule)
    snapshot = RunSnapshot.of_rule(rule, on, app.dictionary.domains)
    now = utcnow()
    with app.engine.begin() as conn:
        run_id = conn.execute(
            runs.insert()
            .values(
                rule_id=rule.id,
                rule_version=rule.version,
                notice_key=key,
                on_date=on,
                status=RunStatus.AWAITING_APPROVAL,
                snapshot=snapshot.to_json(),
                levels=app.config.approval_levels,
                audience=len(aud.members),
                review=aud.counts["review"],
                created_by=by,
                created_at=now,
            )
            .returning(runs.c.id)
        ).scalar_one()
        rows = _delivery_rows(run_id, aud.members, key, _notified(conn, key), now)
        executemany(conn, deliveries.insert(), rows)
        executemany(conn, run_messages.insert(), [m | {"run_id": run_id} for m in rendered.rows])
        _link_messages(conn, run_id)
        skipped = sum(1 for r in rows if r["status"] == DeliveryStatus.SKIPPED)
        audit.record(
            conn,
            by,
            "run.created",
            f"run:{run_id}",
            rule=rule.id,
            version=rule.version,
            on=on.isoformat(),
            notice_key=key,
            audience=len(rows),
            review=aud.counts["review"],
            skipped=skipped,
            by_channel=aud.by_channel(),
            params=dict(snapshot.params),
            deliveries_sha256=_digest([f"{r['resident_id']}\t{r['channel']}\t{r['status']}" for r in rows]),
            messages=len(rendered.rows),
            messages_sha256=_digest(
                [f"{r['resident_id']}\t{r['channel']}\t{r['sha256']}" for r in rendered.rows]
            ),
        )
    return RunCreated(
        run_id, RunStatus.AWAITING_APPROVAL, len(rows), aud.counts["review"], skipped, rule.version, rule.id
    )


def _notified(conn: sa.Connection, key: str) -> dict[str, int]:
    """Residents already given this notice: resident id -> the run that did."""
    d = deliveries
    return {
        r.resident_id: r.run_id
        for r in conn.execute(sa.select(d.c.resident_id, d.c.run_id).where(d.c.notice_key == key))
    }


def _delivery_rows(
    run_id: int, members: list[Member], key: str, notified: dict[str, int], now: datetime
) -> list[dict[str, Any]]:
    """One row per member: `pending` on its channel, or `skipped` (notified before, no contact)."""
    rows = []
    reason: str | None
    k: str | None
    for m in members:
        status, reason, k = DeliveryStatus.PENDING, None, key
        if m.resident_id in notified:
            status, reason, k = (
                DeliveryStatus.SKIPPED,
                f"already notified in run {notified[m.resident_id]}",
                None,
            )
        elif m.channel is None:
            status, reason, k = DeliveryStatus.SKIPPED, m.reason, None
        rows.append(
            {
                "run_id": run_id,
                "resident_id": m.resident_id,
                "channel": m.channel.value if m.channel else "none",
                "status": status,
                "notice_key": k,
                "recipient": m.recipient,
                "reason": reason,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


def _link_messages(conn: sa.Connection, run_id: int) -> None:
    """Each delivery points at the message stored for its resident and channel."""
    d, m = deliveries, run_messages
    conn.execute(
        d.update()
        .where(d.c.run_id == run_id, d.c.channel != "none")
        .values(
            message_id=sa.select(m.c.id)
            .where(m.c.run_id == run_id, m.c.resident_id == d.c.resident_id, m.c.channel == d.c.channel)
            .scalar_subquery()
        )
    )


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
