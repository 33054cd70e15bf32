"""Audit log benchmark: appending and verifying the hash chain, each against a bare floor measured
in the same run on the same machine (SQLite).

  append   notifier.audit.log.append in batches of --batch events per transaction, as the
           dispatcher records status changes
    floor  plain sqlite3 executemany of the same rows (hashes precomputed), one commit per batch
  verify   notifier.audit.log.verify over --events events (table built directly: the chain is
           computed in Python and inserted with executemany; every event has its own timestamp)
    floor  one plain sqlite3 cursor over the same rows, recomputing each hash with hashlib
           exactly as event_hash does and checking it and the link to the previous event

Ratios are time(ours) / time(floor): 1.0 means as fast as the bare loop.
Aim for verify: 1,000,000 events in <= 15 s and a ratio <= 2.

    python bench/audit.py [--events 1000000] [--append 100000] [--batch 500] [--keep DIR] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from notifier.app import App  # noqa: E402
from notifier.audit import log as audit  # noqa: E402

START = datetime(2026, 4, 1, 4, 0, tzinfo=timezone.utc)
COLUMNS = "seq, ts, actor, action, subject, payload, prev_hash, hash"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def sample_event(i: int) -> audit.AuditEvent:
    return audit.AuditEvent(
        "dispatcher",
        "delivery.status",
        f"delivery:{i}",
        {
            "run": 1 + i // 100_000,
            "channel": "sms",
            "provider": "outbox",
            "from": "sending",
            "to": "sent",
            "provider_message_id": f"outbox-{i:09d}",
            "segments": 1,
        },
    )


def open_project(folder: Path) -> App:
    (folder / "rules").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "rules" / "fields.yaml", folder / "rules")
    (folder / "notifier.toml").write_text("[quiet_hours]\nenabled = false\n", encoding="utf-8")
    return App.open(folder / "notifier.toml")


def bench_append(work: Path, n: int, batch: int) -> dict[str, float]:
    app = open_project(work / "append")
    events = [sample_event(i) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        with app.engine.begin() as conn:
            audit.append(conn, events[i : i + batch])
    ours = time.perf_counter() - t0
    with audit.snapshot(app.engine) as conn:
        assert audit.verify(conn).ok
    db = Path(app.engine.url.database or "")
    app.close()
    rows = sqlite3.connect(db).execute(f"SELECT {COLUMNS} FROM audit_events ORDER BY seq").fetchall()
    assert len(rows) == n

    conn = sqlite3.connect(work / "append-floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, ts DATETIME NOT NULL, "
        "actor VARCHAR(128) NOT NULL, "
        "action VARCHAR(64) NOT NULL, subject VARCHAR(200) NOT NULL, payload TEXT NOT NULL, "
        "prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL)"
    )
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[i : i + batch])
        conn.execute("COMMIT")
    floor = time.perf_counter() - t0
    conn.close()
    return {
        "events": n,
        "batch": batch,
        "seconds": ours,
        "per_second": rate(n, ours),
        "floor_seconds": floor,
        "floor_per_second": rate(n, floor),
        "ratio_to_floor": ours / floor,
    }


def build_log(app: App, n: int) -> None:
    """n chained events straight into the table (each with its own timestamp), and the head."""
    db = Path(app.engine.url.database or "")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    prev, step, chunk = audit.GENESIS, timedelta(milliseconds=7), 100_000
    for lo in range(0, n, chunk):
        rows = []
        for i in range(lo, min(n, lo + chunk)):
            ev, seq, ts = sample_event(i), i + 1, START + step * i
            payload = audit.canonical_json(ev.payload)
            h = audit.event_hash(prev, seq, ts, ev.actor, ev.action, ev.subject, payload)
            # SQLAlchemy's storage format for DateTime on SQLite
            rows.append(
                (seq, ts.strftime("%Y-%m-%d %H:%M:%S.%f"), ev.actor, ev.action, ev.subject, payload, prev, h)
            )
            prev = h
        conn.executemany("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (n, prev))
    conn.execute("COMMIT")
    conn.close()


def floor_verify(db: Path) -> tuple[float, int]:
    """The bare loop: one cursor, the same hash as event_hash, the same two checks per event."""
    enc = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode
    sha = hashlib.sha256
    conn = sqlite3.connect(db)
    t0 = time.perf_counter()
    prev, count = audit.GENESIS, 0
    for seq, ts, actor, action, subject, payload, prev_hash, h in conn.execute(
        f"SELECT {COLUMNS} FROM audit_events ORDER BY seq"
    ):
        text = f"{ts[:10]}T{ts[11:]}Z"
        if (
            prev_hash != prev
            or sha(enc([seq, text, actor, action, subject, payload, prev_hash]).encode()).hexdigest() != h
        ):
            raise AssertionError(f"floor: event {seq} does not verify")
        prev, count = h, count + 1
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed, count


def bench_verify(work: Path, n: int) -> dict[str, float]:
    app = open_project(work / "verify")
    t0 = time.perf_counter()
    build_log(app, n)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with audit.snapshot(app.engine) as conn:
        r = audit.verify(conn)
    ours = time.perf_counter() - t0
    assert r.ok and r.events == n, r
    db = Path(app.engine.url.database or "")
    app.close()
    floor, count = floor_verify(db)
    assert count == n
    return {
        "events": n,
        "build_seconds": build_s,
        "seconds": ours,
        "per_second": rate(n, ours),
        "floor_seconds": floor,
        "floor_per_second": rate(n, floor),
        "ratio_to_floor": ours / floor,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events to verify (default 1,000,000)")
    ap.add_argument("--append", type=int, default=100_000, help="events to append (default 100,000)")
    ap.add_argument("--batch", type=int, default=500, help="events per append transaction (default 500)")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="notifier-bench-audit-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        results = {
            "append": bench_append(work, args.append, args.batch),
            "verify": bench_verify(work, args.events),
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
        return
    a, v = results["append"], results["verify"]
    print(
        f"append {a['events']:>9,} in {a['seconds']:6.2f} s = {a['per_second']:>9,.0f}/s   "
        f"floor {a['floor_seconds']:6.2f} s = {a['floor_per_second']:>9,.0f}/s   "
        f"ratio {a['ratio_to_floor']:.2f}   "
        f"(batches of {a['batch']})"
    )
    print(
        f"verify {v['events']:>9,} in {v['seconds']:6.2f} s = {v['per_second']:>9,.0f}/s   "
        f"floor {v['floor_seconds']:6.2f} s = {v['floor_per_second']:>9,.0f}/s   "
        f"ratio {v['ratio_to_floor']:.2f}   "
        f"(table built in {v['build_seconds']:.1f} s)"
    )
    if v["events"]:
        at_million = v["seconds"] * 1_000_000 / v["events"]
        print(
            f"verify aim: 1,000,000 events <= 15 s (this run: {at_million:.1f} s per million), "
            f"ratio <= 2 (this run: {v['ratio_to_floor']:.2f})"
        )


if __name__ == "__main__":
    main()
