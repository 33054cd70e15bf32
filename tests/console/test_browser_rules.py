"""规则 in a real browser (tests/support/browser.py) against a real server on 127.0.0.1: an operator
opens the rules, previews one for a date, reads the counts and the masked samples, and explains
the rule for a resident found by 居民编号 and by a masked search."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.preview import preview
from notifier.residents.importer import import_residents
from notifier.web import build_web_app

from ..support.browser import chromium, submit_and_wait, uvicorn_thread
from ..support.campaign import PEOPLE, rule, write_roster
from ..support.project import write_config

PW = "correct horse battery"
ON = date(2026, 4, 1)


@pytest.fixture
def village(tmp_path: Path, sqlite_url: str) -> Iterator[App]:
    app = App.open(write_config(tmp_path, sqlite_url))
    import_residents(app, write_roster(tmp_path / "people.csv", PEOPLE))
    yield app
    app.close()


@pytest.fixture
def server(village: App, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "g" * 40)
    admin = add_account(village, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(village, admin, "zhang", frozenset({Role.OPERATOR}), password=PW, display="张科员")
    with uvicorn_thread(build_web_app(village)) as url:
        yield url


def text_of(browser: WebDriver, css: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_an_operator_previews_a_rule_and_explains_it(server: str, village: App, tmp_path: Path) -> None:
    """Screenshots go to the folder NOTIFIER_SCREENSHOTS names (docs/console/), if set."""
    shots = os.environ.get("NOTIFIER_SCREENSHOTS")
    browser = chromium(tmp_path)
    try:
        browser.get(server + "/login")
        browser.find_element(By.ID, "name").send_keys("zhang")
        browser.find_element(By.ID, "password").send_keys(PW)
        submit_and_wait(browser, "form.login button")
        submit_and_wait(browser, 'nav a[href="/rules"]')
        assert text_of(browser, "h1") == "规则"
        rows = browser.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [
            "dibao-monthly-payment",
            "farm-subsidy-2026",
            "rural-housing-repair-2026",
        ]
        assert "已通过 0 / 2 级审核" in rows[1].text and "一次，2026-04-01 09:00" in rows[1].text
        if shots:
            browser.save_screenshot(os.path.join(shots, "rules.png"))

        submit_and_wait(browser, 'a[href="/rules/farm-subsidy-2026"]')
        day = browser.find_element(By.ID, "on")
        browser.execute_script("arguments[0].value = arguments[1]", day, ON.isoformat())
        submit_and_wait(browser, 'form[action="/rules/farm-subsidy-2026"] button')
        expected = preview(village, rule(village), ON)
        assert text_of(browser, "#count-match") == str(expected.counts["match"]) == "5"
        assert text_of(browser, "#count-review") == "1" and text_of(browser, "#count-no_match") == "1"
        assert text_of(browser, "#sms-segments") == str(expected.sms_segments)
        samples = browser.find_elements(By.CSS_SELECTOR, "article.message")
        assert len(samples) == 4  # 1 SMS, 2 e-mails, 1 letter
        assert "条短信计费" in samples[0].text and "王*您好" in samples[0].text
        assert "13800000001" not in browser.page_source and "王一" not in browser.page_source
        if shots:
            browser.set_window_size(1280, 2000)
            browser.save_screenshot(os.path.join(shots, "rule-preview.png"))
            browser.set_window_size(1280, 900)

        browser.find_element(By.ID, "resident").send_keys("F07")
        submit_and_wait(browser, "button#explain")
        assert "需工作人员核实后确定" in text_of(browser, "p.result")
        unknown = browser.find_element(By.CSS_SELECTOR, "tr.condition.unknown")
        assert "承包耕地面积无数据" in unknown.text
        if shots:
            browser.save_screenshot(os.path.join(shots, "rule-explain.png"))

        browser.find_element(By.ID, "resident").clear()
        browser.find_element(By.ID, "name").send_keys("王")
        browser.find_element(By.ID, "village").send_keys("东村")
        submit_and_wait(browser, "button#search")
        found = browser.find_elements(By.CSS_SELECTOR, "section tbody tr")
        assert len(found) == 6 and "王*" in found[5].text and "13800000006" not in browser.page_source
        submit_and_wait(browser, 'a[href="/rules/farm-subsidy-2026/explain?resident=F06&on=2026-04-01"]')
        assert "不符合条件：农村户籍" in text_of(browser, "p.result")
    finally:
        browser.quit()
