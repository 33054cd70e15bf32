"""Runs: a frozen audience (one delivery row per resident x channel), its approvals and state.

Creating a run snapshots what will be sent (rule, templates, parameter values in force) and
renders and stores every message (messages.py), so later edits to files or re-imports of the
register never change an approved run. A notice reaches a resident at most once
per channel across runs: `notice_key` is the rule id (and the date, for recurring notices),
unique per resident and channel in the deliveries table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from .actors import actor_name, same_actor, unmasking_actor
from .app import App
from .audience import evaluate
from .audit import log as audit
from .clock import as_utc, utcnow
from .errors import NotFound, StateError
from .messages import mask_message, render_messages
from .rendering.templates import item_context
from .rules.compile import params_in_force
from .rules.model import Rule, jsonable
from .status import DeliveryStatus, RunStatus
from .storage.bulk import executemany
from .storage.schema import approvals, deliveries, run_messages, runs


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

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "status": self.status,
            "audience": self.audience,
            "review": self.review,
            "skipped": self.skipped,
            "version": self.version,
        }


def window_problem(rule: Rule, on: date) -> str | None:
    """Why `on` lies outside the item's publication window, or None."""
    start, until = rule.item.publish_from, rule.item.publish_until
    if (start and on < start) or (until and on > until):
        return (
            f"{on.isoformat()} is outside the publication window of {rule.id!r} "
            f"({start.isoformat() if start else '…'} to {until.isoformat() if until else '…'})"
        )
    return None


def create_run(app: App, rule: Rule, on: date, by: str) -> RunCreated:
    """Freeze the audience and render its messages; refused, with nothing stored, when the
    date is outside the item's window or any message cannot render."""
    by = actor_name(by)
    if rule.item.disclosure == "restricted":
        raise StateError(f"rule {rule.id!r}: item is restricted; restricted items are never sent")
    if (why := window_problem(rule, on)) is not None:
        raise StateError(f"{why}: nothing dated outside it is created; pass --on a date inside the window")
    aud = evaluate(app, rule, on)
    rendered = render_messages(app, rule, on, aud.members)
    rendered.raise_for_failures(rule)
    key = notice_key(rule, on)
    now = utcnow()
    snapshot = {
        "rule": rule.document,
        "file": rule.file,
        "templates": {c.value: s for c, s in rule.template_sources.items()},
        "template_names": {c.value: n for c, n in rule.templates.items()},
        "item": jsonable(item_context(rule.item, app.dictionary.domains)),
        "disclosure": rule.item.disclosure,
        "params": params_in_force(rule, on),
        "channels": [c.value for c in rule.channels],
    }
    with app.engine.begin() as conn:
        notified = {
            r.resident_id: r.run_id
            for r in conn.execute(
                sa.select(deliveries.c.resident_id, deliveries.c.run_id).where(deliveries.c.notice_key == key)
            )
        }
        run_id = conn.execute(
            runs.insert().values(
                rule_id=rule.id,
                rule_version=rule.version,
                notice_key=key,
                on_date=on,
                status=RunStatus.AWAITING_APPROVAL,
                snapshot=snapshot,
                levels=app.config.approval_levels,
                audience=len(aud.members),
                review=aud.counts["review"],
                created_by=by,
                created_at=now,
            )
        ).inserted_primary_key[0]
        rows = []
        for m in aud.members:
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
        executemany(conn, deliveries.insert(), rows)
        executemany(conn, run_messages.insert(), [m | {"run_id": run_id} for m in rendered.rows])
        m = run_messages
        conn.execute(
            deliveries.update()
            .where(deliveries.c.run_id == run_id, deliveries.c.channel != "none")
            .values(
                message_id=sa.select(m.c.id)
                .where(
                    m.c.run_id == run_id,
                    m.c.resident_id == deliveries.c.resident_id,
                    m.c.channel == deliveries.c.channel,
                )
                .scalar_subquery()
            )
        )
        digest = hashlib.sha256(
            "\n".join(f"{r['resident_id']}\t{r['channel']}\t{r['status']}" for r in rows).encode()
        ).hexdigest()
        texts = hashlib.sha256(
            "\n".join(f"{r['resident_id']}\t{r['channel']}\t{r['sha256']}" for r in rendered.rows).encode()
        ).hexdigest()
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
            params=snapshot["params"],
            deliveries_sha256=digest,
            messages=len(rendered.rows),
            messages_sha256=texts,
        )
    return RunCreated(
        run_id, RunStatus.AWAITING_APPROVAL, len(rows), aud.counts["review"], skipped, rule.version
    )


