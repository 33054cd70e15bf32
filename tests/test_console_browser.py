"""The console in a real browser: Debian's chromium driven by selenium through Debian's
chromedriver (nothing is downloaded), against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from notifier.app import App
from notifier.console import console_app
from notifier.identity import Role, add_account

from .conftest import free_port

PW = "correct horse battery"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def server(app: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "b" * 40)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW, display="李经办")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(console_app(app), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


def chromium(tmp_path: Path) -> webdriver.Chrome:
    """Headless Debian chromium with the flags this closed network needs (no background traffic)."""
    assert shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER), (
        "make test installs chromium and chromium-driver"
    )
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1280,900",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def test_log_in_and_out_in_a_real_browser(server: str, tmp_path: Path) -> None:
    browser = chromium(tmp_path)
    try:
        browser.get(server + "/")
        assert browser.current_url.endswith("/login") and browser.title.startswith("登录")
        browser.find_element(By.ID, "name").send_keys("li")
        browser.find_element(By.ID, "password").send_keys("wrong password!")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        assert "账号或密码错误" in browser.find_element(By.CSS_SELECTOR, ".error").text
        browser.find_element(By.ID, "password").send_keys(PW)
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        assert "欢迎，李经办" in browser.find_element(By.TAG_NAME, "h1").text
        cookie = browser.get_cookie("notifier_session")
        assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
        assert browser.current_url.endswith("/login")
        browser.get(server + "/")
        assert browser.current_url.endswith("/login")  # logged out: the start page needs a login again
    finally:
        browser.quit()
