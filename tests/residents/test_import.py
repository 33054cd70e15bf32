"""Residents and records import: encodings, Chinese headers, located rejections, upserts."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.errors import InputError
from notifier.residents.importer import import_records, import_residents
from notifier.storage.schema import audit_events, records

HEADER = [
    "居民编号",
    "姓名",
    "身份证号",
    "手机号码",
    "电子邮箱",
    "家庭住址",
    "乡镇",
    "村",
    "户口性质",
    "房屋等级",
    "人均收入",
    "是否低保对象",
    "出生日期",
    "备注",
]
ROWS = [
    [
        "R001",
        "王建国",
        "110101195003071235",
        "138 1234 5678",
        "",
        "一号",
        "城关镇",
        "东村",
        "农业户口",
        "D级",
        "12,000",
        "否",
        "1950-03-07",
        "x",
    ],
    [
        "R002",
        "李秀英",
        "",
        "+86-139-0000-1111",
        "li@example.com",
        "二号",
        "城关镇",
        "东村",
        "农村",
        "C",
        "",
        "是",
        "1962/5/1",
        "",
    ],
    ["", "无编号", "", "13800000000", "", "", "", "", "农村", "A", "5000", "否", "", ""],  # row 4: no id
    [
        "R004",
        "张三",
        "110101199003071234",
        "",
        "",
        "",
        "",
        "",
        "农村",
        "A",
        "5000",
        "否",
        "",
        "",
    ],  # row 5: bad check digit
    [
        "R005",
        "赵四",
        "",
        "0371-65123456",
        "zhao@",
        "五号",
        "河口乡",
        "西村",
        "城镇",
        "B",
        "约5000",
        "否",
        "",
        "",
    ],  # row 6: bad income
    [
        "R006",
        "钱五",
        "",
        "12345",
        "qian@example.com",
        "六号",
        "河口乡",
        "西村",
        "非农业",
        "B",
        "3000",
        "Y",
        "1980-02-30",
        "",
    ],  # row 7: bad date
    [
        "R007",
        "孙六",
        "",
        "12345",
        "sun@",
        "七号",
        "河口乡",
        "西村",
        "非农业",
        "B",
        "3000",
        "N",
        "1980-02-28",
        "",
    ],  # row 8: ok, warnings
    ["R001", "王建国", "", "", "", "", "", "", "农村", "D", "1", "否", "", ""],  # row 9: duplicate
]


def write(path: Path, rows: list[list[str]], encoding: str = "gbk", header: list[str] = HEADER) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def stored(app: App) -> dict[str, sa.Row[Any]]:
    with app.engine.connect() as conn:
        return {r.resident_id: r for r in conn.execute(sa.select(app.residents))}


def test_gbk_import_reports_exact_rejections_and_keeps_valid_rows(app: App, tmp_path: Path) -> None:
    report = import_residents(app, write(tmp_path / "r.csv", ROWS))
    assert report.exit_code == 3
    assert (report.imported, report.updated, report.rejected) == (3, 0, 5)
    assert sorted({(e.row, e.column) for e in report.errors}) == [
        (4, "居民编号"),
        (5, "身份证号"),
        (6, "人均收入"),
        (7, "出生日期"),
        (9, "resident_id"),
    ]
    assert any("check digit" in e.message for e in report.errors if e.row == 5)
    assert "110101********1234" in next(e.message for e in report.errors if e.row == 5)  # masked
    warned = {(w.row, w.column) for w in report.warnings}
    assert {(1, "备注"), (6, "电子邮箱"), (8, "手机号码"), (8, "电子邮箱")} <= warned
    people = stored(app)
    assert set(people) == {"R001", "R002", "R007"}
    a = people["R001"]
    assert (a.phone, a.phone_kind, a.f_registration, a.f_house_grade) == (
        "+8613812345678",
        "mobile",
        "rural",
        "D",
    )
    assert (
        a.f_income_per_capita == Decimal("12000")
        and a.f_dibao is False
        and a.f_birth_date == date(1950, 3, 7)
    )
    b = people["R002"]
    assert (
        b.phone == "+8613900001111"
        and b.email == "li@example.com"
        and b.f_income_per_capita is None
        and b.f_dibao is True
    )
    assert b.f_birth_date == date(1962, 5, 1)
    g = people["R007"]
    assert g.phone is None and g.email is None and g.f_registration == "urban"


def test_reimport_updates_only_present_columns(app: App, tmp_path: Path) -> None:
    import_residents(app, write(tmp_path / "r.csv", ROWS[:2], encoding="utf-8-sig"))
    report = import_residents(
        app,
        write(
            tmp_path / "u.csv",
            [["R001", "0371-65123456", "30000"], ["R009", "", ""]],
            header=["编号", "联系电话", "家庭人均年收入"],
            encoding="utf-8",
        ),
    )
    assert (report.imported, report.updated, report.rejected) == (1, 1, 0)
    a = stored(app)["R001"]
    assert a.phone == "+8637165123456" and a.phone_kind == "landline"
    assert a.f_income_per_capita == Decimal("30000") and a.name == "王建国" and a.f_house_grade == "D"


def test_dry_run_changes_nothing(app: App, tmp_path: Path) -> None:
    report = import_residents(app, write(tmp_path / "r.csv", ROWS), dry_run=True)
    assert (report.imported, report.rejected) == (3, 5)
    assert stored(app) == {}
    with app.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one() == 0


def test_xlsx_with_typed_cells(app: App, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["居民编号", "姓名", "出生日期", "家庭人口", "人均收入", "残疾"])
    ws.append(["X1", "周七", date(1940, 1, 2), 4, 5200.5, "是"])
    ws.append(["X2", "吴八", "not a date", 3.5, 100, "否"])
    wb.save(tmp_path / "r.xlsx")
    report = import_residents(app, tmp_path / "r.xlsx")
    assert (report.imported, report.rejected) == (1, 1)
    assert sorted((e.row, e.column) for e in report.errors) == [(3, "出生日期"), (3, "家庭人口")]
    x = stored(app)["X1"]
    assert (
        x.f_birth_date == date(1940, 1, 2)
        and x.f_household_size == 4
        and x.f_income_per_capita == Decimal("5200.5")
    )


def test_file_level_errors(app: App, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no resident id column"):
        import_residents(app, write(tmp_path / "a.csv", [["x"]], header=["姓名"]))
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="not UTF-8 or GBK"):
        import_residents(app, tmp_path / "b.csv")
    with pytest.raises(InputError, match="both hold"):
        import_residents(app, write(tmp_path / "c.csv", [["1", "2"]], header=["居民编号", "编号"]))


def test_records_import(app: App, tmp_path: Path) -> None:
    import_residents(app, write(tmp_path / "r.csv", ROWS[:2]))
    g = write(
        tmp_path / "g.csv",
        [
            ["R001", "危房改造", "2024-05-10", "20000"],
            ["R404", "低保", "2024-01-01", "1"],
            ["R002", "火星补贴", "2024-01-01", "1"],
        ],
        header=["居民编号", "补助类别", "发放日期", "金额"],
    )
    report = import_records(app, "grants", g)
    assert (report.imported, report.rejected) == (1, 2)
    assert sorted(e.row for e in report.errors) == [3, 4]  # type: ignore[type-var]
    again = import_records(app, "grants", g)
    assert (again.imported, again.unchanged) == (0, 1)
    with app.engine.connect() as conn:
        rows = conn.execute(sa.select(records)).all()
    assert (
        len(rows) == 1
        and rows[0].record_date == date(2024, 5, 10)
        and rows[0].data["item_domain"] == "rural_housing_repair"
    )
    with pytest.raises(InputError, match='did you mean "grants"'):
        import_records(app, "grant", g)
