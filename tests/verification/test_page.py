"""The public page /v (issue 13, item 2) over HTTP: a genuine code shows the item, department,
date, channel and the recipient masked; unknown and malformed codes get the same page shape
saying "not found"; unknown codes from one address hit the limit; nothing personal appears."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from notifier.app import App
from notifier.storage.schema import deliveries, run_messages
from notifier.verification import display
from notifier.verify_page import MIN_SECONDS
from notifier.web import build_web_app
from tests.support.campaign import PEOPLE, campaign
from tests.verification.conftest import LIMIT

PERSONAL = [v for p in PEOPLE for v in (p[0], p[1], p[2], p[3], p[4]) if v]  # ids, names, phones, ...


@pytest.fixture
def site(vapp: App, tmp_path: object) -> Iterator[tuple[TestClient, dict[tuple[str, str], str]]]:
    """The web app after a sent campaign, and each sent delivery's code by (resident, channel)."""
    from pathlib import Path

    campaign(vapp, Path(str(tmp_path)))
    d, m = deliveries, run_messages
    with vapp.engine.connect() as conn:
        codes = {
            (r.resident_id, r.channel): r.verify_code
            for r in conn.execute(
                sa.select(d.c.resident_id, d.c.channel, m.c.verify_code)
                .join(m, m.c.id == d.c.message_id)
                .where(d.c.status.in_(["sent", "delivered"]))
            )
        }
    with TestClient(build_web_app(vapp, webhooks=[]), base_url="http://127.0.0.1") as client:
        yield client, codes


def _shape(html: str) -> list[str]:
    """The page's tags outside the answer section: what every answer must share."""
    outside = re.sub(r"<section class=\"verify\".*?</section>", "<section/>", html, flags=re.S)
    return re.findall(r"</?[a-z]+", outside)


def _clean(html: str) -> None:
    for value in PERSONAL:
        assert value not in html, value


def test_a_genuine_code_shows_the_notice_masked(site: tuple[TestClient, dict[tuple[str, str], str]]) -> None:
    client, codes = site
    page = client.get(f"/v/{codes[('F01', 'sms')]}")
    assert page.status_code == 200 and 'data-state="genuine"' in page.text
    text = page.text
    assert "这是一份真实的通知" in text and "2026年耕地地力保护补贴" in text and "县农业农村局" in text
    assert "2026-04-01" in text and "短信" in text and "王*" in text and "138****0001" in text
    assert display(codes[("F01", "sms")]) in text and "0371-12345678" in text  # the official contact
    _clean(text)
    letter = client.get(f"/v/{codes[('F03', 'letter')]}").text
    assert "信函" in letter and "东村*" in letter and "王*" in letter
    _clean(letter)
    assert (
        page.headers["cache-control"] == "no-store"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )


def test_typed_codes_are_forgiven_and_the_form_answers_the_same(
    site: tuple[TestClient, dict[tuple[str, str], str]],
) -> None:
    client, codes = site
    code = codes[("F02", "email")]
    typed = display(code).lower().replace("0", "o").replace("1", "l")
    page = client.get("/v", params={"code": f" {typed} "})
    assert 'data-state="genuine"' in page.text and "w***@example.com" in page.text
    form = client.get("/v")
    assert form.status_code == 200 and 'name="code"' in form.text and 'data-state="form"' in form.text
    assert client.post(f"/v/{code}").status_code == 405  # never falls through to the console


def test_unknown_and_malformed_codes_get_the_same_page_shape(
    site: tuple[TestClient, dict[tuple[str, str], str]],
) -> None:
    client, codes = site
    genuine = client.get(f"/v/{codes[('F01', 'sms')]}")
    unknown = client.get("/v/0000000000")
    malformed = client.get("/v/not-a-code!")
    long = client.get("/v", params={"code": "x" * 5000})
    for page in (unknown, malformed, long):
        assert page.status_code == 200 and 'data-state="not_found"' in page.text and "未找到" in page.text
        assert _shape(page.text) == _shape(genuine.text)
        _clean(page.text)
    assert unknown.text == malformed.text == long.text  # nothing of the typed code is echoed


def test_every_answer_takes_the_same_minimum_time(
    site: tuple[TestClient, dict[tuple[str, str], str]],
) -> None:
    client, codes = site
    for path in (f"/v/{codes[('F01', 'sms')]}", "/v/0000000000", "/v/bad"):
        started = time.monotonic()
        client.get(path)
        assert time.monotonic() - started >= MIN_SECONDS


def test_unknown_codes_from_one_address_hit_the_limit(
    site: tuple[TestClient, dict[tuple[str, str], str]],
) -> None:
    client, codes = site
    for i in range(LIMIT):
        assert 'data-state="not_found"' in client.get(f"/v/{i:010d}").text
    refused = client.get("/v/0000000009")
    assert refused.status_code == 429 and "尝试的核验码过多" in refused.text
    assert _shape(refused.text) == _shape(client.get("/v").text)
    # ... genuine codes too, until the window passes: the limit is on the address, not the code
    assert client.get(f"/v/{codes[('F01', 'sms')]}").status_code == 429
