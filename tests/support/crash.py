"""A campaign sent by a `notifier send` subprocess that is killed with SIGKILL at random moments,
against a local provider server (Twilio, Aliyun, Tencent) injecting faults: used by
tests/delivery/test_crash.py at a small scale and by bench/crash.py at the scale of issue 4
(5,000 residents, 30 % faults). With `workers` > 1 that many `send` processes share the database
(PostgreSQL): a random one of those already sending is killed, and another takes its place. Also
the pid of a process that is gone, as a killed sender leaves behind."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import audit_events, deliveries, leases

from .campaign import ON, approve_all, rule, write_roster
from .project import write_config
from .twilio_provider import sms_config
from .twilio_server import Fault, TwilioServer


@dataclass
class Outcome:
    phones: list[str]
    statuses: Counter[str]  # final status of every delivery of the run
    accepted: Counter[str]  # messages Twilio accepted, by recipient
    sids_match: bool  # every delivery records the SID Twilio gave its one message
    moves: Counter[tuple[str, str]]  # audited status changes (from, to)
    kills: int
    final: subprocess.CompletedProcess[str]
    seconds: float
    largest_request: int = 1  # numbers in the largest send request the server took
    finals: list[subprocess.CompletedProcess[str]] | None = None  # every final worker's, with workers > 1


def kill_campaign(
    folder: Path,
    db_url: str,
    residents: int,
    *,
    kills: int,
    fault_percent: float,
    read_fault_percent: float,
    seed: int,
    batch_size: int = 20,
    workers: int = 1,
    rate: float | None = None,
) -> Outcome:
    rng = random.Random(seed)
    started = time.monotonic()
    with TwilioServer() as server:
        server.random_faults(
            fault_percent,
            seed=seed + 1,
            faults=(Fault.too_many_requests(), Fault.server_error(), Fault.slow(1.5)),
        )
        server.random_read_faults(read_fault_percent, seed=seed + 2)
        # stale_seconds stays long: rows of a killed `send` are recognised by its vanished process.
        cfg = write_config(
            folder,
            db_url,
            sms_config(
                server,
                f"max_attempts = 50\nbatch_size = {batch_size}\nstale_seconds = 600\nsettle_seconds = 0.5",
                "timeout = 1" + (f"\nrate_per_second = {rate}" if rate else ""),
            ),
        )
        phones = [f"138{i:08d}" for i in range(residents)]
        roster = [[f"K{i:06d}", f"赵{i}", p, "", "", "", "", "农村", "2", ""] for i, p in enumerate(phones)]
        app = App.open(cfg)
        import_residents(app, write_roster(folder / "p.csv", roster))
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        app.close()
        cmd = [sys.executable, "-m", "notifier", "--config", str(cfg), "send", "--json"]
        finals = None
        if workers == 1:
            killed = 0
            for _ in range(kills):
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(rng.uniform(0.6, 1.6))
                if proc.poll() is None:
                    proc.kill()
                    killed += 1
                proc.wait()
            final = subprocess.run(cmd + ["--until-idle"], capture_output=True, text=True, timeout=1800)
        else:
            killed = _kill_workers(cmd, db_url, workers, kills, rng)
            finals = _together(cmd + ["--until-idle"], workers)
            final = next((f for f in finals if f.returncode), finals[-1])
        app = App.open(cfg)
        with app.engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id)).all()
            moves = Counter(
                (e["from"], e["to"])
                for e in map(
                    json.loads,
                    conn.execute(
                        sa.select(audit_events.c.payload).where(audit_events.c.action == "delivery.status")
                    ).scalars(),
                )
            )
        app.close()
        sids = {m.to: m.sid for m in server.messages}
        return Outcome(
            ["+86" + p for p in phones],
            Counter(r.status for r in rows),
            server.accepted_by_recipient(),
            all(r.provider_message_id == sids.get(r.recipient) for r in rows),
            moves,
            killed,
            final,
            time.monotonic() - started,
            finals=finals,
        )


def _kill_workers(cmd: list[str], db_url: str, workers: int, kills: int, rng: random.Random) -> int:
    """`workers` senders at once; every 0.2-0.8 s a random one of those already dispatching (it
    holds its worker lease) is killed and replaced, until `kills` were killed or all are done.
    Returns how many were killed (those still running at the end included)."""
    engine = sa.create_engine(db_url)
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)
    ]
    killed, done = 0, 0
    try:
        while killed < kills and done < workers:
            time.sleep(rng.uniform(0.2, 0.8))
            with engine.connect() as conn:
                holders = " ".join(conn.execute(sa.select(leases.c.holder)).scalars())
            sending = [i for i, p in enumerate(procs) if p.poll() is None and f":{p.pid}:" in holders]
            # ended by itself: nothing left for it to send (exit 3: with rows `unknown` that
            # another worker is settling); only those killed here are replaced
            done = sum(p.poll() is not None for p in procs)
            if sending:
                i = rng.choice(sending)
                procs[i].kill()
                procs[i].wait()
                killed += 1
                procs[i] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                killed += 1
            p.wait()
        engine.dispose()
    return killed


def _together(cmd: list[str], workers: int) -> list[subprocess.CompletedProcess[str]]:
    """`workers` processes of `cmd` started together; their results once all have ended."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=1800)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def kill_aliyun_campaign(
    folder: Path,
    db_url: str,
    residents: int,
    *,
    kills: int,
    fault_percent: float,
    read_fault_percent: float,
    seed: int,
    batch_size: int = 20,
) -> Outcome:
    """The same campaign through the local Aliyun server with the rule's registered template:
    batches of SendBatchSms, faults (throttling, 5xx, answers too late), lookups by
    QuerySendDetails failing now and then. `sids_match`: every delivery records the id of
    the one message Aliyun took for it (OutId:number)."""
    return _kill_templated(
        "aliyun", folder, db_url, residents, kills, fault_percent, read_fault_percent, seed, batch_size
    )


