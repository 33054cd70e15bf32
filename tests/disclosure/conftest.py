"""A project with a register of named, numbered residents in two townships, the farm-subsidy rule
naming farmland public, and an approved run of it on 2026-04-01."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier import runs
from notifier.app import App
from notifier.residents.importer import import_residents
from tests.support.campaign import ON, approve_all, rule
from tests.support.project import write_config

PUBLIC = "https://notice.example.gov.cn"
EXTRA = f"""
[serve]
public_url = "{PUBLIC}"

[verification]
contact_phone = "0371-12345678"
"""


def id_number(body: str) -> str:
    """An 18-character ID number with its check digit (GB 11643, ISO 7064 MOD 11-2)."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


HEADER = [
    "居民编号",
    "姓名",
    "手机号码",
    "身份证号",
    "家庭住址",
    "乡镇",
    "村",
    "户籍类型",
    "承包耕地面积",
    "家庭人口",
]
# id, name, phone, ID number, address, township, village, registration, farmland (mu), household
PEOPLE = [
    [
        "R01",
        "欧阳明辉",
        "13800000001",
        id_number("41010119900101123"),
        "河口乡西村3号",
        "河口乡",
        "西村",
        "农村",
        "6.5",
        "4",
    ],
    [
        "R02",
        "张三丰",
        "13800000002",
        id_number("41010119850202123"),
        "城关镇东村8号",
        "城关镇",
        "东村",
        "农村",
        "3",
        "3",
    ],
    [
        "R03",
        "李四",
        "13800000003",
        id_number("41010119700303123"),
        "城关镇东村2号",
        "城关镇",
        "东村",
        "农村",
        "2",
        "",
    ],
    [
        "R04",
        "王五六",
        "",
        id_number("41010119600404123"),
        "城关镇南村5号",
        "城关镇",
        "南村",
        "农村",
        "1.5",
        "2",
    ],
    [
        "R05",
        "赵钱孙",
        "13800000005",
        id_number("41010119500505123"),
        "城关镇东村15号",
        "城关镇",
        "东村",
        "农村",
        "4",
        "5",
    ],
    [
        "R06",
        "钱七七",
        "13800000006",
        id_number("41010119400606123"),
        "城关镇东村6号",
        "城关镇",
        "东村",
        "城镇",
        "4",
        "1",
    ],
]
LISTED = ["R02", "R03", "R05", "R04", "R01"]  # township, village, then name (codepoint order)
MASKED = {"R01": "欧**辉", "R02": "张*丰", "R03": "李*", "R04": "王*六", "R05": "赵*孙"}


def project(folder: Path, db_url: str, public_fields: str = "[farmland_mu]") -> Path:
    cfg = write_config(folder, db_url, EXTRA)
    rule_file = folder / "rules" / "farm-subsidy-2026.yaml"
    rule_file.write_text(
        rule_file.read_text(encoding="utf-8").replace(
            "  disclosure: public\n", "  disclosure: public\n  document_no: 农发〔2026〕12号\n", 1
        )
        + f"public_fields: {public_fields}\n",
        encoding="utf-8",
    )
    with (folder / "p.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *PEOPLE])
    return cfg


def approved(folder: Path, db_url: str) -> tuple[App, int]:
    """The project and its approved run (sending is not needed for a list)."""
    app = App.open(project(folder, db_url))
    import_residents(app, folder / "p.csv")
    run_id = runs.create_run(app, rule(app), ON, "clerk").run
    approve_all(app, run_id)
    return app, run_id


@pytest.fixture
def listed(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[App, int]]:
    app, run_id = approved(tmp_path, sqlite_url)
    yield app, run_id
    app.close()


@pytest.fixture
def listed_on(tmp_path: Path, db_url: str) -> Iterator[tuple[App, int]]:
    """As `listed`, on SQLite and on PostgreSQL."""
    app, run_id = approved(tmp_path, db_url)
    yield app, run_id
    app.close()
