"""待核实名单 over HTTP: /rules/NAME/review lists the residents a rule cannot decide (masked), the
fill-in sheet downloads as XLSX, the filled sheet goes through 花名册导入's check-then-confirm,
after which the queue is shorter; an auditor sees the queue but no upload; the run page links it."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from starlette.testclient import TestClient

from notifier.app import App
from notifier.console import console_app
from notifier.identity import Role, add_account
from notifier.residents.importer import import_residents
from notifier.runs import create_run
from tests.support.campaign import rule
from tests.support.project import write_config

PW = "correct horse battery"
FARM = "farm-subsidy-2026"
PAGE = f"/rules/{FARM}/review?on=2026-04-01"
PEOPLE = [
    ["R1", "王大明", "13800000001", "城关镇", "东村", "农村", "5"],
    ["R2", "李小红", "13800000002", "城关镇", "西村", "", "5"],
    ["R3", "张三丰", "13800000003", "城关镇", "东村", "农村", ""],
    ["R5", "钱五", "13800000005", "城关镇", "东村", "", "0"],
]


@pytest.fixture
def rapp(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "r" * 40)
    app = App.open(write_config(tmp_path, sqlite_url))
    roster = tmp_path / "people.csv"
    with roster.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [["居民编号", "姓名", "手机号码", "乡镇", "村", "户籍类型", "承包耕地面积"], *PEOPLE]
        )
    import_residents(app, roster)
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "li", frozenset({Role.OPERATOR}), password=PW)
    add_account(app, admin, "zhao", frozenset({Role.AUDITOR}), password=PW)
    yield app
    app.close()


def csrf(text: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, text
    return m.group(1)


def browser(app: App, name: str) -> TestClient:
    client = TestClient(console_app(app), base_url="http://127.0.0.1")
    page = client.get("/login")
    r = client.post(
        "/login", data={"name": name, "password": PW, "csrf": csrf(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    return client


def waiting(page: str) -> list[tuple[str, str]]:
    """(resident, missing data) of each row of the queue's table."""
    return re.findall(r'<tr data-resident="([^"]+)">(?:<td>[^<]*</td>){4}<td>([^<]*)</td>', page)


def test_the_queue_the_sheet_and_the_upload_through_the_import_check(rapp: App) -> None:
    li = browser(rapp, "li")
    page = li.get(PAGE)
    assert page.status_code == 200 and "farm-subsidy-2026 待核实名单" in page.text
    assert waiting(page.text) == [("R3", "承包耕地面积"), ("R2", "户籍类型")]  # not R5: no land
    assert "张**" in page.text and "张三丰" not in page.text and "共 2 人待核实" in page.text
    assert 'action="/import"' in page.text and 'id="review-download"' in page.text
    sheet = li.get(f"/rules/{FARM}/review.xlsx?on=2026-04-01")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("application/vnd.openxml")
    assert "review-farm-subsidy-2026-2026-04-01.xlsx" in sheet.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(sheet.content))
    ws = wb["待补录"]
    assert [c.value for c in ws[1]] == [
        "居民编号",
        "核对姓名（已隐去）",
        "核对乡镇",
        "核对村组",
        "户籍类型",
        "承包耕地面积",
    ]
    assert [c.value for c in ws["A"]][1:] == ["R3", "R2"]
    ws["F2"] = 3  # R3's land; R2 left empty
    filled = io.BytesIO()
    wb.save(filled)

    r = li.post(
        "/import",
        data={"csrf": csrf(page.text)},
        files={"roster": ("补录.xlsx", filled.getvalue(), "application/octet-stream")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    check = li.get(r.headers["location"])
    assert check.status_code == 200 and 'id="fill-in"' in check.text and "只写入已填写的单元格" in check.text
    assert li.get(PAGE).text.count("data-resident=") == 2  # nothing written before the confirmation
    done = li.post(r.headers["location"] + "/confirm", data={"csrf": csrf(check.text)})
    assert done.status_code == 200
    after = li.get(PAGE)
    assert waiting(after.text) == [("R2", "户籍类型")] and "共 1 人待核实" in after.text


def test_an_auditor_reads_the_queue_without_the_upload_and_the_run_page_links_it(rapp: App) -> None:
    zhao = browser(rapp, "zhao")
    page = zhao.get(PAGE)
    assert page.status_code == 200 and waiting(page.text) and 'action="/import"' not in page.text
    assert "花名册导入权限" in page.text
    assert zhao.get(f"/rules/{FARM}/review?on=someday").status_code == 400
    assert zhao.get("/rules/no-such-rule/review").status_code == 404
    run = create_run(rapp, rule(rapp, FARM), date(2026, 4, 1), "li").run
    shown = browser(rapp, "li").get(f"/runs/{run}")
    link = re.search(r'<a id="review-queue" href="([^"]+)">([^<]*)</a>', shown.text)
    assert link and link.group(1) == PAGE
    assert "另有 2 人因资料不全待核实" in link.group(2)
