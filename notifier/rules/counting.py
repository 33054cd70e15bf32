"""What `rules preview --all` shows, as aggregates: each rule's match / no_match / review counts
and its matched residents by channel, without a row per resident leaving the database.

One statement per part of the register keeps the residents some rule does not fail (the filter
of `audience.evaluate_many`) and groups them by their reachability: whether SMS, e-mail and
letter could reach them and which channel they prefer (at most 32 groups). Per group it sums,
for each rule, `review + 2^32 x match` (the rule's predicates are evaluated once per resident,
not once per count). A rule's channel counts follow from the groups with `choose_channel`, the
function that picks each member's channel, so they cannot drift from what a run would use.

On SQLite the register is split into parts by rowid, each scanned by a thread with its own
connection: sqlite3 releases the GIL while a statement runs and each statement returns a few
rows, so two parts use two cores. Only with 2 CPUs or more for this process and SPLIT_FROM
residents or more. All parts read one snapshot: their read transactions start while a short
write lock keeps writers out (LOCK_WAIT_MS at most: when a writer holds the lock longer, the
scan runs in one part instead of waiting). A part that fails stops the others and raises its
error in the caller, as the scan in one part would; no thread outlives the call.

On PostgreSQL one statement is scanned by the server's parallel workers (storage/db.py:
scan_settings). For that the rules are compiled with RecordFlags: their related-records
conditions and the opt-out lookup become joined columns instead of correlated EXISTS, whose
SubPlans would make the scan parallel-restricted. (`parts` splits it over connections sharing
one exported snapshot, as on SQLite; the default is one part.)
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from ..app import App
from ..audience import choose_channel
from ..status import Channel
from ..storage.db import scan_settings
from ..storage.schema import opt_outs
from .compile import MATCH, NO_MATCH, REVIEW, CompiledRule, RecordFlags, compile_rule
from .model import Rule

SPLIT_FROM = 20_000  # residents: 2 parts already win at 20,000 (0.10 s against 0.13 s in one)
MAX_PARTS = 4
LOCK_WAIT_MS = 250  # how long the parts wait for the write lock that aligns their snapshots
_MATCH_UNIT = 1 << 32  # a rule's sum is review + match x 2^32: both stay exact below 2^31 rows
_CHANNEL_KEYS = ("sms", "email", "letter", "none")
_PREFERRED = {ch.value: 8 * (i + 1) for i, ch in enumerate(Channel)}  # bits 3-4 of a group
Part = tuple[int, list[tuple[Any, ...]]]  # a part's register size and its grouped sums
Statements = tuple[sa.Select[Any], sa.Select[Any]]


@dataclass(frozen=True)
class RuleCount:
    """One rule over the register: counts as `Audience.counts`, channels as `Audience.by_channel()`."""

    counts: dict[str, int]
    by_channel: dict[str, int]


def reach(t: sa.Table, opted: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[int]:
    """A resident's reachability as a number below 32: 1 SMS possible (a mobile number not on the
    opt-out list), 2 e-mail, 4 postal address, plus 8 x (1 + the preferred channel's index).
    `opted`: whether the phone is on the opt-out list (default: an EXISTS lookup)."""
    if opted is None:
        opted = sa.exists().where(opt_outs.c.phone == t.c.phone)
    filled = [sa.func.coalesce(col, "") != "" for col in (t.c.phone, t.c.email, t.c.address)]
    sms = sa.and_(filled[0], t.c.phone_kind == "mobile", sa.not_(opted))
    bits = [sa.case((sms, 1), else_=0), sa.case((filled[1], 2), else_=0), sa.case((filled[2], 4), else_=0)]
    preferred = sa.case(_PREFERRED, value=t.c.preferred_channel, else_=0)
    return bits[0] + bits[1] + bits[2] + preferred


def channel_of(channels: list[Channel], group: int) -> str:
    """The channel `choose_channel` picks for a resident of the `reach` group, or "none"."""
    preferred = next((name for name, bit in _PREFERRED.items() if group & 24 == bit), None)
    phone, email, address = ("x" if group & bit else None for bit in (1, 2, 4))
    chosen, _, _ = choose_channel(channels, preferred, phone, "mobile", email, address, False)
    return chosen.value if chosen else "none"


def statements(
    t: sa.Table,
    compiled: Sequence[CompiledRule],
    where: Sequence[sa.ColumnElement[bool]],
    flags: RecordFlags | None = None,
) -> Statements:
    """(register size, grouped sums) over the residents `where` selects. `flags`: the rules were
    compiled with these RecordFlags; the records aggregate and the opt-out list are then joined
    (no correlated SubPlan: PostgreSQL can scan in parallel)."""
    source: sa.FromClause = t
    opted = None
    if flags is not None:
        if flags.tests:
            joined = flags.subquery()
            source = source.outerjoin(joined, joined.c.resident_id == t.c.resident_id)
        source = source.outerjoin(
            opt_outs, opt_outs.c.phone == t.c.phone
        )  # phone is its key: one row at most
        opted = opt_outs.c.phone.is_not(None)
    in_care = [t.c.left_at.is_(None), *where]  # a resident who left gets no notice (residents/leaving.py)
    sums = [
        sa.func.sum(sa.case((c.fails, 0), (c.matches, _MATCH_UNIT), else_=1)).label(f"r{i}")
        for i, c in enumerate(compiled)
    ]
    group = reach(t, opted).label("reach")
    kept = sa.or_(*[sa.not_(c.fails) for c in sorted(compiled, key=lambda c: c.costly)])
    grouped = sa.select(group, *sums).select_from(source).where(*in_care, kept).group_by(group)
    return sa.select(sa.func.count()).select_from(t).where(*in_care), grouped


def _part(conn: sa.Connection, pair: Statements) -> Part:
    """One part's register size and sums, read in one transaction (one snapshot)."""
    size, grouped = pair
    total = conn.execute(size).scalar_one()
    return int(total), [tuple(row) for row in conn.execute(grouped)]


def _cuts(conn: sa.Connection, t: sa.Table, parts: int | None) -> tuple[sa.ColumnElement[Any], list[Any]]:
    """The key the register is split by (SQLite's rowid, PostgreSQL's resident_id) and the
    points it is cut at: none (one part) unless there are several CPUs for this process and
    enough residents to pay for the threads, or `parts` says how many."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if conn.dialect.name == "sqlite":
        rowid: sa.ColumnElement[Any] = sa.literal_column(f"{t.name}.rowid")
        low, high = conn.execute(sa.select(sa.func.min(rowid), sa.func.max(rowid)).select_from(t)).one()
        if low is None:  # nobody in the register
            return rowid, []
        size = high - low + 1
        n = _how_many(parts, cpus, size)
        return rowid, sorted({low + size * k // n for k in range(1, n)})
    estimate = conn.execute(  # the planner's row count: no scan; -1 before the first ANALYZE
        sa.text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)"), {"name": t.name}
    ).scalar_one()
    size = (
        int(estimate)
        if estimate >= 0
        else conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    )
    n = _how_many(parts, cpus, size)
    key = t.c.resident_id
    at = [
        conn.execute(sa.select(key).order_by(key).offset(size * k // n).limit(1)).scalar_one_or_none()
        for k in range(1, n)
    ]
    return key, sorted({v for v in at if v is not None})


def _how_many(parts: int | None, cpus: int, size: int) -> int:
    if parts is not None:
        return max(1, parts)
    return 1 if cpus < 2 or size < SPLIT_FROM else min(cpus, MAX_PARTS)


def _ranges(key: sa.ColumnElement[Any], cuts: list[Any]) -> list[list[sa.ColumnElement[bool]]]:
    """Key ranges covering every row, the first and last open-ended (a row added later falls in one)."""
    bounds = [None, *cuts, None]
    return [
        [*([key >= lo] if lo is not None else []), *([key < hi] if hi is not None else [])]
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]


@contextmanager
def _write_lock(app: App) -> Iterator[bool]:
    """Hold SQLite's write lock for a moment (True), or yield False if a writer keeps it longer
    than LOCK_WAIT_MS. Nothing is written: the transaction is rolled back."""
    with app.engine.connect() as holder:
        raw: Any = holder.connection.dbapi_connection
        (wait,) = raw.execute("PRAGMA busy_timeout").fetchone()
        raw.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        try:
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:  # busy: another writer keeps it
                yield False
                return
            try:
                yield True
            finally:
                raw.execute("ROLLBACK")
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(wait)}")


def _run_parts(conns: Sequence[sa.Connection], pairs: Sequence[Statements]) -> list[Part]:
    """Each part in its own thread and connection; the first error stops the others (their
    statements are interrupted or cancelled) and is raised here. Every thread has ended when
    this returns."""
    with ThreadPoolExecutor(max_workers=len(conns), thread_name_prefix="rules-count") as pool:
        futures = [pool.submit(_part, conn, st) for conn, st in zip(conns, pairs, strict=True)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception() is not None), None)
        if failed is not None:  # the others would only be interrupted: stop them now
            for conn, f in zip(conns, futures, strict=True):
                if not f.done():
                    raw: Any = conn.connection.dbapi_connection
                    (raw.interrupt if hasattr(raw, "interrupt") else raw.cancel)()
    if failed is not None:
        failed.result()  # raises the part's own error, not an interrupted part's
    return [f.result() for f in futures]


@contextmanager
def _align(app: App, conns: list[sa.Connection]) -> Iterator[bool]:
    """Start every connection's transaction on the same snapshot (True), or yield False."""
    if app.engine.dialect.name == "postgresql":
        snapshot = conns[0].execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
        for conn in conns[1:]:
            conn.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))  # an id PostgreSQL made
        yield True
        return
    with _write_lock(app) as locked:
        if locked:  # every read transaction starts now, while no writer can commit
            for conn in conns:
                conn.execute(sa.select(sa.func.count()).select_from(sa.table("sqlite_master")))
        yield locked


