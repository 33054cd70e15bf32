"""Record: turn a batch's outcomes into status changes (sending -> sent / pending / unknown /
failed), audited, in one transaction; then the channel fallbacks of the deliveries that failed
and the completion of runs with nothing left open.

Only rows still `sending` and claimed by this worker change. A row a receipt moved on while
the provider's answer was on its way (Twilio can call back before it answers) keeps the
status the receipt gave it; the answer's facts (SID, segments, time) are kept where still
empty, and the audit log records the answer as `delivery.send_result`, not as a status change
that did not happen.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audit import log as audit
from ..config import SendingSettings
from ..errors import NotSent
from ..masking import mask_text
from ..status import DeliveryStatus as S
from ..status import RunStatus
from ..storage.schema import deliveries, runs
from .complete import complete_runs
from .decide import Decision, Uniform, decide
from .fallback import fall_back
from .jobs import Outcome
from .transitions import Move, move_each, skip_pending
from .workers import Worker

_STILL_OPEN = (S.PENDING, S.SENDING, S.UNKNOWN)
_DONE = {s: Decision(s) for s in (S.SENT, S.DELIVERED)}
"""The decision for a send the provider accepted: the status its answer gives."""


@dataclass(frozen=True)
class Recorded:
    """What a batch added to the report; `unknown` are the deliveries now awaiting
    reconciliation (their answer was lost)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    unknown: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Step:
    """One outcome as a move: the row's new status and columns, and its audit detail."""

    outcome: Outcome
    decision: Decision
    move: Move


class Recorder:
    def __init__(
        self,
        app: App,
        worker: Worker,
        settings: SendingSettings,
        *,
        actor: str,
        rand: Uniform = random.uniform,
    ) -> None:
        self.app, self.worker, self.settings, self.actor, self.rand = app, worker, settings, actor, rand

    def record(self, outcomes: Sequence[Outcome], now: datetime) -> Recorded:
        steps = [self._step(o, now) for o in outcomes]
        with self.app.engine.begin() as conn:
            applied, events = move_each(
                conn,
                [s.move for s in steps],
                from_=S.SENDING,
                actor=self.actor,
                now=now,
                where=[deliveries.c.claimed_by == self.worker.id],
                audit_now=False,
            )
            moved = {m.id for m in applied}
            late = [s for s in steps if s.move.id not in moved]
            failovers = [o.failover for o in outcomes if o.failover is not None]
            audit.append(conn, events + self._late_answers(conn, late) + failovers, now=now)
            self._skip_orphans(conn, [m.id for m in applied if m.to is S.PENDING], now)
            failed = [s.move.id for s in steps if s.decision.fall_back and s.move.id in moved]
            fall_back(conn, self.app, failed, now, self.actor)
            complete_runs(conn, {o.job.run_id for o in outcomes}, now, self.actor)
        return _tally(steps)

    def _skip_orphans(self, conn: sa.Connection, ids: list[int], now: datetime) -> None:
        """Rows put back to `pending` (to retry, or never handed over) in a run cancelled while
        they were `sending`: the cancel skipped the run's pending rows, not these, and no claim
        takes a cancelled run's rows. Skipped too, their notice key released, or a re-created
        run would find these residents already notified."""
        if ids:
            cancelled = sa.select(runs.c.id).where(runs.c.status != RunStatus.APPROVED)
            skip_pending(
                conn,
                [deliveries.c.run_id.in_(cancelled)],
                ids=ids,
                actor=self.actor,
                now=now,
                reason="run cancelled",
                why="the run was cancelled while this notice was being sent",
            )

    def _step(self, o: Outcome, now: datetime) -> _Step:
        job, result = o.job, o.result
        payload: dict[str, Any] = {"provider": job.provider, "sha256": job.sha256}
        if result is not None:
            decision = _DONE.get(result.status) or Decision(result.status)
            values: dict[str, Any] = {
                "provider": job.provider,
                "provider_message_id": result.provider_message_id,
                "segments": job.message.segments,
                "error_code": None,
                "reason": None,
                "sent_at": now,
                "next_attempt_at": None,
                "attempts": job.attempt,
            }
            payload["message_id"] = result.provider_message_id
        elif o.error is not None:
            error = o.error
            decision = decide(error, job.attempt, job.created_at, now, self.settings, self.rand)
            code, retryable = error.code, isinstance(error, NotSent) or error.retryable
            values = {
                "provider": job.provider,
                "provider_message_id": None,
                "segments": None,
                "error_code": code,
                "reason": error.message,
                "sent_at": None,
                "next_attempt_at": decision.retry_at,
                "attempts": job.attempt if decision.attempt_used else job.attempt - 1,
            }
            # a provider's refusal may quote the number: the audit keeps it masked (audit/pseudonyms.py)
            payload |= {"code": code, "reason": mask_text(error.message), "retryable": retryable}
            if decision.retry_at is not None:
                payload["retry_at"] = decision.retry_at.isoformat()
        else:
            raise ValueError(f"delivery {job.id}: an outcome needs a result or an error")
        return _Step(o, decision, Move(job.id, decision.status, values, payload))

    def _late_answers(self, conn: sa.Connection, late: list[_Step]) -> list[audit.AuditEvent]:
        """Rows that moved on before their answer was recorded: keep the answer's facts where
        still empty (only in a row a receipt settled, never one claimed again) and audit the
        answer as what it is. A message never handed over (NotSent: given back, lease lapsed)
        has no answer: its row is another worker's now, and nothing happened to audit."""
        late = [s for s in late if not isinstance(s.outcome.error, NotSent)]
        d = deliveries
        for s in late:
            v = s.move.values
            if v["provider_message_id"]:
                conn.execute(
                    d.update()
                    .where(d.c.id == s.move.id, d.c.status.not_in(_STILL_OPEN))
                    .values(
                        provider_message_id=sa.func.coalesce(
                            d.c.provider_message_id, v["provider_message_id"]
                        ),
                        segments=sa.func.coalesce(d.c.segments, v["segments"]),
                        sent_at=sa.func.coalesce(d.c.sent_at, v["sent_at"]),
                        provider=v["provider"],
                    )
                )
        return [
            audit.AuditEvent(
                self.actor,
                "delivery.send_result",
                f"delivery:{s.move.id}",
                {"run": s.outcome.job.run_id, **s.move.payload}
                | {
                    "answer": s.decision.status.value,
                    "note": "the row had moved on (a receipt, or another worker)",
                },
            )
            for s in late
        ]


def _tally(steps: list[_Step]) -> Recorded:
    sent = failed = retried = 0
    by_channel: dict[str, int] = {}
    unknown = []
    for s in steps:
        status, job = s.decision.status, s.outcome.job
        if s.outcome.result is not None:
            sent += 1
            by_channel[job.channel.value] = by_channel.get(job.channel.value, 0) + 1
        elif status is S.FAILED:
            failed += 1
        elif status is S.UNKNOWN:
            unknown.append(job.id)
        elif s.decision.retry_at is not None:
            retried += 1
    return Recorded(sent, failed, retried, by_channel, tuple(unknown))
