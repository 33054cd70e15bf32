"""Reading runs back: the list, one run's state (`runs show`) and its stored messages as
approvers page through them (masked unless unmasking is allowed and audited)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..actors import unmasking_actor
from ..app import App
from ..audit import log as audit
from ..clock import as_utc
from ..messages import mask_message
from ..status import DeliveryStatus
from ..storage.schema import approvals, deliveries, run_messages, runs
from .review import load_run
from .snapshot import RunSnapshot


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
        load_run(conn, run_id)
        rows = conn.execute(q).all()
        total = conn.execute(
            sa.select(sa.func.count()).select_from(m).where(m.c.run_id == run_id)
        ).scalar_one()
        if unmask:
            audit.record(
                conn, who, "run.messages_unmasked", f"run:{run_id}", resident=resident, messages=len(rows)
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