def _scan(
    app: App, compiled: Sequence[CompiledRule], parts: int | None, flags: RecordFlags | None
) -> list[Part]:
    t = app.residents
    reader = app.reader
    if app.engine.dialect.name == "postgresql":  # one snapshot per transaction, shared by the parts
        reader = reader.execution_options(isolation_level="REPEATABLE READ")
        parts = parts or 1  # the server's parallel workers scan it (storage/db.py: scan_settings)
    with reader.connect() as conn:
        key, cuts = _cuts(conn, t, parts)
    with ExitStack() as stack:
        conns = [stack.enter_context(reader.connect()) for _ in range(len(cuts) + 1)]
        for conn in conns:
            conn.begin()
        aligned = False
        if len(conns) > 1:
            with _align(app, conns) as aligned:  # SQLite's write lock is released at once
                pass
        for conn in conns:  # after the snapshot is imported: PostgreSQL wants that first
            scan_settings(conn)
        if not aligned:
            return [_part(conns[0], statements(t, compiled, [], flags))]
        return _run_parts(conns, [statements(t, compiled, r, flags) for r in _ranges(key, cuts)])


def count_many(
    app: App, rules: Iterable[Rule], on: date, *, parts: int | None = None
) -> dict[str, RuleCount]:
    """Every rule's counts and channels, equal to `evaluate_many`'s counts and `by_channel()`.
    `parts`: how many parts the scan is split into (default: SQLite by CPUs and register size,
    PostgreSQL one statement with parallel workers)."""
    flags = RecordFlags() if app.engine.dialect.name == "postgresql" else None
    compiled = [
        compile_rule(rule, app.dictionary, app.residents, on, flags)
        for rule in {r.id: r for r in rules}.values()
    ]
    if not compiled:
        return {}
    scanned = _scan(app, compiled, parts, flags)
    total = sum(size for size, _ in scanned)
    channels = [dict.fromkeys(_CHANNEL_KEYS, 0) for _ in compiled]
    review = [0] * len(compiled)
    for _, rows in scanned:
        for group, *per_rule in rows:
            for i, (c, value) in enumerate(zip(compiled, per_rule, strict=True)):
                matched, reviewed = divmod(int(value), _MATCH_UNIT)
                review[i] += reviewed
                if matched:
                    channels[i][channel_of(c.rule.channels, int(group))] += matched
    out = {}
    for i, c in enumerate(compiled):
        matched = sum(channels[i].values())
        counts = {MATCH: matched, NO_MATCH: total - matched - review[i], REVIEW: review[i]}
        out[c.rule.id] = RuleCount(counts, channels[i])
    return out
