"""Crash safety (DESIGN §8 invariants 1 and 2): a real `notifier send` process is killed with
SIGKILL at random moments while it sends SMS through the real Twilio client to the local
Twilio-compatible server; after restarts every delivery is final and every resident got
exactly one message."""
from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.storage.schema import deliveries

from .conftest import write_config
from .test_pipeline import HEADER, ON, approve_all, rule
from .twilio_server import ACCOUNT_SID, AUTH_TOKEN, TwilioServer

N = 150


def test_kill_9_during_send_loses_nothing_and_sends_nothing_twice(tmp_path: Path, sqlite_url: str) -> None:
    rng = random.Random(20261121)
    with TwilioServer() as server:
        server.random_faults(15, seed=5)
        cfg = write_config(tmp_path, sqlite_url, f"""
[sending]
retry_base_seconds = 0
max_attempts = 50
batch_size = 20
stale_seconds = 0
[channels.sms]
providers = ["twilio"]
[providers.twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from = "+15005550006"
base_url = "{server.url}"
timeout = 5
""")
        phones = [f"1380000{i:04d}" for i in range(N)]
        with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([HEADER, *[[f"K{i:04d}", f"赵{i}", p, "", "", "", "", "农村", "2", ""]
                                              for i, p in enumerate(phones)]])
        app = App.open(cfg)
        import_residents(app, tmp_path / "p.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        app.close()
        cmd = [sys.executable, "-m", "notifier", "--config", str(cfg), "send", "--json"]
        kills = 0
        for _ in range(12):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.6, 1.6))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
        done = subprocess.run(cmd + ["--until-idle"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert kills >= 3   # the test really interrupted sends
        app = App.open(cfg)
        with app.engine.connect() as conn:
            rows = conn.execute(sa.select(deliveries).where(deliveries.c.run_id == run_id)).all()
        app.close()
        assert len(rows) == N and {r.status for r in rows} == {"sent"}
        assert server.accepted_by_recipient() == {"+86" + p: 1 for p in phones}
        sids = {m.to: m.sid for m in server.messages}
        assert all(r.provider_message_id == sids[r.recipient] for r in rows)
