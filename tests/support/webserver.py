"""The web side for tests: the Starlette app under uvicorn in a thread, a real `notifier serve`
process started and stopped by signal, plain HTTP requests (signed the way Twilio signs them)
and waiting for a condition on the real clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import uvicorn
from twilio.request_validator import RequestValidator

from notifier.app import App
from notifier.web import build_web_app

from .twilio_server import AUTH_TOKEN


def http(
    method: str, url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of one request; 4xx/5xx are answers, not exceptions."""
    body = urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def signed_post(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> tuple[int, str, str]:
    signature = RequestValidator(token).compute_signature(url, params)
    return http("POST", url, params, {"X-Twilio-Signature": signature})


def wait_for(check: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class WebThread:
    """The Starlette app under uvicorn in a thread of its own (the test keeps the main thread)."""

    def __init__(self, app: App, port: int) -> None:
        config = uvicorn.Config(
            build_web_app(app), host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> WebThread:
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "uvicorn to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_serve(cfg: Path, port: int) -> subprocess.Popen[str]:
    """A `notifier serve` process, once it answers /healthz (no TWILIO_* from the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIO_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "notifier", "--config", str(cfg), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def up() -> bool:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            return http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
        except OSError:
            return False

    wait_for(up, 30, "notifier serve to answer /healthz")
    return proc


def stop_serve(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, as a service manager stops it: (exit status, stderr)."""
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err
