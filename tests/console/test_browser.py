"""The console in a real browser (tests/support/browser.py) against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.web import build_web_app

from ..support.browser import chromium, submit_and_wait, uvicorn_thread

PW = "correct horse battery"


@pytest.fixture
def server(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "b" * 40)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW, display="李经办")
    with uvicorn_thread(build_web_app(app)) as url:
        yield url


def test_log_in_and_out_in_a_real_browser(server: str, tmp_path: Path) -> None:
    browser = chromium(tmp_path)
    try:
        browser.get(server + "/")
        assert browser.current_url.endswith("/login") and browser.title.startswith("登录")
        browser.find_element(By.ID, "name").send_keys("li")
        browser.find_element(By.ID, "password").send_keys("wrong password!")
        submit_and_wait(browser, "form.login button")
        assert "账号或密码错误" in browser.find_element(By.CSS_SELECTOR, ".error").text
        browser.find_element(By.ID, "password").send_keys(PW)
        submit_and_wait(browser, "form.login button")
        assert "欢迎，李经办" in browser.find_element(By.TAG_NAME, "h1").text
        cookie = browser.get_cookie("notifier_session")
        assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        submit_and_wait(browser, "form.logout button")
        assert browser.current_url.endswith("/login")
        browser.get(server + "/")
        assert browser.current_url.endswith("/login")  # logged out: the start page needs a login again
    finally:
        browser.quit()
