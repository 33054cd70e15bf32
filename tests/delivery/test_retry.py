"""Sending failed deliveries again (`runs retry`): only rows without a fallback, audited, the run reopened."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier import runs
from notifier.app import App
from notifier.delivery.retry import retry_failed
from notifier.errors import StateError
from notifier.residents.importer import import_residents
from tests.support.campaign import ON, approve_all, audit_rows, by_resident, rule, send, write_roster
from tests.support.smtp_server import SmtpServer

ONLY_EMAIL = ["R01", "赵一", "", "zhao1@example.com", "", "城关镇", "东村", "农村", "2", ""]


def test_failed_deliveries_are_sent_again_once_the_cause_is_gone(
    papp: App, smtp: SmtpServer, tmp_path: Path
) -> None:
    import_residents(papp, write_roster(tmp_path / "more.csv", [ONLY_EMAIL]))
    smtp.refuse |= {"zhao1@example.com", "wang2@example.com"}  # 550: permanent
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    with pytest.raises(StateError, match="only an approved or completed run"):
        retry_failed(papp, _cancelled(papp), "x")
    send(papp, run_id)
    d = by_resident(papp, run_id)
    assert d["R01"].status == "failed"
    assert runs.show_run(papp, run_id)["status"] == "completed"
    wang2 = [r for r in runs.run_deliveries(papp, run_id)["deliveries"] if r["resident"] == "F02"]
    assert [(r["channel"], r["status"]) for r in wang2] == [("email", "failed"), ("letter", "sent")]

    smtp.refuse.clear()
    out = retry_failed(papp, run_id, "account:7:li")
    # F02's failed e-mail already led to a letter: sending it again would be a second notice.
    assert out["retried"] == 1 and out["by_channel"] == {"email": 1} and out["run_status"] == "approved"
    assert by_resident(papp, run_id)["R01"].status == "pending"
    assert [p["to"] for s, p in audit_rows(papp, "delivery.status") if p.get("retried")] == ["pending"]
    assert [p["reason"] for _, p in audit_rows(papp, "run.reopened")][-1] == "failed deliveries sent again"

    send(papp, run_id)
    assert by_resident(papp, run_id)["R01"].status == "sent"
    assert runs.show_run(papp, run_id)["status"] == "completed"
    assert sum("zhao1@example.com" in m.recipients for m in smtp.received) == 1
    assert retry_failed(papp, run_id, "account:7:li")["retried"] == 0  # nothing failed any more


def _cancelled(app: App) -> int:
    run_id = runs.create_run(app, rule(app), ON, "clerk2").run
    runs.cancel_run(app, run_id, "clerk2")
    return run_id
