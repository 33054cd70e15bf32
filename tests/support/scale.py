"""Several `notifier send` processes on one database sending one SMS campaign through the local
Twilio-compatible server, which records when each request arrived: how a provider counts its
rate limit. Used by tests/delivery/test_scale.py (a few hundred messages) and bench/scale.py
(20,000)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries

from .campaign import ON, approve_all, open_window, rule, write_roster
from .project import write_config
from .twilio_provider import sms_config
from .twilio_server import TwilioServer


@dataclass
class Sent:
    workers: int
    seconds: float  # from the first worker's start to the last one's end
    arrivals: list[float]  # time.time() of every create the server received, sorted
    statuses: Counter[str]  # final status of every delivery
    accepted: Counter[str]  # messages the server accepted, by recipient
    results: list[subprocess.CompletedProcess[str]]
    all_sending_from: float = 0.0  # arrival time of the first request of the last worker to start

    @property
    def rate(self) -> float:
        """Requests per second between the first arrival and the last."""
        return self.rate_until(len(self.arrivals))

    def rate_until(self, n: int, since: float = 0.0) -> float:
        """Requests per second between the first arrival (after `since`) and the n-th: before
        the tail, where fewer messages are left than the workers could send at the rate and some
        go idle."""
        a = [t for t in self.arrivals[:n] if t >= since]
        return (len(a) - 1) / (a[-1] - a[0]) if len(a) > 1 and a[-1] > a[0] else 0.0

    @property
    def throughput(self) -> float:
        """Messages sent per second of the whole run, worker start-up included."""
        return self.statuses.get("sent", 0) / self.seconds if self.seconds else 0.0

    def busiest_second(self) -> int:
        """The most requests in one second of the clock (how a provider's per-second limit counts)."""
        return max(Counter(math.floor(t) for t in self.arrivals).values(), default=0)

    def busiest_window(self) -> int:
        """The most requests in any sliding one-second window."""
        a, best, lo = self.arrivals, 0, 0
        for hi, t in enumerate(a):
            while a[lo] <= t - 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best


def sms_campaign(
    folder: Path,
    db_url: str,
    server: TwilioServer,
    residents: int,
    *,
    rate: float,
    concurrency: int = 8,
    batch_size: int = 20,
) -> Path:
    """A project sending one approved run of `residents` SMS through `server` at `rate`."""
    return campaign(
        folder,
        db_url,
        residents,
        sms_config(
            server,
            f"batch_size = {batch_size}\nstale_seconds = 60\nsettle_seconds = 0.5",
            f"rate_per_second = {rate}\nconcurrency = {concurrency}\ntimeout = 30",
        ),
    )


def campaign(folder: Path, db_url: str, residents: int, config: str) -> Path:
    """A project (with `config` added) and one approved run of `residents` SMS."""
    cfg = write_config(folder, db_url, config)
    open_window(folder)
    phones = [f"139{i:08d}" for i in range(residents)]
    roster = [[f"S{i:06d}", f"钱{i}", p, "", "", "", "", "农村", "2", ""] for i, p in enumerate(phones)]
    app = App.open(cfg)
    try:
        import_residents(app, write_roster(folder / "p.csv", roster))
        approve_all(app, runs.create_run(app, rule(app), ON, "clerk").run)
    finally:
        app.close()
    return cfg


def send_with_workers(
    cfg: Path,
    server: TwilioServer | None,
    workers: int,
    *,
    stop_after: float | None = None,
    timeout: float = 1800,
) -> Sent:
    """`workers` `notifier send --until-idle` processes started together; waits for all (or,
    with `stop_after`, stops them with SIGTERM that many seconds after the first request
    arrived: each finishes its batch in flight). Without a server (the outbox) there are no
    arrivals."""
    cmd = [sys.executable, "-m", "notifier", "--config", str(cfg), "send", "--until-idle", "--json"]
    before, accepted = (len(server.arrivals), len(server.messages)) if server else (0, 0)
    arrived = len(server.arrived) if server else 0
    started = time.monotonic()
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    if stop_after is not None and server is not None:
        while len(server.arrivals) == before and all(p.poll() is None for p in procs):
            time.sleep(0.01)
        time.sleep(stop_after)
        for p in procs:
            p.terminate()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    seconds = time.monotonic() - started
    app = App.open(cfg)
    try:
        with app.engine.connect() as conn:
            statuses = Counter(conn.execute(sa.select(deliveries.c.status)).scalars())
            worker_of = dict(
                conn.execute(sa.select(deliveries.c.recipient, deliveries.c.claimed_by)).tuples().all()
            )
    finally:
        app.close()
    return Sent(
        workers,
        seconds,
        sorted(server.arrivals[before:]) if server else [],
        statuses,
        Counter(m.to for m in server.messages[accepted:]) if server else Counter(),
        results,
        _all_sending_from(server.arrived[arrived:] if server else [], worker_of),
    )


def _all_sending_from(arrived: list[tuple[float, str]], worker_of: dict[str, str | None]) -> float:
    """When every worker that sent anything had sent its first request."""
    first: dict[str | None, float] = {}
    for t, to in arrived:
        w = worker_of.get(to)
        first[w] = min(first.get(w, t), t)
    return max(first.values(), default=0.0)
