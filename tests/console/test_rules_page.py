"""规则 in the console over HTTP: every rule listed without reading the register, one rule's counts
equal to the preview service's, masked samples per channel, explain by 居民编号 or by a masked
search, rule problems shown in Chinese, and the permission each page needs."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.clock import local_today
from notifier.identity import Role, add_account
from notifier.preview import explain, preview
from notifier.residents.importer import import_residents
from notifier.residents.search import search_residents
from notifier.rules.load import load_rules, rule_files
from notifier.scheduling.approval import approve_rule
from notifier.web import build_web_app

from ..support.campaign import PEOPLE, rule, write_roster

PW = "correct horse battery"
ON = date(2026, 4, 1)
FARM = "farm-subsidy-2026"


@pytest.fixture
def county(app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> App:
    """The pipeline's village (one resident per channel, one without contact, one urban, one
    without land) and the demo's rules; an admin, an operator, a reviewer and an auditor."""
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "q" * 40)
    import_residents(app, write_roster(tmp_path / "people.csv", PEOPLE))
    admin = add_account(app, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(app, admin, "zhang", frozenset({Role.OPERATOR}), password=PW, display="张科员")
    add_account(app, admin, "li", frozenset({Role.REVIEWER}), levels=[1], password=PW, display="李科长")
    add_account(app, admin, "zhao", frozenset({Role.AUDITOR}), password=PW)
    return app


def logged_in(app: App, name: str) -> TestClient:
    client = TestClient(build_web_app(app), base_url="http://127.0.0.1")
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    r = client.post(
        "/login", data={"name": name, "password": PW, "csrf": csrf.group(1)}, follow_redirects=False
    )
    assert r.status_code == 303
    return client


@pytest.fixture
def zhang(county: App) -> Iterator[TestClient]:
    with logged_in(county, "zhang") as client:
        yield client


def cell(page: str, cell_id: str) -> str:
    m = re.search(rf'<td id="{cell_id}">([^<]*)', page)
    assert m, cell_id
    return m.group(1)


def test_the_list_shows_every_rule_and_never_reads_the_register(county: App, zhang: TestClient) -> None:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(county.engine, "before_cursor_execute", seen)
    try:
        page = zhang.get("/rules")
    finally:
        sa.event.remove(county.engine, "before_cursor_execute", seen)
    assert page.status_code == 200 and "<h1>规则</h1>" in page.text
    loaded, _ = load_rules(
        rule_files(county.config.rules_dir), county.dictionary, county.config.templates_dir
    )
    assert len(loaded) == 3
    for r in loaded.values():
        assert f'href="/rules/{r.id}"' in page.text and r.item.title in page.text
        assert f"<code>{r.version[:12]}</code>" in page.text
    assert "一次，2026-04-01 09:00" in page.text and "定期（cron） <code>0 9 5 * *</code>" in page.text
    assert "2026-01-01 至 2027-12-31" in page.text and "短信、电子邮件、纸质信函" in page.text
    assert page.text.count("已通过 0 / 2 级审核") == 3 and "内置测试通过 8 项" in page.text
    assert not [s for s in statements if "residents" in s]  # no count is computed for the list
    assert "count-match" not in page.text

    approve_rule(county, rule(county), "account:3:li")
    page = zhang.get("/rules")
    assert page.text.count("已通过 0 / 2 级审核") == 2 and "已通过 1 / 2 级审核" in page.text
    assert "1. 科室审核：li" in page.text


def test_the_menu_leads_to_the_rules(zhang: TestClient) -> None:
    home = zhang.get("/")
    assert '<a href="/rules">规则</a>' in home.text


def test_a_rules_counts_and_cost_are_the_preview_services(county: App, zhang: TestClient) -> None:
    page = zhang.get(f"/rules/{FARM}", params={"on": ON.isoformat()})
    assert page.status_code == 200
    expected = preview(county, rule(county), ON)
    assert [int(cell(page.text, f"count-{k}")) for k in ("match", "review", "no_match")] == [
        expected.counts["match"],
        expected.counts["review"],
        expected.counts["no_match"],
    ]
    assert expected.counts == {"match": 5, "review": 1, "no_match": 1}
    for channel, n in expected.by_channel.items():
        assert int(cell(page.text, f"channel-{channel}")) == n
    assert int(cell(page.text, "sms-segments")) == expected.sms_segments > 0
    assert cell(page.text, "sms-cost") == f"¥{expected.sms_cost:.2f}" and "每条 ¥0.05" in page.text
    assert "因缺少数据需核实：有承包耕地 1" in page.text


def test_samples_per_channel_are_masked(zhang: TestClient) -> None:
    page = zhang.get(f"/rules/{FARM}", params={"on": ON.isoformat()}).text
    samples = page.split("样例通知（已脱敏）")[1]
    assert all(f"<h3>{ch}</h3>" in samples for ch in ("短信", "电子邮件", "纸质信函"))
    assert "居民 F01 · 2 条短信计费" in samples  # SMS with its segments
    assert "2026年耕地地力保护补贴发放公示（东村）" in samples  # the e-mail's subject
    assert "王*（城关镇东村）：" in samples  # the letter, as text
    assert "<p>" not in samples.split("<h3>纸质信函</h3>")[1].split("</article>")[0]
    for person in PEOPLE:
        name, phone, email = person[1], person[2], person[3]
        assert name not in page and (not phone or phone not in page) and (not email or email not in page)


def test_a_date_outside_the_window_warns_and_a_bad_date_is_refused(zhang: TestClient) -> None:
    page = zhang.get("/rules/rural-housing-repair-2026", params={"on": "2026-01-01"})
    assert page.status_code == 200
    assert (
        "2026-01-01 不在 &#39;rural-housing-repair-2026&#39; 的公示期内（2026-03-01 至 2027-12-31）"
        in page.text
    )
    assert "按 2026-01-01 创建发送批次会被拒绝" in page.text
    bad = zhang.get(f"/rules/{FARM}", params={"on": "2026-13-01"})
    assert bad.status_code == 400 and "请按 2026-03-02 的格式填写日期" in bad.text
    assert "count-match" not in bad.text


def test_without_a_date_the_page_shows_today_in_the_configured_timezone(
    county: App, zhang: TestClient
) -> None:
    before = local_today(county.config.timezone).isoformat()
    page = zhang.get(f"/rules/{FARM}").text
    after = local_today(county.config.timezone).isoformat()
    shown = re.search(r'id="on" name="on" type="date" value="([^"]*)"', page)
    assert shown and shown.group(1) in (before, after)


def test_explain_by_resident_id_shows_each_condition(county: App, zhang: TestClient) -> None:
    page = zhang.get(f"/rules/{FARM}/explain", params={"resident": "F07", "on": ON.isoformat()})
    assert page.status_code == 200
    expected = explain(county, rule(county), "F07", ON)
    assert expected.result == "review" and html.escape(expected.summary) in page.text
    for c in expected.conditions:
        assert html.escape(c["text"]) in page.text
    assert '<tr class="condition unknown"><td>有承包耕地</td><td>无法判断（缺少数据）</td>' in page.text
    assert "承包耕地面积无数据" in page.text and "<strong>需核实</strong>" in page.text
    urban = zhang.get(f"/rules/{FARM}/explain", params={"resident": "F06", "on": ON.isoformat()})
    assert "<strong>不符合</strong>：不符合条件：农村户籍。" in urban.text
    assert '<tr class="condition fail"><td>农村户籍</td><td>不符合</td>' in urban.text


def test_an_unknown_resident_gets_a_clear_message(zhang: TestClient) -> None:
    page = zhang.get(f"/rules/{FARM}/explain", params={"resident": "NOBODY", "on": ON.isoformat()})
    assert page.status_code == 404
    assert "花名册中没有居民编号为 NOBODY 的居民。请核对编号，或在下方按姓名查找。" in page.text


def test_a_masked_search_finds_the_resident_to_explain(zhang: TestClient) -> None:
    page = zhang.get(f"/rules/{FARM}/explain", params={"name": "王", "village": "东村", "on": ON.isoformat()})
    assert page.status_code == 200 and "查找结果（已脱敏）" in page.text
    rows = re.findall(r"<tr><td>(F\d\d)</td><td>([^<]*)</td><td>([^<]*)</td>", page.text)
    assert [r[0] for r in rows] == ["F01", "F02", "F03", "F04", "F05", "F06"]  # not F07 of 西村
    assert rows[0][1:] == ("王*", "138****0001")
    assert "王一" not in page.text and "13800000001" not in page.text
    assert f"/rules/{FARM}/explain?resident=F01&amp;on=2026-04-01" in page.text
    none = zhang.get(f"/rules/{FARM}/explain", params={"name": "赵", "on": ON.isoformat()})
    assert "没有找到居民" in none.text
    village_only = zhang.get(f"/rules/{FARM}/explain", params={"village": "东村", "on": ON.isoformat()})
    assert village_only.status_code == 400 and "请填写居民姓名中的字" in village_only.text


def test_a_search_is_capped(county: App) -> None:
    found = search_residents(county, "王", limit=2)
    assert [f.resident_id for f in found.found] == ["F01", "F02"] and found.more
    assert not search_residents(county, "王").more
    assert search_residents(county, "%").found == []  # LIKE wildcards are literal


def test_rule_problems_are_shown_in_chinese_and_the_others_still_listed(
    county: App, zhang: TestClient
) -> None:
    farm = (county.config.rules_dir / f"{FARM}.yaml").read_text(encoding="utf-8")
    good = farm.replace(f"id: {FARM}", "id: broken-one")
    broken = county.config.rules_dir / "broken-one.yaml"
    broken.write_text(good.replace("field: farmland_mu", "field: incom"), encoding="utf-8")
    page = zhang.get("/rules")
    assert page.status_code == 200 and "发现 1 个问题" in page.text
    assert "<td>broken-one.yaml</td><td>18</td><td>未知的字段 &#39;incom&#39;</td>" in page.text
    assert f'href="/rules/{FARM}"' in page.text
    one = zhang.get("/rules/broken-one")
    assert one.status_code == 409 and "该规则文件有错误，修正前不会使用" in one.text
    assert "未知的字段 &#39;incom&#39;" in one.text
    broken.write_text(good, encoding="utf-8")
    fixed = zhang.get("/rules")  # the check is made again for the changed file
    assert "发现" not in fixed.text and 'href="/rules/broken-one"' in fixed.text


def test_an_unknown_rule_is_not_found(zhang: TestClient) -> None:
    for url in ("/rules/no-such-rule", "/rules/no-such-rule/explain"):
        r = zhang.get(url)
        assert r.status_code == 404 and "未找到" in r.text


@pytest.mark.parametrize(
    ("name", "allowed"), [("zhang", True), ("li", True), ("zhao", True), ("admin", False)]
)
def test_each_rules_page_needs_the_rules_permission(county: App, name: str, allowed: bool) -> None:
    """Operators and reviewers (and auditors, who hold rules.read as for `rules preview`) see the
    pages; an administrator does not, and the refusal is audited."""
    with logged_in(county, name) as client:
        for url in ("/rules", f"/rules/{FARM}?on=2026-04-01", f"/rules/{FARM}/explain?resident=F01"):
            r = client.get(url)
            if allowed:
                assert r.status_code == 200, (name, url)
            else:
                assert r.status_code == 403 and "无权访问" in r.text, (name, url)
        assert ('<a href="/rules">' in client.get("/").text) is allowed
    from notifier.storage.schema import audit_events

    with county.engine.connect() as conn:
        refused = conn.execute(
            sa.select(sa.func.count()).where(audit_events.c.action == "account.refused")
        ).scalar_one()
    assert refused == (0 if allowed else 3)


def test_a_template_that_fails_for_some_residents_is_reported_in_chinese(
    county: App, zhang: TestClient
) -> None:
    sms = county.config.templates_dir / "farm_subsidy.sms.j2"
    sms.write_text(sms.read_text(encoding="utf-8") + "{{ resident.email }}", encoding="utf-8")
    page = zhang.get(f"/rules/{FARM}", params={"on": ON.isoformat()})
    assert page.status_code == 200
    missing = "resident.email 对该居民没有值（会显示为空或“None”）"
    warning = re.search(r"farm_subsidy.sms.j2 第 \d+ 行：([^<]*)（1 位居民）", page.text)  # F01
    assert warning and warning.group(1).startswith(missing)
    sample = page.text.split("<h3>短信</h3>")[1].split("</article>")[0]
    assert "居民 F01" in sample and "无法生成" in sample and missing in sample
    listing = zhang.get("/rules")  # what `rules check` says of the template
    assert f"对缺少规则未要求的数据的符合条件居民：{missing}" in listing.text
