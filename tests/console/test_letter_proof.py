"""The letter proof (issue 13, item 1): one resident's letter of a rule as a PDF, from
`notifier rules preview RULE --letter-proof ID -o proof.pdf` and from the console's rule pages,
with the resident's name and address, 样张 in place of a verification code and the watermark;
the console audits every proof and asks rules.read."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader
from starlette.testclient import TestClient

from notifier.app import App
from notifier.identity import Role, add_account, find_account, issue_token
from notifier.residents.importer import import_residents
from notifier.web import build_web_app
from tests.support.campaign import PEOPLE, audit_rows, write_roster
from tests.support.cli import cli
from tests.support.project import write_config

PW = "correct horse battery"


@pytest.fixture
def county(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("NOTIFIER_SESSION_SECRET", "q" * 40)
    a = App.open(write_config(tmp_path, sqlite_url))
    import_residents(a, write_roster(tmp_path / "people.csv", PEOPLE))
    admin = add_account(a, None, "admin", frozenset({Role.ADMIN}), password=PW)
    add_account(a, admin, "zhang", frozenset({Role.OPERATOR}), password=PW)
    yield a
    a.close()


def _text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return "".join(p.extract_text() for p in reader.pages).replace(" ", "")


def _login(client: TestClient, name: str) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    client.post("/login", data={"name": name, "password": PW, "csrf": csrf.group(1)}, follow_redirects=False)


def test_the_cli_writes_one_residents_letter_as_a_proof(
    county: App, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert county.config.path is not None
    out = tmp_path / "proof.pdf"
    monkeypatch.delenv("NOTIFIER_TOKEN", raising=False)
    code, _, err = cli(
        capsys,
        county.config.path,
        "rules",
        "preview",
        "farm-subsidy-2026",
        "--letter-proof",
        "F03",
        "-o",
        str(out),
    )
    assert code == 1 and "NOTIFIER_TOKEN" in err and not out.exists()  # a proof names the resident: who asks?
    with county.engine.connect() as conn:
        admin = find_account(conn, "admin")
    monkeypatch.setenv("NOTIFIER_TOKEN", issue_token(county, admin, "zhang"))
    code, said, _ = cli(
        capsys, county.config.path, "rules", "preview", "farm-subsidy-2026", "--on", "2026-04-01",
        "--letter-proof", "F03", "-o", str(out),
    )  # fmt: skip
    assert code == 0 and "proof.pdf" in said
    text = _text(out.read_bytes())
    assert "王三" in text and "东村3号" in text and "样张" in text and "非正式通知" in text
    assert "2026年耕地地力保护补贴" in text and "00000-00000" not in text
    assert audit_rows(county, "rules.letter_proof") == [("rule:farm-subsidy-2026", {"resident": "F03"})]
    code, _, err = cli(
        capsys, county.config.path, "rules", "preview", "farm-subsidy-2026", "--letter-proof", "F03"
    )
    assert code != 0 and "-o" in err


def test_the_console_serves_the_proof_audited(county: App) -> None:
    with TestClient(build_web_app(county, webhooks=[]), base_url="http://127.0.0.1") as client:
        _login(client, "zhang")
        explained = client.get(
            "/rules/farm-subsidy-2026/explain", params={"resident": "F03", "on": "2026-04-01"}
        )
        assert "/rules/farm-subsidy-2026/proof?resident=F03&amp;on=2026-04-01" in explained.text
        r = client.get("/rules/farm-subsidy-2026/proof", params={"resident": "F03", "on": "2026-04-01"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        text = _text(r.content)
        assert "王三" in text and "样张" in text
        assert audit_rows(county, "rules.letter_proof") == [("rule:farm-subsidy-2026", {"resident": "F03"})]
        missing = client.get(
            "/rules/farm-subsidy-2026/proof", params={"resident": "NOPE", "on": "2026-04-01"}
        )
        assert missing.status_code == 404 and "NOPE" in missing.text
        assert client.get("/rules/farm-subsidy-2026/proof").status_code == 400  # whose proof?
