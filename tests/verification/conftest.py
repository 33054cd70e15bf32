"""A county whose farm-subsidy SMS template prints the verification code and URL, with a secret
set and a small per-address limit on unknown codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.app import App
from notifier.residents.importer import import_residents
from tests.support.campaign import PEOPLE, write_roster
from tests.support.project import write_config

SECRET = "county-verification-secret-0123456789"
LIMIT = 4
EXTRA = f"""
[serve]
public_url = "https://notice.example.gov.cn"

[verification]
contact_phone = "0371-12345678"
failures_per_address = {LIMIT}
"""


@pytest.fixture
def vapp(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("NOTIFIER_VERIFY_SECRET", SECRET)
    cfg = write_config(tmp_path, db_url, EXTRA)
    sms = tmp_path / "templates" / "farm_subsidy.sms.j2"
    sms.write_text(
        sms.read_text(encoding="utf-8").rstrip() + " 核验码{{ verify_code }} {{ verify_url }}\n", "utf-8"
    )
    a = App.open(cfg)
    import_residents(a, write_roster(tmp_path / "people.csv", PEOPLE))
    yield a
    a.close()
