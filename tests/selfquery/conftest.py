"""A county whose register carries ID numbers, after a sent farm-subsidy campaign, with a
verification secret set, small self-query limits and the web app over HTTP."""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.samplegen import id_check_char
from notifier.web import build_web_app
from tests.support.campaign import HEADER, ON, PEOPLE, approve_all, rule, send
from tests.support.project import write_config

SECRET = "county-verification-secret-0123456789"
PER_ADDRESS, PER_ID = 6, 3


def idn(first17: str) -> str:
    return first17 + id_check_char(first17)


IDS = {p[0]: idn(f"41010219600101{i:03d}") for i, p in enumerate(PEOPLE, 1)}
NAMES = {p[0]: p[1] for p in PEOPLE}
PERSONAL = [*IDS.values(), *NAMES.values(), *(p[2] for p in PEOPLE if p[2]), *(p[3] for p in PEOPLE if p[3])]


def extra(otp: bool = False) -> str:
    return f"""
[providers.letter]
pdf = false

[verification]
contact_phone = "0371-12345678"

[selfquery]
attempts_per_address = {PER_ADDRESS}
attempts_per_id = {PER_ID}
otp = {"true" if otp else "false"}
"""


def county(folder: Path, db_url: str, otp: bool = False) -> Path:
    """The project, its register (with 身份证号) imported and the campaign sent."""
    cfg = write_config(folder, db_url, extra(otp))
    roster = folder / "people.csv"
    with roster.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([[*HEADER, "身份证号"], *([*p, IDS[p[0]]] for p in PEOPLE)])
    app = App.open(cfg)
    try:
        import_residents(app, roster)
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        approve_all(app, run_id)
        send(app, run_id)
    finally:
        app.close()
    return cfg


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_VERIFY_SECRET", SECRET)


@pytest.fixture(scope="session")
def sent_county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The county after its campaign, made once (the database path relative to the config file):
    each test works on its own copy."""
    folder = tmp_path_factory.mktemp("county")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOTIFIER_VERIFY_SECRET", SECRET)
        county(folder, "sqlite:///notifier.db")
    return folder


@pytest.fixture
def qcfg(tmp_path: Path, sent_county: Path, secret: None) -> Path:
    shutil.copytree(sent_county, tmp_path / "county")
    return tmp_path / "county" / "notifier.toml"


@pytest.fixture
def qapp(qcfg: Path) -> Iterator[App]:
    a = App.open(qcfg)
    yield a
    a.close()


def client_of(app: App, host: str = "127.0.0.1") -> TestClient:
    return TestClient(build_web_app(app, webhooks=[]), base_url=f"http://{host}", client=(host, 50000))


@pytest.fixture
def web(qapp: App) -> Iterator[TestClient]:
    with client_of(qapp) as client:
        yield client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def ask(client: TestClient, id_number: str, name: str) -> tuple[int, str]:
    """The form opened, then filled and posted: (status, body)."""
    form = client.get("/query")
    r = client.post("/query", data={"csrf": csrf_of(form.text), "id_number": id_number, "name": name})
    return r.status_code, r.text
