"""SMS opt-out replies as residents type them, through serve's signed Twilio inbound webhook:
full-width, mixed-case and padded keywords opt out; text that only mentions a keyword does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.audit.pseudonyms import subject_of_phone
from notifier.optouts import is_opt_out
from notifier.storage.schema import opt_outs
from tests.support.campaign import PHONES, audit_rows, sms_project
from tests.support.project import free_port
from tests.support.twilio_provider import SENDER
from tests.support.twilio_server import ACCOUNT_SID, TwilioServer
from tests.support.webserver import WebThread, signed_post

REPLIES = [
    ("ＴＤ", True),
    ("ｔｄ", True),
    ("退订 ", True),
    (" Stop", True),
    ("Ｔｄ\u3000", True),
    ("\u200b退订\u200b", True),
    ("ＳＴＯＰ！", True),
    ("退订。", True),
    ("不要退订", False),
    ("请问补贴何时发放？退订", False),
    ("TDD", False),
]


@pytest.mark.parametrize(("body", "expected"), REPLIES)
def test_keywords_are_compared_normalised(body: str, expected: bool) -> None:
    assert is_opt_out(body) is expected


@pytest.fixture
def web(tmp_path: Path, db_url: str, tserver: TwilioServer) -> Iterator[tuple[App, WebThread]]:
    port = free_port()
    app = App.open(sms_project(tmp_path, db_url, tserver, port))
    try:
        with WebThread(app, port) as w:
            yield app, w
    finally:
        app.close()


def test_full_width_and_mixed_case_replies_opt_out_through_the_webhook(web: tuple[App, WebThread]) -> None:
    app, w = web
    replies = [
        ("ＴＤ", PHONES[0]),
        ("ｔｄ", PHONES[1]),
        ("退订 ", PHONES[2]),
        (" Stop", PHONES[3]),
        ("不要退订", PHONES[4]),
        ("ＴＤ", PHONES[0]),
    ]
    for i, (body, phone) in enumerate(replies):
        msg = {
            "AccountSid": ACCOUNT_SID,
            "MessageSid": f"SM{i:032d}",
            "To": SENDER,
            "From": "+86" + phone,
            "Body": body,
        }
        assert signed_post(w.url + "/twilio/inbound", msg)[0] == 200
    with app.engine.connect() as conn:
        listed = set(conn.execute(sa.select(opt_outs.c.phone)).scalars())
    assert listed == {"+86" + p for p in PHONES[:4]}
    assert [s for s, _ in audit_rows(app, "optout.added")] == [
        subject_of_phone(app.engine, app.config, f"+86{p}") for p in PHONES[:4]
    ]
    assert all(f"{p}" not in s + json.dumps(e) for s, e in audit_rows(app, "optout.added") for p in PHONES)
    assert [e["keyword"] for _, e in audit_rows(app, "optout.repeated")] == [
        "ＴＤ"
    ]  # as received, for auditors
