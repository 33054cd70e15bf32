"""`retention apply`: bodies and contacts of finished runs, files, and left residents' register
data removed in bulk SQL, each step one transaction with its audit event (counts only).

What stays is what the reports and the audit need: statuses, times, channels, providers' message
ids, the message digest (run_messages.sha256, stored at creation, so every body has one before it
goes), the verification code, the resident's id, township and village, and the audit chain itself.
Rows are chosen by run (a finished run's completion, or cancellation, before the cut-off of its
rule) and by resident id in pages, so memory stays bounded whatever the database's size. A run
reopened after its purge (a late receipt) has no stored message left to fall back to.

On SQLite every connection runs with `secure_delete` (storage/db.py), so removed values are
zeroed rather than left in free pages, and the WAL is truncated afterwards: the file and its
-wal hold no removed value once apply returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..clock import as_utc, utcnow
from ..masking import mask_text
from ..status import RunStatus
from ..storage.bulk import executemany
from ..storage.schema import deliveries, records, run_messages, runs
from . import files
from .policy import Policy, rule_overrides

log = logging.getLogger("notifier.retention")
ACTOR = "system:retention"
PAGE = 1000  # resident ids per transaction
_PERSONAL = ("name", "phone", "email", "id_number", "address")


@dataclass
class RetentionReport:
    """What one apply removed (or, dry run, would remove): counts only."""

    dry_run: bool
    policy: Policy
    runs: int = 0
    messages: int = 0
    deliveries: int = 0
    residents: int = 0
    records: int = 0
    files: int = 0
    by_run: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "at": as_utc(self.policy.now).isoformat(),
            "policy": self.policy.as_json(),
            "runs": self.runs,
            "messages": self.messages,
            "deliveries": self.deliveries,
            "residents": self.residents,
            "records": self.records,
            "files": self.files,
            "by_run": self.by_run,
        }


def _finished() -> sa.ColumnElement[Any]:
    return sa.case(
        (runs.c.status == RunStatus.CANCELLED.value, runs.c.cancelled_at), else_=runs.c.completed_at
    )


def due_runs(
    conn: sa.Connection, policy: Policy, days_of: Callable[[str], int], *, unpurged: bool = False
) -> list[tuple[int, str, int]]:
    """(run, rule, days) of the finished runs past their cut-off (`days_of` their rule's days);
    `unpurged`: only those with a message or delivery still holding data (each day's apply skips
    the runs done before)."""
    q = (
        sa.select(runs.c.id, runs.c.rule_id, _finished().label("finished"))
        .where(runs.c.status.in_([RunStatus.COMPLETED.value, RunStatus.CANCELLED.value]))
        .order_by(runs.c.id)
    )
    if unpurged:
        m, d = run_messages, deliveries
        q = q.where(
            sa.or_(
                sa.exists().where(m.c.run_id == runs.c.id, m.c.purged_at.is_(None)),
                sa.exists().where(d.c.run_id == runs.c.id, d.c.purged_at.is_(None)),
            )
        )
    rows = conn.execute(q).all()
    out = []
    for r in rows:
        days = days_of(r.rule_id)
        cut = policy.cutoff(days)
        if cut is not None and r.finished is not None and as_utc(r.finished) < cut:
            out.append((int(r.id), str(r.rule_id), days))
    return out


def _message_values(now: datetime) -> dict[str, Any]:
    return {
        "recipient": "",
        "recipient_name": None,
        "subject": None,
        "body": "",
        "html": None,
        "templates": None,
        "postcode": None,
        "purged_at": now,
    }


def _purge_run(conn: sa.Connection, run_id: int, now: datetime, dry: bool) -> tuple[int, int]:
    """(messages, deliveries) of one run emptied (or, dry, that would be)."""
    m, d = run_messages, deliveries
    mw = sa.and_(m.c.run_id == run_id, m.c.purged_at.is_(None))
    dw = sa.and_(d.c.run_id == run_id, d.c.purged_at.is_(None))
    if dry:
        count = sa.func.count()
        return (
            int(conn.execute(sa.select(count).select_from(m).where(mw)).scalar_one()),
            int(conn.execute(sa.select(count).select_from(d).where(dw)).scalar_one()),
        )
    msgs = conn.execute(m.update().where(mw).values(**_message_values(now))).rowcount
    _mask_reasons(conn, dw)
    dels = conn.execute(d.update().where(dw).values(recipient=None, purged_at=now)).rowcount
    return int(msgs), int(dels)


def _mask_reasons(conn: sa.Connection, where: sa.ColumnElement[bool]) -> None:
    """A provider's refusal stored as a delivery's reason may quote the number: masked, a page of
    rows at a time (only rows with a reason, the failed and skipped ones, are read)."""
    d, last = deliveries, 0
    while True:
        rows = conn.execute(
            sa.select(d.c.id, d.c.reason)
            .where(where, d.c.reason.is_not(None), d.c.id > last)
            .order_by(d.c.id)
            .limit(PAGE)
        ).all()
        if not rows:
            return
        changed = [{"b_id": i, "b_reason": mask_text(r)} for i, r in rows if mask_text(r) != r]
        if changed:
            executemany(
                conn,
                d.update().where(d.c.id == sa.bindparam("b_id")).values(reason=sa.bindparam("b_reason")),
                changed,
            )
        last = rows[-1].id


def _left_pages(conn: sa.Connection, t: sa.Table, cut: datetime) -> Iterator[list[str]]:
    """Ids of residents who left before `cut` and still hold personal data, a page at a time."""
    last = ""
    while True:
        ids = list(
            conn.execute(
                sa.select(t.c.resident_id)
                .where(t.c.left_at.is_not(None), t.c.left_at < cut)
                # purged_at before left_at: purged once, returned, re-imported and left again
                .where(sa.or_(t.c.purged_at.is_(None), t.c.purged_at < t.c.left_at))
                .where(t.c.resident_id > last)
                .order_by(t.c.resident_id)
                .limit(PAGE)
            ).scalars()
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def _purge_residents(
    app: App, ids: list[str], now: datetime, who: dict[str, str]
) -> tuple[int, int, int, int]:
    """(residents, records, messages, deliveries) of these left residents emptied: their register
    row keeps id, township, village and when and why they left; their messages go in every
    finished run (a run still open keeps them until it finishes: it may still send)."""
    t, m, d = app.residents, run_messages, deliveries
    blank = {c.name: None for c in t.columns if c.name in _PERSONAL or c.name.startswith("f_")}
    finished = sa.select(runs.c.id).where(
        runs.c.status.in_([RunStatus.COMPLETED.value, RunStatus.CANCELLED.value])
    )
    with app.engine.begin() as conn:
        res = conn.execute(t.update().where(t.c.resident_id.in_(ids)).values(**blank, purged_at=now)).rowcount
        recs = conn.execute(records.delete().where(records.c.resident_id.in_(ids))).rowcount
        msgs = conn.execute(
            m.update()
            .where(m.c.resident_id.in_(ids), m.c.purged_at.is_(None), m.c.run_id.in_(finished))
            .values(**_message_values(now))
        ).rowcount
        dw = sa.and_(d.c.resident_id.in_(ids), d.c.purged_at.is_(None), d.c.run_id.in_(finished))
        _mask_reasons(conn, dw)
        dels = conn.execute(d.update().where(dw).values(recipient=None, purged_at=now)).rowcount
        audit.append(
            conn,
            [
                audit.AuditEvent(
                    ACTOR,
                    "retention.residents_purged",
                    "residents",
                    {"residents": res, "records": recs, "messages": msgs, "deliveries": dels, **who},
                )
            ],
            now=now,
        )
    return int(res), int(recs), int(msgs), int(dels)


def apply_retention(
    app: App,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    by: str | None = None,
    progress: Callable[[int], None] = lambda n: None,
    set_total: Callable[[int | None], None] = lambda t: None,
) -> RetentionReport:
    """Apply `[retention]` at `now` (default: the clock): one transaction and one audit event per
    run, per page of left residents and per run's files; a dry run counts and changes nothing.
    `by`: the account that started it from the command line (recorded with the counts)."""
    now = now or utcnow()
    who = {"by": by} if by else {}
    policy = Policy.of(app.config.retention, now, rule_overrides(app))
    report = RetentionReport(dry_run, policy)
    with app.engine.connect() as conn:
        message_runs = due_runs(conn, policy, policy.message_days, unpurged=True)
        file_runs = due_runs(conn, policy, policy.file_days)
    set_total(len(message_runs) + len(file_runs))
    for run_id, rule_id, days in message_runs:
        with app.engine.begin() as conn:
            msgs, dels = _purge_run(conn, run_id, now, dry_run)
            if (msgs or dels) and not dry_run:
                audit.append(
                    conn,
                    [
                        audit.AuditEvent(
                            ACTOR,
                            "retention.purged",
                            f"run:{run_id}",
                            {"rule": rule_id, "days": days, "messages": msgs, "deliveries": dels, **who},
                        )
                    ],
                    now=now,
                )
        if msgs or dels:
            report.runs += 1
            report.messages += msgs
            report.deliveries += dels
            report.by_run.append({"run": run_id, "messages": msgs, "deliveries": dels})
        progress(1)
    for run_id, _rule_id, days in file_runs:
        found = files.run_files(app.config, run_id)
        if found and not dry_run:
            removed = files.remove(found)
            with app.engine.begin() as conn:
                audit.append(
                    conn,
                    [
                        audit.AuditEvent(
                            ACTOR,
                            "retention.files_removed",
                            f"run:{run_id}",
                            {"days": days, "files": removed, **who},
                        )
                    ],
                    now=now,
                )
            report.files += removed
        elif found:
            report.files += sum(files.count(p) for p in found)
        progress(1)
    cut = policy.cutoff(policy.left_residents_days)
    if cut is not None:
        with app.engine.connect() as conn:
            pages = list(_left_pages(conn, app.residents, cut)) if dry_run else None
        if pages is not None:
            report.residents = sum(len(p) for p in pages)
        else:
            while True:  # each page is purged before the next is read: the query skips done rows
                with app.engine.connect() as conn:
                    ids = next(_left_pages(conn, app.residents, cut), None)
                if not ids:
                    break
                res, recs, msgs, dels = _purge_residents(app, ids, now, who)
                report.residents += res
                report.records += recs
                report.messages += msgs
                report.deliveries += dels
    if not dry_run:
        _compact(app)
    log.info(
        "retention: %s runs, %s messages, %s deliveries, %s residents, %s files%s",
        report.runs,
        report.messages,
        report.deliveries,
        report.residents,
        report.files,
        " (dry run)" if dry_run else "",
    )
    return report


def _compact(app: App) -> None:
    """SQLite: fold the WAL into the file and truncate it, so old page images with the removed
    values do not stay in the -wal file (freed space is zeroed by secure_delete)."""
    if app.engine.dialect.name != "sqlite":
        return
    raw = app.engine.raw_connection()  # outside any transaction: a checkpoint cannot run in one
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        busy = cur.fetchone()
        cur.close()
    finally:
        raw.close()
    if busy and busy[0]:  # a reader kept its snapshot: the next apply truncates it
        log.warning("retention: the WAL could not be truncated (a reader was active)")
