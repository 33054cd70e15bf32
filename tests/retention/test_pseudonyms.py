"""Audit pseudonyms (issue 16, item 1): events about a phone number carry its keyed hash and masked
form, never the number; the key comes from `[audit] pseudonym_key` (env:), else from the database;
`audit pseudonym` finds the subject to search for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.audit.pseudonyms import phone_subject
from notifier.optouts import add_opt_out, remove_opt_out
from notifier.storage.schema import audit_events, audit_keys
from tests.support.cli import cli

PHONE = "+8613912345678"


def _events(app: App) -> list[tuple[str, str]]:
    with app.engine.connect() as conn:
        return [
            (s, p)
            for s, p in conn.execute(
                sa.select(audit_events.c.subject, audit_events.c.payload)
                .where(audit_events.c.action.like("optout.%"))
                .order_by(audit_events.c.seq)
            )
        ]


def test_opt_out_events_name_the_number_by_its_keyed_hash(
    app: App, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    add_opt_out(app, PHONE, source="sms reply 'TD'", actor="twilio")
    add_opt_out(app, PHONE, source="sms reply 'TD'", actor="twilio")
    remove_opt_out(app, PHONE, actor="clerk", reason="asked by phone")
    events = _events(app)
    assert len(events) == 3 and len({s for s, _ in events}) == 1  # one number, one pseudonym
    subject = events[0][0]
    assert subject.startswith("phone:139****5678#") and all("13912345678" not in s + p for s, p in events)
    assert json.loads(events[0][1])["phone"] == "139****5678"
    with app.engine.connect() as conn:
        key = bytes.fromhex(conn.execute(sa.select(audit_keys.c.value)).scalar_one())  # the database's own
    assert subject == phone_subject(key, PHONE) != phone_subject(b"another key", PHONE)
    code, out, _ = cli(capsys, project, "audit", "pseudonym", "139 1234 5678", "--json")
    assert code == 0 and out == {"phone": "139****5678", "subject": subject}


def test_a_key_from_the_environment_is_used_and_none_is_stored(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_PSEUDONYM_KEY", "a county's own pseudonym key")
    add_opt_out(app, PHONE, source="sms reply 'TD'", actor="twilio")
    [(subject, _)] = _events(app)
    assert subject == phone_subject(b"a county's own pseudonym key", PHONE)
    with app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_keys)).scalar_one() == 0


@pytest.mark.parametrize(
    "value, scrubbed",
    [
        ("+8613912345678", "+86139****5678"),
        ("wang2@example.com 13912345678", "w***@example.com 139****5678"),
        ("110101199001011234", "110101********1234"),
        ("SM0a13912345678b0000000000000000", "SM0a13912345678b0000000000000000"),  # a message id
        ("a13912345678" + "0" * 52, "a13912345678" + "0" * 52),  # a sha256
        ({"raw": ["13912345678", 5]}, {"raw": ["139****5678", 5]}),
    ],
)
def test_scrub_masks_personal_data_and_keeps_ids(value: object, scrubbed: object) -> None:
    from notifier.audit.pseudonyms import scrub

    assert scrub(value) == scrubbed
