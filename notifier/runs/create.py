"""Run creation: freeze the audience (one delivery row per resident x channel), render and
store every message, and snapshot what will be sent (RunSnapshot).

Later edits to files or re-imports of the register never change an approved run. A notice
reaches a resident at most once per channel across runs: `notice_key` is the rule id (and the
date, for recurring notices), unique per resident and channel in the deliveries table.

`notify: household | contact` (households.py) turns matched residents into fewer notices, each
stating the sum of its residents' amounts (stored on run_messages.amount). And whatever the
rule says, one recipient never gets the same text twice in a run: a member whose message is
identical to one already going to the same phone, e-mail or address is skipped, with the resident
who gets it as the reason.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
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
from ..households import Notice, notices
from ..messages import RenderedRun, frozen_as_built, render_messages
from ..rules.model import Rule
from ..status import DeliveryStatus, RunStatus
from ..storage.bulk import executemany
from ..storage.schema import deliveries, run_messages, runs
from .changes import ChangeSet, classify, store_eligible
from .snapshot import PublicationWindow, RunSnapshot


def notice_key(rule: Rule, on: date) -> str:
    """Recurring and change notices are new notices on each date; a one-time notice is one."""
    dated = "cron" in rule.schedule or rule.audience == "changes"
    return f"{rule.id}@{on.isoformat()}" if dated else rule.id


@dataclass
class RunCreated:
    run: int
    status: str
    audience: int
    review: int
    skipped: int
    version: str
    changes: dict[str, int | None] | None = None  # `audience: changes`: notices by kind, baseline run
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
            **({"changes": self.changes} if self.changes is not None else {}),
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
    with frozen_as_built() as freeze:
        return _create(app, rule, on, by, freeze)


def _create(app: App, rule: Rule, on: date, by: str, freeze: Callable[[], None]) -> RunCreated:
    """create_run past its checks; `freeze` leaves what was built so far out of the cyclic
    collector's passes (messages.frozen_as_built)."""
    aud = evaluate(app, rule, on)
    freeze()  # the audience: see frozen_as_built
    sent = notices(app, aud)
    members = [n.member for n in sent]
    key = notice_key(rule, on)
    changes = classify(app, rule, on, aud, sent) if rule.audience == "changes" else None
    if changes:
        members = changes.all_members()
    rendered = _render(app, rule, on, members, changes, key, {n.resident_id: n.amount for n in sent})
    freeze()  # the messages
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
                audience=len(members),
                review=aud.counts["review"],
                created_by=by,
                created_at=now,
            )
            .returning(runs.c.id)
        ).scalar_one()
        rows = _delivery_rows(run_id, members, key, _notified(conn, key), now, _identical(rendered.rows))
        freeze()  # the deliveries
        if changes:
            kinds = changes.kind_of()
            for r in rows:
                r["change_kind"] = kinds[r["resident_id"]]
            store_eligible(conn, run_id, changes.eligible)
        ids = _message_ids(conn, len(rendered.rows))
        if ids is not None:  # each delivery stored pointing at its message: no UPDATE after
            by_pair = {}
            for m, message_id in zip(rendered.rows, ids, strict=True):
                m["id"], m["run_id"] = message_id, run_id
                by_pair[(m["resident_id"], m["channel"])] = message_id
            for r in rows:
                r["message_id"] = by_pair.get((r["resident_id"], r["channel"]))
            executemany(conn, run_messages.insert(), rendered.rows)
            executemany(conn, deliveries.insert(), rows)
        else:
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
            by_channel=_by_channel(members),
            notify=rule.notify,
            residents=sum(len(n.covers) for n in sent),
            amount_fen=_amount_total(sent) if rule.amount is not None else None,
            params=dict(snapshot.params),
            deliveries_sha256=_digest([f"{r['resident_id']}\t{r['channel']}\t{r['status']}" for r in rows]),
            messages=len(rendered.rows),
            messages_sha256=_digest(
                [f"{r['resident_id']}\t{r['channel']}\t{r['sha256']}" for r in rendered.rows]
            ),
            **({"changes": changes.counts()} if changes else {}),
        )
    return RunCreated(
        run_id,
        RunStatus.AWAITING_APPROVAL,
        len(rows),
        aud.counts["review"],
        skipped,
        rule.version,
        changes.counts() if changes else None,
        rule.id,
    )


