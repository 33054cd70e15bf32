"""Plain, accessible HTML: every page's form fields have labels and its tables header cells (over
HTTP, every GET page for an account holding every role), and no page scrolls sideways on a
phone-width screen (in the browser)."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.web import build_web_app

from ..support.browser import chromium, uvicorn_thread
from ..support.county import approved_run, county
from .test_browser import PW, log_in
from .test_gate import gated_routes
from .test_runs import browser_of


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, dict[str, str | None]]] = []
        self.labels: set[str] = set()
        self.tables = 0
        self.headed_tables = 0
        self._in_table = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.fields.append((tag, a))
        elif tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        elif tag == "table":
            self.tables += 1
            self._in_table = True
        elif tag == "th" and self._in_table:
            self.headed_tables += 1
            self._in_table = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False


@pytest.fixture
def everyone(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "a" * 40)
    app = county(tmp_path, sqlite_url, phones=3)
    approved_run(app)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "all", frozenset(Role), levels=[1, 2], password=PW, unmask=True)
    yield app
    app.close()


def test_every_page_labels_its_fields_and_heads_its_tables(everyone: App) -> None:
    client = browser_of(everyone, "all")
    pages = [path for method, path, _ in gated_routes(everyone) if method == "GET" and "download" not in path]
    assert {"/", "/runs", "/runs/1", "/rules", "/import", "/optouts", "/audit"} <= set(pages)
    checked = 0
    for path in pages:
        r = client.get(path)
        assert r.status_code in (200, 400, 404), (path, r.status_code)  # 400: a page asking for its parameter
        page = _Page()
        page.feed(r.text)
        unlabelled = [
            (tag, a.get("name"))
            for tag, a in page.fields
            if not a.get("aria-label") and (not a.get("id") or a["id"] not in page.labels)
        ]
        assert unlabelled == [], path
        assert page.headed_tables == page.tables, path
        checked += len(page.fields) + page.tables
    assert checked > 20  # the pages did have forms and tables to check


@pytest.mark.parametrize("width", [390, 1280])
def test_no_page_scrolls_sideways(everyone: App, tmp_path: Path, width: int) -> None:
    with uvicorn_thread(build_web_app(everyone)) as url:
        browser = chromium(tmp_path)
        try:
            browser.set_window_size(width, 900)
            log_in(browser, url, "all")
            for path in (
                "/",
                "/runs",
                "/runs/1",
                "/runs/1/deliveries",
                "/rules",
                "/import",
                "/optouts",
                "/audit",
                "/disclosure",
                "/rules/farm-subsidy-2026/review",
                "/v",
                "/query",
                "/lists",
            ):
                browser.get(url + path)
                assert browser.find_element(By.TAG_NAME, "h1").text, path
                wide = browser.execute_script(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert wide <= 1, (path, width, wide)
        finally:
            browser.quit()
