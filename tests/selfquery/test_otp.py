"""/query with `[selfquery] otp = true`: the first step answers every pair alike ("if the details
match, a code was sent"), the code goes by the configured SMS provider (the outbox here) to the
registered mobile, is stored hashed, works once, and fails after too many wrong tries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.selfquery import ACTION
from notifier.storage.schema import query_codes
from tests.selfquery.conftest import IDS, PER_ADDRESS, PERSONAL, ask, client_of, csrf_of
from tests.support.campaign import audit_rows

OUTBOX = Path("outbox") / "run-0" / "00000000.sms.txt"


@pytest.fixture
def otp_app(qcfg: Path) -> Iterator[App]:
    text = qcfg.read_text(encoding="utf-8").replace("otp = false", "otp = true")
    qcfg.write_text(
        text.replace(f"attempts_per_address = {PER_ADDRESS}", "attempts_per_address = 20"), "utf-8"
    )
    a = App.open(qcfg)
    yield a
    a.close()


@pytest.fixture
def otp_web(otp_app: App) -> Iterator[TestClient]:
    with client_of(otp_app) as client:
        yield client


def _token(html: str) -> str:
    m = re.search(r'name="token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _uniform(html: str) -> str:
    return re.sub(r'name="(csrf|token)" value="[^"]+"', r'name="\1" value=""', html)


def _sent_code(app: App) -> str:
    text = (app.config.base_dir / OUTBOX).read_text(encoding="utf-8")
    assert "To: +8613800000001" in text
    m = re.search(r"验证码(\d{6})", text)
    assert m, text
    return m.group(1)


def _enter(client: TestClient, page: str, code: str) -> tuple[int, str]:
    r = client.post("/query", data={"csrf": csrf_of(page), "token": _token(page), "code": code})
    return r.status_code, r.text


def test_a_code_by_sms_then_the_list(otp_web: TestClient, otp_app: App) -> None:
    status, first = ask(otp_web, IDS["F01"], "王一")
    assert status == 200 and 'data-state="code"' in first and "验证码已发送至登记的手机" in first
    assert "138****0001" not in first  # not even masked: an outsider would learn the ID exists
    code = _sent_code(otp_app)
    with otp_app.engine.connect() as conn:
        stored = conn.execute(sa.select(query_codes)).one()
    assert code not in repr(tuple(stored)) and _token(first) not in repr(tuple(stored))  # hashed
    wrong = _enter(otp_web, first, "000000" if code != "000000" else "111111")
    assert wrong[0] == 200 and "验证码不正确或已过期" in wrong[1] and 'data-state="code"' in wrong[1]
    status, listed = _enter(otp_web, wrong[1], code)
    assert status == 200 and 'data-state="list"' in listed and "138****0001" in listed
    assert "2026年耕地地力保护补贴" in listed
    again = _enter(otp_web, wrong[1], code)  # a code works once
    assert "验证码不正确或已过期" in again[1]
    outcomes = [p["outcome"] for _, p in audit_rows(otp_app, ACTION)]
    assert outcomes == ["otp_sent", "otp_wrong", "matched", "otp_wrong"]


def test_the_first_step_looks_the_same_for_any_pair(otp_web: TestClient, otp_app: App) -> None:
    pages = [
        ask(otp_web, IDS["F01"], "王一"),  # matched, has a mobile: a code is sent
        ask(otp_web, IDS["F01"], "王二"),  # wrong name
        ask(otp_web, "110101195003071234", "王一"),  # unknown ID
        ask(otp_web, IDS["F02"], "王二"),  # matched, but no mobile on the register
    ]
    assert len({s for s, _ in pages}) == 1 and len({_uniform(t) for _, t in pages}) == 1
    for _, text in pages:
        for value in PERSONAL:
            assert value not in text
    outcomes = [p["outcome"] for _, p in audit_rows(otp_app, ACTION)]
    assert outcomes == ["otp_sent", "unmatched", "unmatched", "otp_failed"]
    assert _enter(otp_web, pages[1][1], "123456")[1].count("验证码不正确或已过期") == 1  # token never issued


def test_too_many_wrong_codes_use_the_code_up(otp_web: TestClient, otp_app: App) -> None:
    _, page = ask(otp_web, IDS["F01"], "王一")
    code = _sent_code(otp_app)
    bad = "000000" if code != "000000" else "111111"
    for _ in range(otp_app.config.selfquery.otp_attempts):
        _, page = _enter(otp_web, page, bad)
    status, text = _enter(otp_web, page, code)
    assert 'data-state="code"' in text and "验证码不正确或已过期" in text and "138****0001" not in text