def _render(
    app: App,
    rule: Rule,
    on: date,
    members: list[Member],
    changes: ChangeSet | None,
    key: str,
    amounts: dict[str, int | None],
) -> RenderedRun:
    """Every member's messages; a change run renders each kind with that kind's templates."""
    if changes is None:
        rendered = render_messages(app, rule, on, members, key, amounts)
        rendered.raise_for_failures(rule)
        return rendered
    out = RenderedRun()
    for kind, of_kind in changes.members.items():
        view = rule.for_change(kind)
        part = render_messages(app, view, on, of_kind, key, amounts)
        part.raise_for_failures(view)
        out.rows += part.rows
    return out


def _notified(conn: sa.Connection, key: str) -> dict[str, int]:
    """Residents already given this notice: resident id -> the run that did."""
    d = deliveries
    return {
        r.resident_id: r.run_id
        for r in conn.execute(sa.select(d.c.resident_id, d.c.run_id).where(d.c.notice_key == key))
    }


def _by_channel(members: list[Member]) -> dict[str, int]:
    c = Counter(m.channel.value if m.channel else "none" for m in members)
    return {k: c.get(k, 0) for k in ("sms", "email", "letter", "none")}


def _amount_total(sent: list[Notice]) -> int:
    return sum(n.amount or 0 for n in sent)


def _identical(messages: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(resident, channel) -> the resident already getting the same text at the same recipient:
    of those sharing channel, recipient and text, the first by resident id (as text) gets it."""
    first: dict[tuple[str, str, str], str] = {}
    for m in messages:
        same, rid = (m["channel"], m["recipient"], m["sha256"]), str(m["resident_id"])
        known = first.get(same)
        if known is None or rid < known:
            first[same] = rid
    out: dict[tuple[str, str], str] = {}
    for m in messages:
        got = first[(m["channel"], m["recipient"], m["sha256"])]
        if got != str(m["resident_id"]):
            out[(m["resident_id"], m["channel"])] = got
    return out


def _delivery_rows(
    run_id: int,
    members: list[Member],
    key: str,
    notified: dict[str, int],
    now: datetime,
    identical: dict[tuple[str, str], str],
) -> list[dict[str, Any]]:
    """One row per member: `pending` on its channel, or `skipped` (notified before, no contact,
    the same text already going to the same recipient)."""
    rows = []
    reason: str | None
    k: str | None
    for m in members:
        status, reason, k = DeliveryStatus.PENDING, None, key
        same = identical.get((m.resident_id, m.channel.value)) if m.channel else None
        if m.resident_id in notified:
            status, reason, k = (
                DeliveryStatus.SKIPPED,
                f"already notified in run {notified[m.resident_id]}",
                None,
            )
        elif m.channel is None:
            status, reason, k = DeliveryStatus.SKIPPED, m.reason, None
        elif same is not None:
            status, reason, k = (
                DeliveryStatus.SKIPPED,
                f"same notice to the same recipient as resident {same}",
                None,
            )
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


def _message_ids(conn: sa.Connection, n: int) -> Sequence[int] | None:
    """The ids the database gives n messages inserted in order now, taken up front so that each
    delivery row is stored with its message_id (None: a database this does not know; the
    deliveries are then linked by _link_messages). SQLite gives a rowid table's new row the
    largest id + 1 (the table has no AUTOINCREMENT) and the run's transaction already holds the
    write lock; PostgreSQL's serial takes them from its sequence, as the inserts would."""
    if n == 0:
        return []
    if conn.dialect.name == "sqlite":
        first = (conn.execute(sa.select(sa.func.max(run_messages.c.id))).scalar() or 0) + 1
        return range(first, first + n)
    if conn.dialect.name == "postgresql":
        taken = conn.execute(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence('run_messages', 'id')) FROM generate_series(1, :n)"
            ),
            {"n": n},
        )
        return sorted(taken.scalars())
    return None


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