def _load_run(conn: sa.Connection, run_id: int, lock: bool = False) -> sa.Row[Any]:
    q = sa.select(runs).where(runs.c.id == run_id)
    row = conn.execute(q.with_for_update() if lock else q).one_or_none()
    if row is None:
        raise NotFound(f"no run {run_id}")
    return row


def approve_run(app: App, run_id: int, by: str) -> dict[str, Any]:
    """One review level. Never by the run's creator, never twice by the same person (names
    compared as actors.same_actor does: case, width and stray spaces do not make a new person)."""
    by = actor_name(by)
    with app.engine.begin() as conn:
        run = _load_run(conn, run_id, lock=True)
        if run.status != RunStatus.AWAITING_APPROVAL:
            raise StateError(f"run {run_id} is {run.status}; only runs awaiting approval can be approved")
        if same_actor(by, run.created_by):
            raise StateError(f"run {run_id} was created by {run.created_by}; the creator cannot approve it")
        done = conn.execute(
            sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.level)
        ).all()
        if (same := next((a for a in done if same_actor(a.approved_by, by)), None)) is not None:
            raise StateError(
                f"{same.approved_by} already approved run {run_id} (level {same.level}); "
                "each level needs a different person"
            )
        levels = list(run.levels)
        level = len(done) + 1
        now = utcnow()
        conn.execute(
            approvals.insert().values(
                run_id=run_id, level=level, level_name=levels[level - 1], approved_by=by, approved_at=now
            )
        )
        status = RunStatus.APPROVED if level == len(levels) else RunStatus.AWAITING_APPROVAL
        if status == RunStatus.APPROVED:
            conn.execute(runs.update().where(runs.c.id == run_id).values(status=status, approved_at=now))
        audit.record(
            conn,
            by,
            "run.approved",
            f"run:{run_id}",
            level=level,
            level_name=levels[level - 1],
            of=len(levels),
            status=status,
            version=run.rule_version,
        )
    names = [a.approved_by for a in done] + [by]
    return {
        "run": run_id,
        "status": str(status),
        "approvals": [{"level": i + 1, "level_name": levels[i], "by": n} for i, n in enumerate(names)],
        "levels": len(levels),
    }


