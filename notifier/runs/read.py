"""Reading runs back: the list, one run's state (`runs show`), its stored messages as approvers
page through them (masked unless unmasking is allowed and audited), each recipient's delivery
status (masked) and what changed in the rule since the last approved run of it."""

from __future__ import annotations

import difflib
from typing import Any

import sqlalchemy as sa
import yaml

from ..actors import unmasking_actor
from ..app import App
from ..audit import log as audit
from ..clock import as_utc
from ..masking import mask_address, mask_email, mask_name, mask_phone
from ..messages import mask_message
from ..retention import PURGED, shown
from ..status import Channel, DeliveryStatus, RunStatus
from ..storage.schema import approvals, deliveries, run_messages, runs
from .review import load_run
from .snapshot import RunSnapshot


def list_runs(app: App) -> list[dict[str, Any]]:
    """Every run, oldest first, with who approved it so far (a review queue is a filter of this)."""
    with app.reader.connect() as conn:
        rows = conn.execute(
            sa.select(
                runs.c.id,
                runs.c.rule_id,
                runs.c.status,
                runs.c.created_at,
                runs.c.audience,
                runs.c.created_by,
                runs.c.levels,
            ).order_by(runs.c.id)
        ).all()
        approved: dict[int, list[str]] = {}
        for run_id, by in conn.execute(
            sa.select(approvals.c.run_id, approvals.c.approved_by).order_by(approvals.c.level)
        ):
            approved.setdefault(run_id, []).append(by)
    return [
        {
            "run": r.id,
            "rule": r.rule_id,
            "status": r.status,
            "created_at": as_utc(r.created_at).isoformat(),
            "audience": r.audience,
            "created_by": r.created_by,
            "levels": len(r.levels),
            "approved_by": approved.get(r.id, []),
        }
        for r in rows
    ]


def show_run(app: App, run_id: int) -> dict[str, Any]:
    with app.reader.connect() as conn:
        run = load_run(conn, run_id)
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
        by_change = {
            kind: int(n)
            for kind, n in conn.execute(
                sa.select(deliveries.c.change_kind, sa.func.count())
                .where(
                    deliveries.c.run_id == run_id,
                    deliveries.c.fallback_of.is_(None),
                    deliveries.c.change_kind.is_not(None),
                )
                .group_by(deliveries.c.change_kind)
            )
        }
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
        "params": dict(RunSnapshot.from_json(run.snapshot).params),
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
        **({"by_change": by_change} if by_change else {}),  # a change run: notices by kind
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
    reason: str | None = None,
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
        load_run(conn, run_id)
        rows = conn.execute(q).all()
        total = conn.execute(
            sa.select(sa.func.count()).select_from(m).where(m.c.run_id == run_id)
        ).scalar_one()
        if unmask:
            audit.record(
                conn,
                who,
                "run.messages_unmasked",
                f"run:{run_id}",
                resident=resident,
                messages=len(rows),
                **({"reason": reason} if reason else {}),
            )
    out = [_message_json(r, unmask) for r in rows]
    return {"run": run_id, "total": int(total), "shown": len(out), "masked": not unmask, "messages": out}


