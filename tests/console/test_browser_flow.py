"""A run's whole life in real browsers against a real `notifier serve` process: the operator
creates it, two reviewers approve it, the operator's page refreshes itself until the run has
completed, the auditor downloads its coverage; a form without its CSRF token and a page outside
a role are refused in the browser."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from notifier.identity import Role, add_account

from ..support.browser import chromium, downloaded, submit_and_wait
from ..support.campaign import open_window
from ..support.county import county
from ..support.project import free_port
from ..support.webserver import start_serve, stop_serve
from .test_browser import PW, log_in


@pytest.fixture
def serve_url(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "f" * 40)
    port = free_port()
    app = county(
        tmp_path, sqlite_url, phones=3, extra=f"[serve]\nport = {port}\ndispatch_interval_seconds = 0.2\n"
    )
    open_window(tmp_path)  # serve sends on the real clock
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW, display="张科员")
    add_account(app, admin, "li", frozenset({Role.REVIEWER}), levels=[1], password=PW, display="李科长")
    add_account(app, admin, "wang", frozenset({Role.REVIEWER}), levels=[2], password=PW, display="王局长")
    add_account(app, admin, "zhao", frozenset({Role.AUDITOR}), password=PW, display="赵审计")
    app.close()
    proc = start_serve(tmp_path / "notifier.toml", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        code, err = stop_serve(proc)
        assert code == 0, err


def test_a_run_is_watched_to_completion_and_audited_in_real_browsers(serve_url: str, tmp_path: Path) -> None:
    shots = os.environ.get("NOTIFIER_SCREENSHOTS")
    operator, auditor = chromium(tmp_path / "op"), chromium(tmp_path / "au")
    try:
        log_in(operator, serve_url, "zhang")
        operator.get(serve_url + "/runs")
        Select(operator.find_element(By.ID, "rule")).select_by_value("farm-subsidy-2026")
        operator.execute_script("arguments[0].value = '2026-04-01'", operator.find_element(By.ID, "on"))
        submit_and_wait(operator, "form.inline button")
        run_url = operator.current_url
        run_id = run_url.rsplit("/", 1)[-1]

        # a form whose CSRF token was tampered with is refused, and nothing happens
        operator.execute_script(
            "document.querySelector('form[action$=\"/cancel\"] input[name=csrf]').value = 'forged'"
        )
        submit_and_wait(operator, "form[action$='/cancel'] button")
        assert "表单已过期" in operator.find_element(By.TAG_NAME, "main").text
        operator.get(run_url)
        assert "待审核" in operator.find_element(By.TAG_NAME, "h1").text

        for name in ("li", "wang"):
            reviewer = chromium(tmp_path / name)
            try:
                log_in(reviewer, serve_url, name)
                reviewer.get(serve_url + "/runs?queue=mine")
                reviewer.find_element(By.LINK_TEXT, run_id).click()
                submit_and_wait(reviewer, "button[value=approve]")
                assert "审核意见已记录" in reviewer.find_element(By.CSS_SELECTOR, ".ok").text
            finally:
                reviewer.quit()

        # the operator's page reloads itself (meta refresh) until serve has sent everything
        operator.get(run_url)
        WebDriverWait(operator, 60, poll_frequency=0.5).until(
            lambda b: "已完成" in b.find_element(By.TAG_NAME, "h1").text
        )
        delivered = operator.find_element(By.CSS_SELECTOR, "#counts td[data-status=delivered]").text
        assert delivered == "3"
        operator.find_element(By.LINK_TEXT, "每位接收人的发送状态").click()
        rows = operator.find_elements(By.CSS_SELECTOR, "#deliveries tbody tr")
        assert len(rows) == 3 and all("已送达" in r.text for r in rows)
        assert "138****0001" in rows[0].text and "13800000001" not in operator.page_source
        if shots:
            operator.save_screenshot(os.path.join(shots, "deliveries.png"))

        log_in(auditor, serve_url, "zhao")
        auditor.get(serve_url + "/optouts")  # not the auditor's page
        assert "无权访问" in auditor.find_element(By.TAG_NAME, "main").text
        auditor.get(serve_url + "/audit")
        assert "完整" in auditor.find_element(By.CSS_SELECTOR, ".ok").text
        auditor.find_element(By.ID, "run").send_keys(run_id)
        auditor.find_element(By.CSS_SELECTOR, "form[action='/audit/coverage.download'] button").click()
        coverage = downloaded(tmp_path / "au", ".csv")
        with coverage.open(encoding="utf-8-sig") as f:
            table = list(csv.DictReader(f))
        assert len(table) == 3 and "13800000001" not in coverage.read_text(encoding="utf-8-sig")
        if shots:
            auditor.save_screenshot(os.path.join(shots, "audit.png"))
    finally:
        operator.quit()
        auditor.quit()
