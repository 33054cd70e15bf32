"""The values the dispatcher's stages hand each other, and the one read they share.

claim -> `Job` (a delivery marked `sending`, with its stored message) -> send -> `Outcome`
(the provider's answer or the error) -> record. Reconciliation reads the same delivery rows
(`delivery_rows`) for what is still open. All frozen: a stage returns values, never fills a
bag another stage reads later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..channels.base import OutboundMessage, SendResult
from ..errors import NotSent, ProviderError
from ..rendering.smsparams import from_json
from ..runs.snapshot import RunSnapshot
from ..status import CHANNELS, Channel
from ..storage.schema import deliveries, opt_outs, run_messages, runs


@dataclass(frozen=True)
class Job:
    """A claimed delivery: `attempt` is the number of this attempt (the claim counted it),
    `provider` the one chosen and recorded on the row before sending."""

    id: int
    run_id: int
    channel: Channel
    attempt: int
    provider: str
    created_at: datetime
    sha256: str | None
    message: OutboundMessage


@dataclass(frozen=True)
class Outcome:
    """What became of one job: the provider's result or why it was not sent; `failover` is the
    audit event when this failure took the provider out of service."""

    job: Job
    result: SendResult | None = None
    error: ProviderError | NotSent | None = None
    failover: audit.AuditEvent | None = None


def delivery_rows(app: App) -> sa.Select[Any]:
    """Deliveries with their stored message, whether the resident is still in the register
    and the opt-out flag."""
    d, t, m = deliveries, app.residents, run_messages
    return (
        sa.select(
            d.c.id,
            d.c.run_id,
            d.c.resident_id,
            d.c.channel,
            d.c.status,
            d.c.recipient,
            d.c.attempts,
            d.c.provider,
            d.c.claimed_by,
            d.c.created_at,
            d.c.updated_at,
            d.c.message_id,
            t.c.resident_id.label("r_resident_id"),
            m.c.recipient_name,
            m.c.township,
            m.c.village,
            m.c.subject,
            m.c.body,
            m.c.html,
            m.c.segments,
            m.c.sha256,
            m.c.templates,
            m.c.verify_code,
            m.c.postcode,
            sa.exists().where(opt_outs.c.phone == d.c.recipient).label("opted_out"),
        )
        .join(t, t.c.resident_id == d.c.resident_id, isouter=True)
        .join(m, m.c.id == d.c.message_id, isouter=True)
    )


def stored_message(row: Any, snapshot: RunSnapshot) -> OutboundMessage:
    """The message stored for a delivery row (of delivery_rows), as a provider takes it."""
    return OutboundMessage(
        delivery_id=row.id,
        run_id=row.run_id,
        channel=CHANNELS[row.channel],
        resident_id=row.resident_id,
        recipient=row.recipient,
        recipient_name=row.recipient_name or "",
        body=row.body,
        subject=row.subject,
        html=row.html,
        segments=row.segments,
        meta={
            "township": row.township or "",
            "village": row.village or "",
            "title": snapshot.item.title,
            "department": snapshot.item.department,
            "document_no": snapshot.item.document_no,
            "on_date": snapshot.on.isoformat() if snapshot.on else "",
            "postcode": row.postcode or "",
            "verify_code": row.verify_code or "",
        },
        templates=from_json(row.templates),
    )


class Snapshots:
    """The runs' snapshots, parsed once per dispatcher (a run's snapshot never changes)."""

    def __init__(self) -> None:
        self._parsed: dict[int, RunSnapshot] = {}

    def of(self, run_id: int, raw: Any) -> RunSnapshot:
        snap = self._parsed.get(run_id)
        if snap is None:
            snap = self._parsed[run_id] = RunSnapshot.from_json(raw)
        return snap

    def load(self, conn: sa.Connection, run_ids: set[int]) -> None:
        """Parse the snapshots of these runs not seen yet."""
        missing = run_ids - set(self._parsed)
        if missing:
            for r in conn.execute(sa.select(runs.c.id, runs.c.snapshot).where(runs.c.id.in_(missing))):
                self.of(r.id, r.snapshot)

    def __getitem__(self, run_id: int) -> RunSnapshot:
        return self._parsed[run_id]