def _message_json(r: Any, unmask: bool) -> dict[str, Any]:
    """One stored message, with the resident's personal data masked unless `unmask`."""
    personal = (
        r.recipient_name,
        r.recipient if r.channel == "sms" else r.r_phone,
        r.r_id_number,
        r.recipient if r.channel == "email" else r.r_email,
        r.recipient if r.channel == "letter" else r.r_address,
    )

    def show(text: str | None) -> str | None:
        if r.purged_at is not None:
            return PURGED
        return text if unmask else mask_message(text, personal)

    return {
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


PAGE = 50
_MASK_RECIPIENT = {"sms": mask_phone, "email": mask_email, "letter": mask_address}


def run_deliveries(
    app: App, run_id: int, *, status: str | None = None, offset: int = 0, limit: int = PAGE
) -> dict[str, Any]:
    """One page of a run's deliveries, one row per recipient and channel, with status and reason;
    names and contacts masked (staff answering a resident's call need no more)."""
    d, m = deliveries, run_messages
    where = [d.c.run_id == run_id] + ([d.c.status == status] if status else [])
    with app.reader.connect() as conn:
        load_run(conn, run_id)
        total = conn.execute(sa.select(sa.func.count()).select_from(d).where(*where)).scalar_one()
        rows = conn.execute(
            sa.select(
                d.c.id,
                d.c.resident_id,
                d.c.channel,
                d.c.status,
                d.c.recipient,
                d.c.provider,
                d.c.attempts,
                d.c.reason,
                d.c.error_code,
                d.c.fallback_of,
                d.c.updated_at,
                m.c.recipient_name,
                m.c.village,
                d.c.purged_at,
            )
            .join(m, m.c.id == d.c.message_id, isouter=True)
            .where(*where)
            .order_by(d.c.resident_id, d.c.id)
            .offset(max(0, offset))
            .limit(max(1, min(limit, 500)))
        ).all()
    return {
        "run": run_id,
        "status": status,
        "total": int(total),
        "offset": max(0, offset),
        "deliveries": [
            {
                "delivery": r.id,
                "resident": r.resident_id,
                "name": shown(r.recipient_name, r.purged_at, mask_name),
                "village": r.village,
                "channel": r.channel,
                "recipient": shown(r.recipient, r.purged_at, _MASK_RECIPIENT.get(r.channel, mask_address)),
                "status": r.status,
                "provider": r.provider,
                "attempts": r.attempts,
                "reason": mask_message(r.reason, _personal(r)),
                "error_code": r.error_code,
                "fallback_of": r.fallback_of,
                "updated_at": as_utc(r.updated_at).isoformat(),
            }
            for r in rows
        ],
    }


def _personal(r: Any) -> tuple[str | None, ...]:
    """(name, phone, ID number, e-mail, address) as mask_message takes them, from a delivery row."""
    contact = {c: r.recipient if r.channel == c.value else None for c in Channel}
    return (r.recipient_name, contact[Channel.SMS], None, contact[Channel.EMAIL], contact[Channel.LETTER])


def rule_diff(app: App, run_id: int) -> dict[str, Any]:
    """What this run's frozen rule and templates change against the last approved run of the
    same rule (approved or completed), as unified diff lines; what reviewers must read closely."""
    with app.reader.connect() as conn:
        run = load_run(conn, run_id)
        before = conn.execute(
            sa.select(runs.c.id, runs.c.rule_version, runs.c.snapshot)
            .where(
                runs.c.rule_id == run.rule_id,
                runs.c.id < run_id,
                runs.c.approved_at.is_not(None),
                runs.c.status.in_([RunStatus.APPROVED, RunStatus.COMPLETED]),
            )
            .order_by(runs.c.id.desc())
            .limit(1)
        ).first()
    if before is None:
        return {"run": run_id, "against": None, "same": False, "diff": []}
    old, new = _reviewed_text(before.snapshot), _reviewed_text(run.snapshot)
    diff = list(difflib.unified_diff(old, new, f"run {before.id}", f"run {run_id}", lineterm="", n=2))
    return {"run": run_id, "against": before.id, "same": not diff, "diff": diff}


def _reviewed_text(snapshot: Any) -> list[str]:
    """The parts of a run snapshot a reviewer approves, as lines: the rule, its parameter values
    on the run date, and each channel's template source."""
    snap = RunSnapshot.from_json(snapshot)
    text: str = yaml.safe_dump(
        {"rule": dict(snap.rule), "params": dict(snap.params)}, allow_unicode=True, sort_keys=True
    )
    for channel, source in sorted(snap.templates.items()):
        text += f"--- template {channel} ---\n{source}\n"
    return text.splitlines()
