"""The console in a real browser (tests/support/browser.py) against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

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


@pytest.fixture
def county_server(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from ..support.county import county

    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "c" * 40)
    app = county(tmp_path, sqlite_url, phones=3)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW, display="张科员")
    add_account(app, admin, "li", frozenset({Role.REVIEWER}), levels=[1], password=PW, display="李科长")
    add_account(app, admin, "wang", frozenset({Role.REVIEWER}), levels=[2], password=PW, display="王局长")
    with uvicorn_thread(build_web_app(app)) as url:
        yield url
    app.close()


def log_in(browser: Any, server: str, name: str) -> None:
    browser.get(server + "/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PW)
    submit_and_wait(browser, "form.login button")


def test_a_run_from_creation_to_approval_in_three_browsers(county_server: str, tmp_path: Path) -> None:
    """The operator creates a run; two reviewers, each in a browser of their own, approve their
    level; the operator cannot approve. Screenshots of the pages go to docs/console/ when
    NOTIFIER_SCREENSHOTS names a folder."""
    import os

    shots = os.environ.get("NOTIFIER_SCREENSHOTS")
    operator, first, second = (chromium(tmp_path / n) for n in ("op", "r1", "r2"))
    try:
        log_in(operator, county_server, "zhang")
        operator.get(county_server + "/runs")
        Select(operator.find_element(By.ID, "rule")).select_by_value("farm-subsidy-2026")
        day = operator.find_element(By.ID, "on")
        operator.execute_script("arguments[0].value = '2026-04-01'", day)
        submit_and_wait(operator, "form.inline button")
        run_url = operator.current_url
        assert "/runs/" in run_url and "待审核" in operator.find_element(By.TAG_NAME, "h1").text
        assert not operator.find_elements(By.CSS_SELECTOR, "button[value=approve]")  # no approve button
        if shots:
            operator.save_screenshot(os.path.join(shots, "run-review.png"))
        for browser, name, level in ((first, "li", 1), (second, "wang", 2)):
            log_in(browser, county_server, name)
            browser.get(run_url)
            button = browser.find_element(By.CSS_SELECTOR, "button[value=approve]")
            assert f"第 {level} 级审核通过" in button.text
            browser.find_element(By.ID, "comment").send_keys(f"{name} 已核对")
            submit_and_wait(browser, "button[value=approve]")
            assert "审核意见已记录" in browser.find_element(By.CSS_SELECTOR, ".ok").text
        operator.get(run_url)
        assert "已批准" in operator.find_element(By.TAG_NAME, "h1").text
        if shots:
            operator.get(county_server + "/runs")
            operator.save_screenshot(os.path.join(shots, "runs.png"))
            operator.get(county_server + "/login")
    finally:
        for b in (operator, first, second):
            b.quit()
