"""The self-query page /query (issue 13, item 3) over HTTP: the right 身份证号 + 姓名 shows the
resident's notices masked; a wrong name, an unknown ID and a resident without notices get the
same page; the limits per address and per ID are kept in the database (two app instances share
them); every query is audited with keyed hashes only; nothing personal reaches a URL."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from notifier.app import App
from notifier.selfquery import ACTION, count_attempts
from notifier.selfquery_page import MIN_SECONDS
from tests.selfquery.conftest import IDS, NAMES, PER_ADDRESS, PER_ID, PERSONAL, ask, client_of, csrf_of
from tests.support.campaign import audit_rows


def _without_tokens(html: str) -> str:
    return re.sub(r'name="csrf" value="[^"]+"', 'name="csrf" value=""', html)


def _clean(html: str) -> None:
    for value in PERSONAL:
        assert value not in html, value


def test_the_right_id_and_name_show_the_notices_masked(web: TestClient) -> None:
    status, text = ask(web, IDS["F01"], "王一")
    assert status == 200 and 'data-state="list"' in text
    assert "2026年耕地地力保护补贴" in text and "县农业农村局" in text and "2026-04-01" in text
    assert "短信" in text and "138****0001" in text and ("已送达" in text or "已发送" in text)
    _clean(text)
    # typed as people type: full-width digits, a lower-case x, spaces around the name
    wide = IDS["F05"].translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}).lower()
    status, text = ask(web, f" {wide} ", " 王五 ")
    assert status == 200 and 'data-state="list"' in text and "w***@example.com" in text
    _clean(text)


def test_wrong_name_unknown_id_and_no_notice_get_the_same_page(web: TestClient) -> None:
    answers = [
        ask(web, IDS["F01"], "王二"),  # a real ID with someone else's name
        ask(web, "110101195003071234", "王一"),  # an ID that is not registered
        ask(web, IDS["F06"], "王六"),  # the right pair, but no notice was sent (urban: no match)
        ask(web, "x" * 500, ""),  # nonsense
    ]
    first = answers[0]
    assert first[0] == 200 and 'data-state="none"' in first[1] and "没有找到与所填信息相符的通知" in first[1]
    for status, text in answers:
        assert status == first[0] and _without_tokens(text) == _without_tokens(first[1])
        _clean(text)


def test_every_answer_takes_the_same_minimum_time(web: TestClient) -> None:
    for id_number, name in ((IDS["F01"], "王一"), (IDS["F01"], "王二"), ("110101195003071234", "x")):
        form = web.get("/query")
        started = time.monotonic()
        web.post("/query", data={"csrf": csrf_of(form.text), "id_number": id_number, "name": name})
        assert time.monotonic() - started >= MIN_SECONDS


def test_a_post_without_its_token_or_cookie_is_refused(web: TestClient, qapp: App) -> None:
    r = web.post("/query", data={"id_number": IDS["F01"], "name": "王一"})
    assert r.status_code == 403 and 'data-state="expired"' in r.text and "138****0001" not in r.text
    token = csrf_of(web.get("/query").text)
    forged = token[:-4] + "0000"
    r = web.post("/query", data={"csrf": forged, "id_number": IDS["F01"], "name": "王一"})
    assert r.status_code == 403
    other = TestClient(web.app, base_url="http://127.0.0.1")  # the token without its cookie
    r = other.post("/query", data={"csrf": token, "id_number": IDS["F01"], "name": "王一"})
    assert r.status_code == 403
    assert audit_rows(qapp, ACTION) == []  # refused before any lookup
    assert web.get(f"/query?id_number={IDS['F01']}").text.count("138****0001") == 0  # GET never looks up
    assert web.put("/query").status_code == 405


def test_queries_from_one_address_hit_the_limit_shared_by_two_app_instances(qcfg: Path) -> None:
    """Two App instances on one database file, as two workers of `serve`: one count."""
    one, two = App.open(qcfg), App.open(qcfg)
    try:
        with client_of(one, "10.0.0.7") as a, client_of(two, "10.0.0.7") as b:
            for i in range(PER_ADDRESS):
                status, _ = ask(a if i % 2 else b, f"11010119500307{i:03d}X", "某人")
                assert status == 200
            status, text = ask(a, IDS["F01"], "王一")  # right, but over the limit
            assert status == 429 and 'data-state="limited"' in text and "请稍后再试" in text
            assert "138****0001" not in text
            assert ask(b, IDS["F01"], "王一")[0] == 429
        with client_of(two, "10.0.0.8") as c:  # another address may still ask
            assert ask(c, IDS["F01"], "王一")[0] == 200
    finally:
        one.close()
        two.close()


def test_queries_naming_one_id_hit_the_limit_from_any_address(qapp: App) -> None:
    for i in range(PER_ID):
        with client_of(qapp, f"10.1.0.{i}") as c:
            assert ask(c, IDS["F01"], "王二")[0] == 200  # a wrong name: nothing found
    with client_of(qapp, "10.1.0.99") as c:
        status, text = ask(c, IDS["F01"].lower(), "王一")  # the same ID, typed otherwise
        assert status == 429 and "138****0001" not in text
        assert ask(c, IDS["F02"], "王二")[0] == 200  # another ID is not limited


def test_concurrent_counts_from_two_workers_are_never_lost(project: Path) -> None:
    """The counter's upsert on SQLite and PostgreSQL: two App instances (two workers) counting
    the same keys at once end with every attempt counted."""
    one, two = App.open(project), App.open(project)
    now = datetime(2026, 4, 1, 4, 7, tzinfo=timezone.utc)
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(
                pool.map(
                    lambda i: count_attempts(one if i % 2 else two, ["a" * 64, "b" * 64], 900, now), range(20)
                )
            )
        assert sorted(c[0] for c in got) == list(range(1, 21)) and max(c[1] for c in got) == 20
        later = count_attempts(one, ["a" * 64], 900, now + timedelta(minutes=15))
        assert later == [1]  # a new window starts from one
    finally:
        one.close()
        two.close()


def test_every_query_is_audited_with_keyed_hashes_only(web: TestClient, qapp: App) -> None:
    ask(web, IDS["F01"], "王一")
    ask(web, IDS["F01"], "王二")
    ask(web, "110101195003071234", "王一")
    rows = audit_rows(qapp, ACTION)
    assert [p["outcome"] for _, p in rows] == ["matched", "unmatched", "unmatched"]
    assert rows[0][1]["notices"] >= 1
    assert rows[0][0] == rows[1][0] != rows[2][0]  # one ID, one subject; never the ID itself
    assert all(re.fullmatch(r"id:[0-9a-f]{32}", s) for s, _ in rows)
    text = repr(rows)
    for value in [*PERSONAL, "110101195003071234", "127.0.0.1", *NAMES.values()]:
        assert value not in text


def test_nothing_personal_in_the_url_or_the_access_log(
    web: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    form = web.get("/query")
    assert 'method="post" action="/query"' in form.text and 'method="get"' not in form.text
    r = web.post("/query", data={"csrf": csrf_of(form.text), "id_number": IDS["F01"], "name": "王一"})
    assert str(r.request.url) == "http://127.0.0.1/query" and IDS["F01"] not in str(r.url)
    assert "referrer-policy" in r.headers and r.headers["cache-control"] == "no-store"
    cookie = r.headers.get("set-cookie", "") + form.headers.get("set-cookie", "")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    for value in PERSONAL:
        assert value not in logged
