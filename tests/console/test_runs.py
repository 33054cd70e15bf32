"""发送批次 in the console over HTTP: an operator creates a run, reviewers approve level by level
with comments, the creator and a wrong-level reviewer are refused, a rejection needs a comment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.storage.schema import audit_events
from notifier.web import build_web_app

from ..support.county import county

PW = "correct horse battery"


@pytest.fixture
def capp(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "r" * 40)
    app = county(tmp_path, sqlite_url, phones=3)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "zhang", frozenset({Role.OPERATOR, Role.REVIEWER}), levels=[1], password=PW)
    add_account(app, admin, "li", frozenset({Role.REVIEWER}), levels=[1], password=PW, display="李科长")
    add_account(app, admin, "wang", frozenset({Role.REVIEWER}), levels=[2], password=PW, display="王局长")
    yield app
    app.close()


def browser_of(app: App, name: str) -> TestClient:
    client = TestClient(build_web_app(app), base_url="http://127.0.0.1")
    page = client.get("/login")
    r = client.post(
        "/login", data={"name": name, "password": PW, "csrf": csrf(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    return client


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_a_run_is_created_and_approved_in_the_console(capp: App) -> None:
    zhang, li, wang = (browser_of(capp, n) for n in ("zhang", "li", "wang"))
    page = zhang.get("/runs")
    assert page.status_code == 200 and "创建发送批次" in page.text and "暂无发送批次" in page.text
    r = zhang.post(
        "/runs",
        data={"csrf": csrf(page.text), "rule": "farm-subsidy-2026", "on": "2026-04-01"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    run_page = zhang.get(r.headers["location"])
    assert "待审核" in run_page.text and "样例通知" in run_page.text
    assert "138****0001" in run_page.text and "13800000001" not in run_page.text  # samples masked
    url = r.headers["location"]
    # the creator (also a level-1 reviewer) is refused; so is level 2 before level 1
    r = zhang.post(url + "/review", data={"csrf": csrf(run_page.text), "decision": "approve"})
    assert r.status_code == 409 and "creator cannot approve" in r.text
    w = wang.get(url)
    assert "第 2 级审核通过" not in w.text  # no button for a level this account cannot take
    r = wang.post(url + "/review", data={"csrf": csrf(w.text), "decision": "approve"})
    assert r.status_code == 403 and "at level 1" in r.text
    p = li.get(url)
    r = li.post(url + "/review", data={"csrf": csrf(p.text), "decision": "approve", "comment": "名单已核对"})
    assert r.status_code == 200 and "审核意见已记录" in r.text
    p = wang.get(url)
    assert "第 2 级审核通过" in p.text
    r = wang.post(url + "/review", data={"csrf": csrf(p.text), "decision": "approve"})
    assert "已批准" in r.text
    with capp.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.actor, audit_events.c.action, audit_events.c.payload)
            .where(audit_events.c.action.in_(["run.created", "run.approved", "account.refused"]))
            .order_by(audit_events.c.seq)
        ).all()
    assert [(a.split(":")[-1], act) for a, act, _ in rows] == [
        ("zhang", "run.created"),
        ("wang", "account.refused"),
        ("li", "run.approved"),
        ("wang", "run.approved"),
    ]
    assert json.loads(rows[2][2])["comment"] == "名单已核对"


def test_a_rejection_needs_a_comment_and_cancels_the_run(capp: App) -> None:
    zhang, li = browser_of(capp, "zhang"), browser_of(capp, "li")
    page = zhang.get("/runs")
    url = zhang.post(
        "/runs",
        data={"csrf": csrf(page.text), "rule": "farm-subsidy-2026", "on": "2026-04-01"},
        follow_redirects=False,
    ).headers["location"]
    p = li.get(url)
    r = li.post(url + "/review", data={"csrf": csrf(p.text), "decision": "reject"})
    assert r.status_code == 409 and "待审核" in r.text
    r = li.post(url + "/review", data={"csrf": csrf(p.text), "decision": "reject", "comment": "补贴标准有误"})
    assert r.status_code == 200 and "已取消" in r.text
    with capp.engine.connect() as conn:
        payload = conn.execute(
            sa.select(audit_events.c.payload).where(audit_events.c.action == "run.cancelled")
        ).scalar_one()
    assert json.loads(payload)["comment"] == "rejected: 补贴标准有误"
    assert zhang.get("/runs/999").status_code == 404
