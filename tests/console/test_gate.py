"""The console's gate over HTTP: login, sessions, CSRF, security headers, refusals audited."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.console import console_app
from notifier.identity import Permission, Role, add_account
from notifier.identity.accounts import LOCK_AFTER
from notifier.identity.permissions import ROLE_PERMISSIONS
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


def _as(console: TestClient, app: App, role: Role, name: str) -> None:
    from notifier.identity import find_account

    with app.engine.connect() as conn:
        admin = find_account(conn, "admin")
    add_account(app, admin, name, frozenset({role}), levels=[1] if role is Role.REVIEWER else [], password=PW)
    console.cookies.clear()
    _login(console, name, PW)


def gated_routes(app: App) -> list[tuple[str, str, object]]:
    """(method, path, permission) of every console page behind the gate."""
    from starlette.routing import Route

    out = []
    for r in console_app(app).routes:
        if isinstance(r, Route) and getattr(r.endpoint, "gated", False):
            for m in sorted(r.methods or {"GET"}):
                if m != "HEAD":
                    path = re.sub(r"\{run:int\}", "1", re.sub(r"\{what:str\}", "events", r.path))
                    path = path.replace("{upload:str}", "no-such-upload")
                    path = re.sub(r"\{name:str\}", "farm-subsidy-2026", path)
                    out.append((m, path, r.endpoint.permission))  # type: ignore[attr-defined]
    return out


def test_every_page_is_behind_the_gate(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.routing import Mount, Route

    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", SECRET)
    open_routes = set()
    for r in console_app(app).routes:
        if isinstance(r, Route) and not getattr(r.endpoint, "gated", False):
            open_routes.add(r.path)
        elif isinstance(r, Mount):
            open_routes.add(r.path)
    assert open_routes == {"/login", "/logout", "/static"}  # a new page must go through Pages.page
    assert ("GET", "/optouts", Permission.OPTOUTS) in gated_routes(app)
    assert ("POST", "/runs/1/review", Permission.RUNS_APPROVE) in gated_routes(app)
    assert ("POST", "/import/no-such-upload/confirm", Permission.IMPORT) in gated_routes(app)
    assert ("GET", "/rules/farm-subsidy-2026/explain", Permission.RULES_READ) in gated_routes(app)
    assert ("GET", "/rules/farm-subsidy-2026/review", Permission.RULES_READ) in gated_routes(app)
    assert ("GET", "/rules/farm-subsidy-2026/review.xlsx", Permission.RULES_READ) in gated_routes(app)


def test_the_only_open_routes_beside_the_console_are_listed_here(app: App) -> None:
    """The web app's own routes come before the console's mount and are open to anyone: webhooks
    (signature-checked), health, metrics, the residents' verification page /v (public by design:
    it shows a notice masked, for its code only), the self-query page /query (a resident's own
    notices, masked, after 身份证号 + 姓名) and the published 公示 lists /lists (public by design:
    names masked, nothing a rule did not name public). A new one must be added here deliberately."""
    from starlette.routing import Mount, Route

    from notifier.web import build_web_app

    web = build_web_app(app, webhooks=[])
    paths = [r.path for r in web.routes if isinstance(r, Route)]
    assert paths == [
        "/healthz",
        "/metrics",
        "/v",
        "/v/{code}",
        "/query",
        "/lists",
        "/lists/{list:int}.pdf",
        "/lists/{list:int}",
    ]
    assert [r.path for r in web.routes if isinstance(r, Mount)] == [""]  # the console, last


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_each_gated_route_for_each_role(console: TestClient, app: App, role: Role) -> None:
    """Every gated route answers 403 (audited) to a role without its permission; with it, the
    page is served (a POST then fails on its form, never on the gate)."""
    _as(console, app, role, f"user-{role.value}")
    home = console.get("/")
    csrf = _csrf(home.text)
    for method, path, permission in gated_routes(app):
        allowed = permission is None or permission in ROLE_PERMISSIONS[role]
        r = console.request(
            method, path, data={"csrf": csrf} if method == "POST" else None, follow_redirects=False
        )
        if allowed:  # past the gate: the page, a redirect, a form error, or no such run
            assert r.status_code in (200, 303, 400, 409) or "未找到" in r.text, (
                role,
                method,
                path,
                r.status_code,
            )
        else:
            assert r.status_code == 403 and "无权访问" in r.text, (role, method, path)
    with app.engine.connect() as conn:
        refused = conn.execute(
            sa.select(sa.func.count()).where(audit_events.c.action == "account.refused")
        ).scalar_one()
    denied = sum(1 for _, _, p in gated_routes(app) if p is not None and p not in ROLE_PERMISSIONS[role])
    assert refused == denied


def test_an_operator_keeps_the_opt_out_list(console: TestClient, app: App) -> None:
    _login(console, "li", PW)
    page = console.get("/optouts")
    assert page.status_code == 200 and "退订管理" in page.text and "名单为空" in page.text
    csrf = _csrf(page.text)
    r = console.post("/optouts", data={"csrf": csrf, "phone": "138 0013 8000", "reason": "", "action": "add"})
    assert r.status_code == 400 and "请填写原因" in r.text
    r = console.post("/optouts", data={"csrf": csrf, "phone": "12345", "reason": "来电", "action": "add"})
    assert r.status_code == 400 and "手机号码无效" in r.text
    r = console.post(
        "/optouts", data={"csrf": csrf, "phone": "138 0013 8000", "reason": "来电要求", "action": "add"}
    )
    assert r.status_code == 200 and "号码已加入退订名单" in r.text
    assert "138****8000" in r.text and "13800138000" not in r.text  # masked on the page
    r = console.post(
        "/optouts", data={"csrf": csrf, "phone": "+8613800138000", "reason": "恢复", "action": "remove"}
    )
    assert "号码已移出退订名单" in r.text and "名单为空" in r.text
    with app.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_events.c.actor, audit_events.c.action)
            .where(audit_events.c.action.like("optout.%"))
            .order_by(audit_events.c.seq)
        ).all()
    assert [a for _, a in rows] == ["optout.added", "optout.removed"]
    assert all(actor.startswith("account:") and actor.endswith(":li") for actor, _ in rows)


def test_an_auditor_sees_the_chain_a_residents_history_and_downloads(console: TestClient, app: App) -> None:
    _as(console, app, Role.AUDITOR, "zhao")
    page = console.get("/audit")
    assert page.status_code == 200 and "审计日志链" in page.text and "完整" in page.text
    assert 'href="/audit"' in page.text  # in the navigation
    r = console.get("/audit", params={"resident": "NOBODY"})
    assert "花名册中没有居民 NOBODY" in r.text
    events = console.get("/audit/events.download", params={"format": "csv"})
    assert events.status_code == 200 and events.headers["content-type"].startswith("text/csv")
    assert (
        "account.created" in events.content.decode("utf-8-sig")
        and "attachment" in events.headers["content-disposition"]
    )
    assert console.get("/audit/coverage.download", params={"run": "999"}).status_code == 404
    assert console.get("/audit/events.download", params={"format": "exe"}).status_code == 400


def test_one_address_trying_many_accounts_must_wait(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-account lock does not stop one address guessing across accounts; the per-address
    throttle does, and a correct password does not get past it."""
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", SECRET)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    for i in range(5):
        add_account(app, admin, f"u{i}", frozenset({Role.OPERATOR}), password=PW)
    limit = app.config.console.login_failures_per_address
    with TestClient(console_app(app), base_url="http://127.0.0.1") as client:
        for n in range(limit):  # below each account's own lock: LOCK_AFTER - 1 per account at most
            r = _login(client, f"u{n % 5}", "wrong password")
            assert r.status_code == 401  # type: ignore[attr-defined]
        r = _login(client, "u0", PW)
        assert r.status_code == 429 and "此电脑登录失败次数过多" in r.text  # type: ignore[attr-defined]


def test_the_throttle_forgets_failures_after_its_window() -> None:
    from notifier.console.throttle import LoginThrottle

    now = [1000.0]
    t = LoginThrottle(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert t.wait("10.0.0.1") == 0
        t.failed("10.0.0.1")
    assert t.wait("10.0.0.1") == 60 and t.wait("10.0.0.2") == 0
    now[0] += 30
    assert t.wait("10.0.0.1") == 30
    now[0] += 30.5
    assert t.wait("10.0.0.1") == 0
    t.failed("10.0.0.1")
    t.succeeded("10.0.0.1")
    assert t.wait("10.0.0.1") == 0


def test_the_audit_page_says_when_there_is_no_checkpoint_or_no_such_run(
    console: TestClient, app: App
) -> None:
    _as(console, app, Role.AUDITOR, "qian")
    page = console.get("/audit")
    assert "最近的检查点" in page.text and "暂无" in page.text
    r = console.get("/audit", params={"run": "42"})
    assert "没有批次 42" in r.text
