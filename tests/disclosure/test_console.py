"""The console's 公示名单 page: an operator publishes a run's list (acting as their account);
a reviewer sees the published lists but may not publish (refused at the gate, audited)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.web import build_web_app
from tests.support.campaign import audit_rows

PW = "correct horse battery"


@pytest.fixture
def web(listed: tuple[App, int], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    app, _ = listed
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "s" * 40)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW)
    add_account(app, admin, "zhou", frozenset({Role.REVIEWER}), levels=[1], password=PW)
    with TestClient(
        build_web_app(app, webhooks=[]), base_url="https://127.0.0.1"
    ) as client:  # public_url is https: secure cookies
        yield client


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _login(client: TestClient, name: str) -> str:
    client.cookies.clear()
    page = client.get("/login")
    client.post("/login", data={"name": name, "password": PW, "csrf": _csrf(page.text)})
    return _csrf(client.get("/disclosure").text)


def test_an_operator_publishes_and_a_reviewer_only_reads(web: TestClient, listed: tuple[App, int]) -> None:
    app, run_id = listed
    csrf = _login(web, "li")
    page = web.get("/disclosure")
    assert page.status_code == 200 and "发布公示名单" in page.text and "尚未发布名单" in page.text
    r = web.post(
        "/disclosure", data={"csrf": csrf, "rule": "farm-subsidy-2026", "on": "2026-03-01", "days": "7"}
    )
    assert r.status_code == 400 and "未发布" in r.text and "没有已审核或已完成的批次" in r.text
    r = web.post(
        "/disclosure", data={"csrf": csrf, "rule": "farm-subsidy-2026", "on": "2026-04-01", "days": "x"}
    )
    assert r.status_code == 400 and "请填写形如" in r.text
    r = web.post(
        "/disclosure", data={"csrf": csrf, "rule": "farm-subsidy-2026", "on": "2026-04-01", "days": "7"}
    )
    assert r.status_code == 200 and "名单 1 已发布" in r.text and 'href="/lists/1.pdf"' in r.text
    assert "2026-04-01 – 2026-04-07" in r.text and f'href="/runs/{run_id}"' in r.text
    ((subject, event),) = audit_rows(app, "list.published")
    assert subject == "list:1" and event["rows"] == 5
    with app.engine.connect() as conn:
        from notifier.storage.schema import public_lists

        (by,) = conn.execute(public_lists.select().with_only_columns(public_lists.c.published_by)).scalars()
    assert by.startswith("account:") and by.endswith(":li")
    csrf = _login(web, "zhou")
    page = web.get("/disclosure")
    assert page.status_code == 200 and 'href="/lists/1"' in page.text and "发布公示名单" not in page.text
    r = web.post(
        "/disclosure", data={"csrf": csrf, "rule": "farm-subsidy-2026", "on": "2026-04-01", "days": "7"}
    )
    assert r.status_code == 403 and len(audit_rows(app, "list.published")) == 1
    assert any(p.get("permission") == "lists.publish" for _, p in audit_rows(app, "account.refused"))
