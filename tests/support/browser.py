"""A real browser for console tests: Debian's chromium through Debian's chromedriver (selenium),
and a real uvicorn server on 127.0.0.1 in a thread. Nothing is downloaded."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@contextmanager
def uvicorn_thread(asgi: Any) -> Iterator[str]:
    """Serve `asgi` on 127.0.0.1 until the block ends; yields the base URL. The socket is bound
    here (port 0) and handed to uvicorn, so no other process can take the port in between."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(asgi, log_level="warning"))
    thread = threading.Thread(target=lambda: srv.run(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert srv.started, "the test web server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(5)
        sock.close()


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
    downloads = tmp_path / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return browser


def downloaded(tmp_path: Path, suffix: str, timeout: float = 20) -> Path:
    """The file the browser of `chromium(tmp_path)` downloaded, once complete."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in (tmp_path / "downloads").glob(f"*{suffix}") if p.stat().st_size]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} file was downloaded")


def submit_and_wait(browser: webdriver.Chrome, button_css: str, timeout: float = 20) -> None:
    """Click a form's submit button and wait until the browser has loaded the answer (the old
    page goes stale), so the next lookup reads the new page, however loaded the machine is."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, button_css).click()
    WebDriverWait(browser, timeout).until(ec.staleness_of(old))
    WebDriverWait(browser, timeout).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )
