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
from notifier.identity import Role, add_account, find_account
from notifier.storage.schema import audit_events
from notifier.web import build_web_app

from ..support.county import county
from ..support.smtp_server import SmtpServer

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
    assert r.status_code == 409 and "由 zhang 创建，创建人不能审核自己创建的批次" in r.text
    w = wang.get(url)
    assert "第 2 级审核通过" not in w.text  # no button for a level this account cannot take
    r = wang.post(url + "/review", data={"csrf": csrf(w.text), "decision": "approve"})
    assert r.status_code == 403 and "账号 wang 无权审核发送批次：没有第 1 级的权限 runs.approve" in r.text
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
    assert r.status_code == 409 and "待审核" in r.text and "驳回时请填写意见" in r.text
    r = li.post(url + "/review", data={"csrf": csrf(p.text), "decision": "reject", "comment": "补贴标准有误"})
    assert r.status_code == 200 and "已取消" in r.text
    with capp.engine.connect() as conn:
        payload = conn.execute(
            sa.select(audit_events.c.payload).where(audit_events.c.action == "run.cancelled")
        ).scalar_one()
    assert json.loads(payload)["comment"] == "rejected: 补贴标准有误"
    assert zhang.get("/runs/999").status_code == 404


def _create(client: TestClient) -> str:
    page = client.get("/runs")
    r = client.post(
        "/runs",
        data={"csrf": csrf(page.text), "rule": "farm-subsidy-2026", "on": "2026-04-01"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


def _approve(client: TestClient, url: str) -> None:
    p = client.get(url)
    assert client.post(url + "/review", data={"csrf": csrf(p.text), "decision": "approve"}).status_code == 200


def test_the_review_queue_shows_each_reviewer_the_runs_waiting_for_their_level(capp: App) -> None:
    zhang, li, wang = (browser_of(capp, n) for n in ("zhang", "li", "wang"))
    url = _create(zhang)
    run = url.rsplit("/", 1)[-1]
    assert "待我审核（1）" in li.get("/runs").text
    queue = li.get("/runs", params={"queue": "mine"}).text
    assert f'href="/runs/{run}"' in queue
    assert "待我审核（0）" in wang.get("/runs").text  # level 2 waits for level 1
    assert "待我审核（0）" in zhang.get("/runs").text  # the creator never reviews their own run
    assert "没有等待您审核的批次" in zhang.get("/runs", params={"queue": "mine"}).text
    _approve(li, url)
    assert "待我审核（0）" in li.get("/runs").text and "待我审核（1）" in wang.get("/runs").text


def test_a_reviewer_sees_what_changed_in_the_rule_since_the_last_approved_run(capp: App) -> None:
    zhang, li, wang = (browser_of(capp, n) for n in ("zhang", "li", "wang"))
    first = _create(zhang)
    assert "该规则此前没有已批准的批次" in li.get(first).text
    _approve(li, first)
    _approve(wang, first)
    sms = capp.config.templates_dir / "farm_subsidy.sms.j2"
    sms.write_text(sms.read_text(encoding="utf-8").rstrip("\n") + "咨询电话：12345。\n", encoding="utf-8")
    second = _create(zhang)
    page = li.get(second).text
    assert f"与已批准的批次 {first.rsplit('/', 1)[-1]} 相比" in page
    assert '<span class="add">+' in page and "咨询电话：12345。" in page
    assert '<span class="del">-' in page  # the old last line of the template


def test_each_recipients_status_is_listed_masked_with_a_status_filter(capp: App) -> None:
    from ..support.campaign import send
    from ..support.county import NOON

    zhang, li, wang = (browser_of(capp, n) for n in ("zhang", "li", "wang"))
    url = _create(zhang)
    _approve(li, url)
    _approve(wang, url)
    send(capp, int(url.rsplit("/", 1)[-1]), now=NOON)
    page = zhang.get(url + "/deliveries")
    assert page.status_code == 200 and "每位接收人的发送状态" in page.text
    assert "D01" in page.text and "138****0001" in page.text and "13800000001" not in page.text
    assert "李1" not in page.text  # names masked too
    assert "已送达" in page.text
    only = zhang.get(url + "/deliveries", params={"status": "failed"}).text
    assert "D01" not in only and "没有通知记录" in only
    assert zhang.get("/runs/999/deliveries").status_code == 404
    with capp.engine.connect() as conn:
        admin = find_account(conn, "admin")
    add_account(capp, admin, "zhao", frozenset({Role.AUDITOR}), password=PW)
    run = url.rsplit("/", 1)[-1]
    audit = browser_of(capp, "zhao").get("/audit", params={"run": run}).text
    assert f"批次 {run}（farm-subsidy-2026，已完成）：3 名居民中已核对 3 名" in audit
    assert '<td data-outcome="delivered">3</td>' in audit


def test_failed_deliveries_are_sent_again_from_the_run_page(
    papp: App, smtp: SmtpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from notifier.residents.importer import import_residents

    from ..delivery.test_retry import ONLY_EMAIL
    from ..support.campaign import NOON, send, write_roster

    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "r" * 40)
    import_residents(papp, write_roster(tmp_path / "more.csv", [ONLY_EMAIL]))
    admin = add_account(papp, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(papp, admin, "zhang", frozenset({Role.OPERATOR}), password=PW)
    add_account(papp, admin, "li", frozenset({Role.REVIEWER}), levels=[1], password=PW)
    add_account(papp, admin, "wang", frozenset({Role.REVIEWER, Role.AUDITOR}), levels=[2], password=PW)
    zhang, li, wang = (browser_of(papp, n) for n in ("zhang", "li", "wang"))
    url = _create(zhang)
    _approve(li, url)
    _approve(wang, url)
    smtp.refuse.add("zhao1@example.com")
    send(papp, int(url.rsplit("/", 1)[-1]), now=NOON)
    page = zhang.get(url)
    assert "重新发送 1 条失败的通知" in page.text  # F02's failed e-mail went on to a letter
    assert "重新发送" not in wang.get(url).text  # a reviewer/auditor has no retry
    failed = zhang.get(url + "/deliveries", params={"status": "failed"}).text
    assert "R01" in failed and "z***@example.com" in failed and "赵*" in failed
    assert "zhao1@example.com" not in failed and "赵一" not in failed
    r = wang.post(url + "/retry", data={"csrf": csrf(page.text)})
    assert r.status_code == 403
    smtp.refuse.clear()
    r = zhang.post(url + "/retry", data={"csrf": csrf(page.text)})
    assert r.status_code == 200 and "发送失败的通知将重新发送" in r.text
    assert "正在发送：本页每 5 秒自动刷新" in r.text and 'http-equiv="refresh"' in r.text
    send(papp, int(url.rsplit("/", 1)[-1]), now=NOON)
    done = zhang.get(url).text
    assert "已完成" in done and 'http-equiv="refresh"' not in done and "重新发送" not in done
    with papp.engine.connect() as conn:
        actors = (
            conn.execute(sa.select(audit_events.c.actor).where(audit_events.c.action == "run.reopened"))
            .scalars()
            .all()
        )
    assert [a.split(":")[-1] for a in actors] == ["zhang"]


def test_an_account_granted_unmask_sees_one_residents_messages_in_full_with_a_reason(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "u" * 40)
    app = county(tmp_path, sqlite_url, phones=2)
    try:
        admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
        add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW)
        add_account(app, admin, "sun", frozenset({Role.AUDITOR}), password=PW, unmask=True)
        url = _create(browser_of(app, "zhang"))
        sun = browser_of(app, "sun")
        page = sun.get(url)
        assert "显示完整信息" in page.text and "13800000001" not in page.text
        form = {"csrf": csrf(page.text), "resident": "D01", "reason": ""}
        assert "请填写居民编号和查看完整信息的原因" in sun.post(url + "/unmask", data=form).text
        r = sun.post(url + "/unmask", data=form | {"reason": "居民来电核实"})
        assert r.status_code == 409 and "不允许查看完整信息" in r.text  # [audit] unmask_allowed is off
        assert "显示完整信息" not in browser_of(app, "zhang").get(url).text  # not granted unmask
    finally:
        app.close()
    cfg = tmp_path / "notifier.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[audit]\nunmask_allowed = true\n", encoding="utf-8")
    app = App.open(cfg)
    try:
        sun = browser_of(app, "sun")
        page = sun.get(url)
        r = sun.post(
            url + "/unmask", data={"csrf": csrf(page.text), "resident": "D01", "reason": "居民来电核实"}
        )
        assert r.status_code == 200 and "完整通知内容（本次查看已记入审计日志）" in r.text
        assert "+8613800000001" in r.text and "李1" in r.text and "13800000002" not in r.text
        with app.engine.connect() as conn:
            actor, payload = conn.execute(
                sa.select(audit_events.c.actor, audit_events.c.payload).where(
                    audit_events.c.action == "run.messages_unmasked"
                )
            ).one()
        assert actor.endswith(":sun") and json.loads(payload) == {
            "resident": "D01",
            "messages": 3,  # the first channel's and the fallbacks' messages
            "reason": "居民来电核实",
        }
    finally:
        app.close()
