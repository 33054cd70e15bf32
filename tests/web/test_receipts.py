"""Receipts at a real `notifier serve` process: signed Twilio status callbacks from the Twilio-compatible
server move a delivery sent -> delivered; the same receipt again is recorded as a duplicate; a `sent`
arriving after `delivered` is recorded as late and moves nothing back; a signed callback with a
MessageStatus Twilio does not have is refused with 400 and records nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from notifier.app import App
from tests.support.campaign import PHONES, audit_rows, sid_of, statuses
from tests.support.twilio_server import TwilioServer
from tests.support.webserver import stop_serve


def receipts(cfg: Path) -> list[tuple[str, str, str]]:
    """(provider status, outcome, delivery status after it) of every receipt the serve recorded."""
    app = App.open(cfg)
    try:
        return [(e["provider_status"], e["outcome"], e["to"]) for _, e in audit_rows(app, "delivery.receipt")]
    finally:
        app.close()


def test_receipts_at_a_serving_process_apply_once_and_never_move_backwards(
    serving: tuple[Path, subprocess.Popen[str]], tserver: TwilioServer
) -> None:
    cfg, proc = serving
    sid = sid_of(tserver, PHONES[0])
    assert tserver.send_status_callbacks_sync(sid, ("delivered",)) == [200]
    assert statuses(cfg) == {"sent": 9, "delivered": 1}
    assert tserver.send_status_callbacks_sync(sid, ("delivered",)) == [200]  # Twilio retried it
    assert tserver.send_status_callbacks_sync(sid, ("sent",)) == [200]  # overtaken on the way
    assert statuses(cfg) == {"sent": 9, "delivered": 1}
    assert receipts(cfg) == [
        ("delivered", "applied", "delivered"),
        ("delivered", "duplicate", "delivered"),
        ("sent", "late", "delivered"),
    ]
    other = sid_of(tserver, PHONES[1])
    assert tserver.send_status_callbacks_sync(other, ("teleported",)) == [400]
    assert statuses(cfg) == {"sent": 9, "delivered": 1} and len(receipts(cfg)) == 3
    code, err = stop_serve(proc)
    assert code == 0 and "Traceback" not in err, err
