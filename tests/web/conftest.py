"""A real `notifier serve` process that has sent an approved run: the start of the tests of what
a serving process does next (receipts, stopping)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.campaign import approved_run, sms_project, statuses
from tests.support.project import free_port
from tests.support.twilio_server import TwilioServer
from tests.support.webserver import start_serve, wait_for


@pytest.fixture
def serving(
    tmp_path: Path, sqlite_url: str, tserver: TwilioServer
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """(config, process) once the process has sent all ten SMS; killed at the end if still running."""
    port = free_port()
    cfg = sms_project(tmp_path, sqlite_url, tserver, port)
    approved_run(cfg)
    proc = start_serve(cfg, port)
    try:
        wait_for(lambda: statuses(cfg).get("sent") == 10, 30, "the run to be sent")
        yield cfg, proc
    finally:
        if proc.poll() is None:
            proc.kill()