def kill_tencent_campaign(
    folder: Path,
    db_url: str,
    residents: int,
    *,
    kills: int,
    fault_percent: float,
    read_fault_percent: float,
    seed: int,
    batch_size: int = 20,
) -> Outcome:
    """The same campaign through the local Tencent server with the rule's registered template:
    residents in runs of 25 namesakes (identical values, so SendSms carries several numbers),
    faults (RequestLimitExceeded, 502, answers too late), lookups by
    PullSmsSendStatusByPhoneNumber failing now and then. `sids_match`: every delivery records
    the SerialNo of the one message Tencent took for it."""
    return _kill_templated(
        "tencent", folder, db_url, residents, kills, fault_percent, read_fault_percent, seed, batch_size
    )


def _kill_templated(
    kind: str,
    folder: Path,
    db_url: str,
    residents: int,
    kills: int,
    fault_percent: float,
    read_fault_percent: float,
    seed: int,
    batch_size: int,
) -> Outcome:
    from .aliyun_project import aliyun_project
    from .aliyun_server import AliyunServer
    from .aliyun_server import Fault as AliyunFault
    from .tencent_project import tencent_project
    from .tencent_server import Fault as TencentFault
    from .tencent_server import TencentServer

    rng = random.Random(seed)
    started = time.monotonic()
    phones = [f"138{i:08d}" for i in range(residents)]
    sending = f"retry_base_seconds = 0\nmax_attempts = 50\nbatch_size = {batch_size}\n"
    sending += "stale_seconds = 600\nsettle_seconds = 0.5"
    server = AliyunServer() if kind == "aliyun" else TencentServer()
    with server:
        if isinstance(server, AliyunServer):
            faults: tuple[Any, ...] = (
                AliyunFault.throttled(),
                AliyunFault.server_error(),
                AliyunFault.slow(1.5),
            )
            cfg = aliyun_project(
                folder, db_url, server, aliyun={"timeout": 1}, sending=sending, phones=phones
            )
        else:
            faults = (
                TencentFault.error("RequestLimitExceeded"),
                TencentFault.server_error(),
                TencentFault.slow(1.5),
            )
            names = [f"李{i // 25}" for i in range(residents)]
            cfg = tencent_project(
                folder, db_url, server, tencent={"timeout": 1}, sending=sending, phones=phones, names=names
            )
        server.random_faults(fault_percent, seed + 1, faults)
        server.random_read_faults(read_fault_percent, seed=seed + 2)
        app = App.open(cfg)
        import_residents(app, folder / "p.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        app.close()
        cmd = [sys.executable, "-m", "notifier", "--config", str(cfg), "send", "--json"]
        killed = 0
        for _ in range(kills):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.6, 1.6))
            if proc.poll() is None:
                proc.kill()
                killed += 1
            proc.wait()
        final = subprocess.run(cmd + ["--until-idle"], capture_output=True, text=True, timeout=1800)
        app = App.open(cfg)
        with app.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries).where(deliveries.c.run_id == run_id, deliveries.c.channel == "sms")
            ).all()
            moves = Counter(
                (e["from"], e["to"])
                for e in map(
                    json.loads,
                    conn.execute(
                        sa.select(audit_events.c.payload).where(audit_events.c.action == "delivery.status")
                    ).scalars(),
                )
            )
        app.close()
        if isinstance(server, AliyunServer):
            ids = {"+86" + m.phone: f"{m.out_id}:{m.phone}" for m in server.messages}
            accepted = Counter("+86" + p for p in server.accepted_by_number().elements())
            largest = max((n for action, n, _ in server.calls if action.startswith("Send")), default=0)
        else:
            ids = {m.phone: m.serial_no for m in server.messages}
            accepted = server.accepted_by_recipient()
            largest = max((len(c.numbers) for c in server.calls if c.action == "SendSms"), default=0)
        return Outcome(
            ["+86" + p for p in phones],
            Counter(r.status for r in rows),
            accepted,
            all(r.provider_message_id == ids.get(r.recipient) for r in rows),
            moves,
            killed,
            final,
            time.monotonic() - started,
            largest,
        )
