"""花名册导入 in a real browser (tests/support/browser.py) against a real server on 127.0.0.1: an
operator uploads a roster with bad rows, sees them on the check page, confirms, sees the result."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from selenium.webdriver.common.by import By

from notifier.app import App
from notifier.identity import Role, add_account
from notifier.samplegen import id_check_char
from notifier.web import build_web_app

from ..support.browser import chromium, submit_and_wait, uvicorn_thread
from ..support.project import write_config

PW = "correct horse battery"


def idn(first17: str) -> str:
    return first17 + id_check_char(first17)


ROSTER = [
    "城关镇2026年花名册",
    "居民编号,姓名,手机号码,身份证号,乡镇,村,户籍类型,家庭人口数",
    f"C001,王建国,13800138000,{idn('41010219500307123')},城关镇,东村,农村,3",
    f"C002,李秀英,13912345678,{idn('41010219620815002')[:-1]}0,城关镇,东村,农村,2",
    f"C003,张伟,1380013800,{idn('41010219781120004')},城关镇,西村,农业户口,4",
    f",刘芳,13700001111,{idn('41010219850101005')},城关镇,西村,城镇,1",
    f"C005,陈明,13600002222,{idn('41010219900606006')},城关镇,南村,农村,五口",
    f"C006,杨丽,13500003333,{idn('41010219951212007')},城关镇,南村,农村,2",
    "合计,,,,,,,",
]


@pytest.fixture
def server(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, App]]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "m" * 40)
    app = App.open(write_config(tmp_path, sqlite_url))
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW, display="张科员")
    with uvicorn_thread(build_web_app(app)) as url:
        yield url, app
    app.close()


def test_upload_check_and_confirm_a_roster_in_a_real_browser(server: tuple[str, App], tmp_path: Path) -> None:
    """Screenshot of the check page to docs/console/ when NOTIFIER_SCREENSHOTS names a folder."""
    url, app = server
    roster = tmp_path / "城关镇花名册.csv"
    roster.write_text("\n".join(ROSTER) + "\n", encoding="gbk")
    shots = os.environ.get("NOTIFIER_SCREENSHOTS")
    browser = chromium(tmp_path)
    try:
        browser.get(url + "/login")
        browser.find_element(By.ID, "name").send_keys("zhang")
        browser.find_element(By.ID, "password").send_keys(PW)
        submit_and_wait(browser, "form.login button")
        browser.find_element(By.LINK_TEXT, "花名册导入").click()
        assert browser.find_element(By.TAG_NAME, "h1").text == "花名册导入"
        browser.find_element(By.ID, "roster").send_keys(str(roster))
        submit_and_wait(browser, "form.stack button")
        assert browser.find_element(By.TAG_NAME, "h1").text == "检查花名册：城关镇花名册.csv"
        errors = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in browser.find_elements(By.CSS_SELECTOR, "table.problems")[0].find_elements(
                By.CSS_SELECTOR, "tbody tr"
            )
        ]
        assert [e[:2] for e in errors] == [["4", "身份证号"], ["6", "居民编号"], ["7", "家庭人口数"]]
        assert errors[0][2].endswith("身份证号校验码错误") and "********" in errors[0][2]
        assert errors[2][2] == "'五口' 不是数字"
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "13800138000" not in body and "1380013800" not in body and "有 3 行存在错误" in body
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(app.residents)).scalar_one() == 0
        if shots:  # tall enough to show the errors, warnings and column mapping too
            browser.set_window_size(1280, 1500)
            browser.save_screenshot(os.path.join(shots, "import-check.png"))
        submit_and_wait(browser, "#confirm")
        assert browser.find_element(By.TAG_NAME, "h1").text == "花名册已导入：城关镇花名册.csv"
        assert "导入完成，已记入审计日志" in browser.find_element(By.CSS_SELECTOR, ".ok").text
        counts = {
            tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
            for tr in browser.find_elements(By.CSS_SELECTOR, "table.counts tr")
        }
        assert counts["已新增"] == "3" and counts["有错误的行（不导入）"] == "3"
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(app.residents)).scalar_one() == 3
    finally:
        browser.quit()
