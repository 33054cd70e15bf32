"""A 公示 list of a household rule with an amount: one row per household head, its size counted
from the register's households, the amount as the notice stated it (the household's sum)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from notifier import runs
from notifier.app import App
from notifier.disclosure import list_rows
from notifier.residents.importer import import_residents
from tests.disclosure.conftest import EXTRA
from tests.support.campaign import ON, rule
from tests.support.project import write_config

HEADER = [
    "居民编号",
    "姓名",
    "手机号码",
    "家庭住址",
    "乡镇",
    "村",
    "户籍类型",
    "承包耕地面积",
    "户号",
    "户主",
]
PEOPLE = [
    ["H1", "张大山", "13800000011", "东村1号", "城关镇", "东村", "农村", "4", "HH1", "是"],
    ["H2", "张小山", "", "东村1号", "城关镇", "东村", "农村", "2", "HH1", "否"],
    ["H3", "张山妹", "", "东村1号", "城关镇", "东村", "城镇", "", "HH1", "否"],  # a member who does not match
    ["H4", "李一平", "13800000014", "东村2号", "城关镇", "东村", "农村", "1.5", "HH2", "是"],
]


def test_one_row_per_household_with_its_size_and_the_stated_amount(tmp_path: Path, sqlite_url: str) -> None:
    cfg = write_config(tmp_path, sqlite_url, EXTRA)
    rule_file = tmp_path / "rules" / "farm-subsidy-2026.yaml"
    text = rule_file.read_text(encoding="utf-8")
    rule_file.write_text(
        text.replace(
            "match:\n",
            "amount: {per: {param: subsidy_per_mu, times_field: farmland_mu}}\nnotify: household\nmatch:\n",
            1,
        ),
        encoding="utf-8",
    )
    with (tmp_path / "h.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *PEOPLE])
    app = App.open(cfg)
    try:
        import_residents(app, tmp_path / "h.csv")
        run_id = runs.create_run(app, rule(app), ON, "clerk").run
        rows = list_rows(app, run_id, [])
        assert [(r.name_masked, r.household_size, r.amount) for r in rows] == [
            ("张*山", 3, Decimal("660.00")),  # (4 + 2) mu x 110 元: the household's sum, to its head
            ("李*平", 1, Decimal("165.00")),
        ]
    finally:
        app.close()