def cancel_run(app: App, run_id: int, by: str) -> dict[str, Any]:
    by = actor_name(by)
    with app.engine.begin() as conn:
        run = _load_run(conn, run_id, lock=True)
        if run.status in (RunStatus.CANCELLED, RunStatus.COMPLETED):
            raise StateError(f"run {run_id} is already {run.status}")
        now = utcnow()
        pending = (
            conn.execute(
                sa.select(deliveries.c.id).where(
                    deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            deliveries.update()
            .where(deliveries.c.run_id == run_id, deliveries.c.status == DeliveryStatus.PENDING)
            .values(
                status=DeliveryStatus.SKIPPED,
                reason=f"run cancelled by {by}",
                notice_key=None,
                updated_at=now,
            )
        )
        conn.execute(
            runs.update()
            .where(runs.c.id == run_id)
            .values(status=RunStatus.CANCELLED, cancelled_by=by, cancelled_at=now)
        )
        audit.append(
            conn,
            [audit.AuditEvent(by, "run.cancelled", f"run:{run_id}", {"pending_skipped": len(pending)})]
            + [
                audit.AuditEvent(
                    by,
                    "delivery.status",
                    f"delivery:{d}",
                    {"run": run_id, "from": "pending", "to": "skipped", "reason": "run cancelled"},
                )
                for d in pending
            ],
        )
    return {"run": run_id, "status": str(RunStatus.CANCELLED), "skipped": len(pending)}


def list_runs(app: App) -> list[dict[str, Any]]:
    with app.reader.connect() as conn:
        rows = conn.execute(
            sa.select(
                runs.c.id,
                runs.c.rule_id,
                runs.c.status,
                runs.c.created_at,
                runs.c.audience,
                runs.c.created_by,
            ).order_by(runs.c.id)
        ).all()
    return [
        {
            "run": r.id,
            "rule": r.rule_id,
            "status": r.status,
            "created_at": as_utc(r.created_at).isoformat(),
            "audience": r.audience,
            "created_by": r.created_by,
        }
        for r in rows
    ]


def show_run(app: App, run_id: int) -> dict[str, Any]:
    with app.reader.connect() as conn:
        run = _load_run(conn, run_id)
        counts = {s.value: 0 for s in DeliveryStatus}
        by_channel: dict[str, dict[str, int]] = {}
        for status, channel, n in conn.execute(
            sa.select(deliveries.c.status, deliveries.c.channel, sa.func.count())
            .where(deliveries.c.run_id == run_id)
            .group_by(deliveries.c.status, deliveries.c.channel)
        ):
            counts[status] += n
            by_channel.setdefault(channel, {})[status] = n
        appr = conn.execute(
            sa.select(approvals).where(approvals.c.run_id == run_id).order_by(approvals.c.level)
        ).all()
        changed = _changed_since(conn, app, run)
    return {
        "run": run.id,
        "rule": run.rule_id,
        "version": run.rule_version,
        "status": run.status,
        "on": run.on_date.isoformat(),
        "created_by": run.created_by,
        "created_at": as_utc(run.created_at).isoformat(),
        "audience": run.audience,
        "review": run.review,
        "counts": counts,
        "by_channel": by_channel,
        "params": run.snapshot.get("params", {}),
        "approvals": [
            {
                "level": a.level,
                "level_name": a.level_name,
                "by": a.approved_by,
                "at": as_utc(a.approved_at).isoformat(),
            }
            for a in appr
        ],
        "levels": list(run.levels),
        "changed_since_created": changed,
    }


def _changed_since(conn: sa.Connection, app: App, run: Any) -> int:
    """Residents of the run whose register entry changed after it was created: their stored
    messages do not show that change (staff can cancel and re-create the run)."""
    t, d = app.residents, deliveries
    return int(
        conn.execute(
            sa.select(sa.func.count(sa.distinct(d.c.resident_id)))
            .select_from(d.join(t, t.c.resident_id == d.c.resident_id))
            .where(d.c.run_id == run.id, t.c.updated_at > run.created_at)
        ).scalar_one()
    )


def run_messages_page(
    app: App,
    run_id: int,
    *,
    sample: int | None = None,
    resident: str | None = None,
    unmask: bool = False,
    by: str | None = None,
) -> dict[str, Any]:
    """The stored messages of a run as approvers read them: masked, unless unmasking is
    allowed in the configuration and who unmasks is recorded in the audit log."""
    m, t = run_messages, app.residents
    if unmask:
        who = unmasking_actor(app.config, by, "messages")
    q = (
        sa.select(
            m,
            deliveries.c.status,
            deliveries.c.fallback_of,
            t.c.phone.label("r_phone"),
            t.c.id_number.label("r_id_number"),
            t.c.email.label("r_email"),
            t.c.address.label("r_address"),
        )
        .join(deliveries, deliveries.c.message_id == m.c.id, isouter=True)
        .join(t, t.c.resident_id == m.c.resident_id, isouter=True)
        .where(m.c.run_id == run_id)
        .order_by(m.c.resident_id, m.c.id)
    )
    if resident is not None:
        q = q.where(m.c.resident_id == resident)
    if sample is not None:
        q = q.limit(sample)
    with (
        app.engine.begin() if unmask else app.reader.connect() as conn
    ):  # only an unmasking writes (its audit event)
        _load_run(conn, run_id)
        rows = conn.execute(q).all()
        total = conn.execute(
            sa.select(sa.func.count()).select_from(m).where(m.c.run_id == run_id)
        ).scalar_one()
        if unmask:
            audit.record(
                conn, who, "run.messages_unmasked", f"run:{run_id}", resident=resident, messages=len(rows)
            )
    out = []
    for r in rows:
        personal = (
            r.recipient_name,
            r.recipient if r.channel == "sms" else r.r_phone,
            r.r_id_number,
            r.recipient if r.channel == "email" else r.r_email,
            r.recipient if r.channel == "letter" else r.r_address,
        )
        show = (lambda x: x) if unmask else (lambda x, p=personal: mask_message(x, p))
        out.append(
            {
                "resident": r.resident_id,
                "channel": r.channel,
                "recipient": show(r.recipient),
                "role": "fallback" if r.fallback_of else "first" if r.status else "fallback if needed",
                "status": r.status,
                "subject": show(r.subject),
                "body": show(r.body),
                "html": show(r.html),
                "segments": r.segments,
                "sha256": r.sha256,
            }
        )
    return {"run": run_id, "total": int(total), "shown": len(out), "masked": not unmask, "messages": out}
