"""`audit export`: the events an auditor asks for, as CSV, JSON Lines or XLSX.

Subjects and payloads are masked by default (phone numbers, ID numbers, e-mail addresses; an
opt-out's subject reads `phone:+86139****5678`), because exports travel by e-mail and USB stick.
`--unmask` is refused unless the configuration allows it, and is itself written to the audit log
before anything is exported. Every export closes with the chain head it was taken at, so the file
can later be checked against `audit verify` and the checkpoints: an unmasked event's hash can be
recomputed from its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..actors import unmasking_actor
from ..app import App
from ..clock import as_utc, utcnow
from ..errors import InputError
from ..masking import mask_text
from ..storage.schema import audit_events, deliveries
from . import log as audit
from .sheets import table_writer

HEADER = ("seq", "ts", "actor", "action", "subject", "payload", "prev_hash", "hash")


@dataclass(frozen=True)
class ExportFilter:
    run: int | None = None
    resident: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "resident": self.resident,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }


def _where(app: App, f: ExportFilter) -> sa.ColumnElement[bool]:
    """Events about a run are its own (`run:N`) and its deliveries' (`delivery:ID`); a resident's are
    their deliveries'. Dates are whole days in the configured timezone."""
    e, d = audit_events, deliveries
    delivery_subject = sa.literal("delivery:") + sa.cast(d.c.id, sa.String)
    conds: list[sa.ColumnElement[bool]] = []
    if f.run is not None:
        conds.append(
            sa.or_(
                e.c.subject == f"run:{f.run}",
                e.c.subject.in_(sa.select(delivery_subject).where(d.c.run_id == f.run)),
            )
        )
    if f.resident is not None:
        conds.append(e.c.subject.in_(sa.select(delivery_subject).where(d.c.resident_id == f.resident)))
    tz = app.config.timezone
    if f.date_from is not None:
        conds.append(e.c.ts >= as_utc(datetime.combine(f.date_from, time(), tz)))
    if f.date_to is not None:
        conds.append(e.c.ts < as_utc(datetime.combine(f.date_to + timedelta(days=1), time(), tz)))
    return sa.and_(sa.true(), *conds)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the file, how many events, masked or not, and the chain head it ends with."""

    file: Path
    format: str
    events: int
    masked: bool
    head_seq: int
    head_hash: str
    filters: ExportFilter

    def as_json(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "format": self.format,
            "events": self.events,
            "masked": self.masked,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "filters": self.filters.as_json(),
        }


def export_events(
    app: App,
    out: Path,
    fmt: str,
    f: ExportFilter,
    *,
    unmask: bool = False,
    by: str | None = None,
    reason: str | None = None,
) -> ExportResult:
    if f.date_from and f.date_to and f.date_from > f.date_to:
        raise InputError(f"--from {f.date_from} is after --to {f.date_to}")
    if unmask:
        who = unmasking_actor(app.config, by, "export")
        with app.engine.begin() as conn:
            audit.record(
                conn,
                who,
                "audit.unmasked_export",
                f"export:{out.name}",
                file=str(out),
                format=fmt,
                filters=f.as_json(),
                **({"reason": reason} if reason else {}),
            )
    count = 0
    with audit.snapshot(app.engine) as conn, table_writer(out, fmt, HEADER) as write:
        head_seq, head_hash = audit.read_head(conn)
        where = sa.and_(_where(app, f), audit_events.c.seq <= head_seq)
        for r in audit.iter_events(conn, where=where):
            write(
                (
                    r.seq,
                    audit.ts_text(r.ts),
                    r.actor,
                    r.action,
                    r.subject if unmask else mask_text(r.subject),
                    r.payload if unmask else mask_text(r.payload),
                    r.prev_hash,
                    r.hash,
                )
            )
            count += 1
        taken = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        trailer = {
            "seq": head_seq,
            "hash": head_hash,
            "taken_at": taken,
            "masked": not unmask,
            "events": count,
        }
        write({"chain_head": trailer} if fmt == "jsonl" else ["chain_head", *trailer.values()])
    return ExportResult(out, fmt, count, not unmask, head_seq, head_hash, f)
