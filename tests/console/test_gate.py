"""The console's gate over HTTP: login, sessions, CSRF, security headers, refusals audited."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.console import console_app
from notifier.identity import Role, add_account
from notifier.identity.accounts import LOCK_AFTER
from notifier.storage.schema import audit_events

PW = "correct horse battery"
SECRET = "s" * 40


@pytest.fixture
def console(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", SECRET)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW, display="王管理")
    add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW, display="李经办")
    with TestClient(console_app(app), base_url="http://127.0.0.1") as client:
        yield client


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _login(client: TestClient, name: str, password: str) -> object:
    page = client.get("/login")
    return client.post(
        "/login", data={"name": name, "password": password, "csrf": _csrf(page.text)}, follow_redirects=False
    )


def test_login_shows_the_start_page_in_chinese_and_logout_ends_the_session(console: TestClient) -> None:
    assert console.get("/", follow_redirects=False).headers["location"] == "/login"
    r = _login(console, "LI", PW)
    assert r.status_code == 303 and r.headers["location"] == "/"  # type: ignore[attr-defined]
    home = console.get("/")
    assert home.status_code == 200 and "欢迎，李经办" in home.text and "经办" in home.text
    assert 'lang="zh-CN"' in home.text and "退出登录" in home.text
    cookie = home.request.headers.get("cookie", "")
    console.post("/logout", data={"csrf": _csrf(home.text)}, follow_redirects=False)
    assert console.get("/", follow_redirects=False).status_code == 303
    assert "notifier_session" in cookie


def test_wrong_password_and_lockout_are_refused_in_chinese(console: TestClient) -> None:
    r = _login(console, "li", "not the password")
    assert r.status_code == 401 and "账号或密码错误" in r.text  # type: ignore[attr-defined]
    for _ in range(LOCK_AFTER - 1):
        _login(console, "li", "not the password")
    r = _login(console, "li", PW)
    assert r.status_code == 429 and "账号已锁定" in r.text  # type: ignore[attr-defined]


def test_a_post_without_the_csrf_token_is_refused(console: TestClient, app: App) -> None:
    r = console.post("/login", data={"name": "li", "password": PW}, follow_redirects=False)
    assert r.status_code == 403 and "表单已过期" in r.text
    _login(console, "li", PW)
    r = console.post("/logout", data={"csrf": "forged"}, follow_redirects=False)
    assert console.get("/").status_code == 200  # a forged logout changes nothing
    with app.engine.connect() as conn:
        actions = conn.execute(sa.select(audit_events.c.action)).scalars().all()
    assert "account.logout" not in actions and actions.count("account.login") == 1


def test_security_headers_and_cookie_flags(console: TestClient) -> None:
    page = console.get("/login")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    r = _login(console, "li", PW)
    set_cookie = r.headers["set-cookie"].lower()  # type: ignore[attr-defined]
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert "<style" not in page.text and "<script" not in page.text and " style=" not in page.text


def test_without_a_session_secret_the_console_says_how_to_enable_it(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIER_SESSION_SECRET", raising=False)
    with TestClient(console_app(app)) as client:
        r = client.get("/login")
    assert r.status_code == 503 and "管理平台未启用" in r.text and "NOTIFIER_SESSION_SECRET" in r.text
