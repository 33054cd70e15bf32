"""Public 公示 lists (issue 13, item 4): the PDF and HTML hold the masked names in order and no
raw name, ID number, phone or address; the validity, department, 文号 and SHA-256 are printed;
the QR code is segno's encoding of the self-query URL; the stored HTML and PDF hash to what the
audit log recorded; the website marks a list past its period expired (the day is passed in)."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path

import pytest
from pypdf import PdfReader
from starlette.testclient import TestClient

from notifier import runs
from notifier.app import App
from notifier.channels.letter.pdf import qr_code
from notifier.disclosure import (
    list_pdf_bytes,
    list_rows,
    publish_list,
    published_list,
    published_lists,
    rows_sha256,
)
from notifier.disclosure.render import columns
from notifier.disclosure.rows import ListRow
from notifier.errors import NotFound
from notifier.web import build_web_app
from tests.disclosure.conftest import LISTED, MASKED, PEOPLE, PUBLIC
from tests.support.campaign import ON, audit_rows, rule

RAW = [v for p in PEOPLE for v in (p[1], p[2], p[3], p[4]) if v]  # names, phones, ID numbers, addresses


def _published(app: App, on: date = ON, days: int = 7) -> tuple[int, str, bytes]:
    done = publish_list(app, rule(app), on, "clerk", days=days)
    item, page = published_list(app, done.id)
    return done.id, page, (app.config.base_dir / item.pdf_path).read_bytes()


def _in_order(text: str, values: list[str]) -> None:
    spots = [text.find(v) for v in values]
    assert all(s >= 0 for s in spots), [v for v, s in zip(values, spots, strict=True) if s < 0]
    assert spots == sorted(spots), values


def test_the_pdf_holds_the_masked_names_in_order_and_nothing_personal(listed: tuple[App, int]) -> None:
    app, run_id = listed
    list_id, _, pdf = _published(app)
    reader = PdfReader(Path(app.config.base_dir / published_list(app, list_id)[0].pdf_path))
    assert [round(float(x) * 25.4 / 72) for x in reader.pages[0].mediabox.upper_right] == [210, 297]  # A4
    text = "".join(p.extract_text() for p in reader.pages)
    _in_order(text, [MASKED[r] for r in LISTED])
    for raw in RAW:
        assert raw not in text, raw
    assert "钱*七" not in text  # urban: not in the run's audience
    assert "2026年耕地地力保护补贴发放公示名单\n" in text and "县农业农村局" in text
    assert "农发〔2026〕12号" in text and "公示期：2026年4月1日 至 2026年4月7日" in text
    assert "0371-12345678" in text and f"{PUBLIC}/query" in text and "第 1 页 / 共 1 页" in text
    (event,) = [p for _, p in audit_rows(app, "list.published")]
    assert text.count(f"批次 {run_id} · 名单 SHA-256 {event['sha256']}") == 2  # under the list, in the footer
    # household size where the register has it, the public field with its unit, 共 5 户
    assert "家庭人口" in text and "承包耕地面积" in text and "6.5 亩" in text and "共 5 户" in text


def test_the_html_matches_and_the_hashes_are_the_audited_ones(listed: tuple[App, int]) -> None:
    app, run_id = listed
    list_id, page, pdf = _published(app)
    body = re.sub(r"<[^>]+>", "|", page.split("<body>", 1)[1])
    _in_order(body, [MASKED[r] for r in LISTED])
    for raw in RAW:
        assert raw not in page, raw
    ((subject, event),) = audit_rows(app, "list.published")
    assert subject == f"list:{list_id}"
    assert event["html_sha256"] == hashlib.sha256(page.encode("utf-8")).hexdigest()
    assert event["pdf_sha256"] == hashlib.sha256(pdf).hexdigest()
    assert event["sha256"] == rows_sha256(list_rows(app, run_id, rule(app).public_fields))
    assert (event["rule"], event["run"], event["rows"]) == ("farm-subsidy-2026", run_id, 5)
    assert (event["valid_from"], event["valid_until"]) == ("2026-04-01", "2026-04-07")
    assert not any(raw in str(event) for raw in RAW + list(MASKED.values()))  # no names in the log


def test_the_qr_code_is_segnos_encoding_of_the_self_query_url(listed: tuple[App, int]) -> None:
    app, _ = listed
    list_id, _, _ = _published(app)
    page = PdfReader(app.config.base_dir / published_list(app, list_id)[0].pdf_path).pages[0]
    (name,) = re.findall(rb"/([^\s/]+) Do", page.get_contents().get_data())
    image = next(i for i in page.images if i.name.rsplit(".", 1)[0] == name.decode())
    expected = [[int(b) for b in row] for row in qr_code(f"{PUBLIC}/query").matrix]
    pixels, n = image.image.convert("L"), len(expected)
    assert pixels.size == (n + 8, n + 8)
    assert [[int(pixels.getpixel((x + 4, y + 4)) < 128) for x in range(n)] for y in range(n)] == expected


def test_the_website_marks_a_list_past_its_period_expired(listed: tuple[App, int]) -> None:
    app, _ = listed
    list_id, page, pdf = _published(app, days=3)  # 4/1 .. 4/3
    day = [date(2026, 4, 3)]
    with TestClient(
        build_web_app(app, webhooks=[], today=lambda: day[0]), base_url="http://127.0.0.1"
    ) as web:
        index = web.get("/lists")
        assert index.status_code == 200 and f'href="/lists/{list_id}"' in index.text
        shown = web.get(f"/lists/{list_id}")
        assert shown.text == page and "已过公示期" not in shown.text  # exactly what was published
        assert "unsafe-inline" in shown.headers["content-security-policy"]
        assert "script" not in shown.headers["content-security-policy"]
        got = web.get(f"/lists/{list_id}.pdf")
        assert got.headers["content-type"] == "application/pdf" and got.content == pdf
        day[0] = date(2026, 4, 4)
        shown = web.get(f"/lists/{list_id}")
        assert (
            "已过公示期" in shown.text
            and shown.text.replace(
                '<p class="expired" role="alert">已过公示期：本名单公示期已结束，仅供查阅。</p>\n', ""
            )
            == page
        )
        index = web.get("/lists")
        assert f'href="/lists/{list_id}"' not in index.text and "当前没有处于公示期的名单" in index.text
        assert web.get("/lists/999").status_code == 404
        assert web.post(f"/lists/{list_id}").status_code == 405  # the public view is read-only
        (app.config.base_dir / published_list(app, list_id)[0].pdf_path).write_bytes(pdf + b"%")
        assert web.get(f"/lists/{list_id}.pdf").status_code == 404  # changed since: never served


def test_the_latest_listed_run_on_the_day_is_used_and_none_is_said_clearly(listed: tuple[App, int]) -> None:
    app, run_id = listed
    with pytest.raises(NotFound, match=r"no approved or completed run dated on or before 2026-03-31"):
        publish_list(app, rule(app), date(2026, 3, 31), "clerk")
    later = runs.create_run(app, rule(app), date(2026, 5, 1), "clerk").run  # awaiting approval
    done = publish_list(app, rule(app), date(2026, 5, 2), "clerk")
    assert done.run == run_id and later != run_id  # an unapproved run is never listed
    runs.cancel_run(app, run_id, "clerk")
    with pytest.raises(NotFound, match="farm-subsidy-2026"):
        publish_list(app, rule(app), date(2026, 5, 2), "clerk")


def test_a_published_list_reads_back_on_each_database(listed_on: tuple[App, int]) -> None:
    app, run_id = listed_on
    done = publish_list(app, rule(app), date(2026, 4, 2), "clerk", days=1)
    (back,) = published_lists(app)
    assert back == published_list(app, done.id)[0]
    assert (back.run, back.valid_from, back.valid_until, back.rows) == (
        run_id,
        date(2026, 4, 2),
        date(2026, 4, 2),
        5,
    )
    assert [back.state(date(2026, 4, d)) for d in (1, 2, 3)] == ["upcoming", "current", "expired"]
    assert back.as_json()["published_by"] == "clerk"
    again = publish_list(app, rule(app), date(2026, 4, 2), "clerk", days=1)  # the same list once more
    for item in published_lists(app):
        assert hashlib.sha256(list_pdf_bytes(app, item)).hexdigest() == item.pdf_sha256
    assert again.id != done.id


def test_columns_for_household_size_and_amount_only_when_some_row_has_them() -> None:
    bare = [
        ListRow("张*三", "城关镇", "东村"),
        ListRow("李*", "城关镇", "东村", public={"承包耕地面积": "2 亩"}),
    ]
    assert columns(bare) == ["序号", "乡镇（街道）", "村（社区）", "户主姓名", "承包耕地面积"]
    sized = [*bare, ListRow("王*", "河口乡", "西村", household_size=3)]
    assert "家庭人口（人）" in columns(sized) and "金额（元）" not in columns(sized)
