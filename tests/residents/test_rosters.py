"""Rosters as counties really keep them: title and footer rows, several sheets, duplicated people,
cells typed by hand, one transaction, honest counts and encodings, bounded input (issue 9, 5-9)."""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.cli import main
from notifier.errors import InputError
from notifier.residents.importer import import_residents
from notifier.samplegen import id_check_char
from tests.support.project import write_config


def idn(first17: str) -> str:
    return first17 + id_check_char(first17)


ID_A = idn("11010119500307123")  # born 1950-03-07
ID_B = idn("41010219961201002")  # born 1996-12-01


def write(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def stored(app: App) -> dict[str, sa.Row[Any]]:
    with app.engine.connect() as conn:
        return {r.resident_id: r for r in conn.execute(sa.select(app.residents))}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else {}), err


# -- 5: title rows, footer rows, sheets -------------------------------------------------------


def test_title_and_footer_rows_keep_spreadsheet_row_numbers(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "r.csv",
        [
            ["2026年东村低保对象花名册", "", "", ""],
            ["", "", "", ""],
            ["居民编号", "姓名", "人均收入", "备注"],
            ["R1", "王建国", "5000", ""],
            ["R2", "李秀英", "约5000", ""],  # row 5: rejected, numbered as shown
            ["合  计", "", "5000", ""],
            ["制表人：张三", "审核人：李四", "", ""],
            ["填表日期：2026年3月1日", "", "", ""],
        ],
    )
    report = import_residents(app, f)
    assert (report.header_row, report.imported, report.rejected) == (3, 1, 1)
    assert [(e.row, e.column) for e in report.errors] == [(5, "人均收入")]
    skipped = [w for w in report.warnings if "not a resident" in w.message]
    assert [w.row for w in skipped] == [6, 7, 8] and "合计" in skipped[0].message
    assert set(stored(app)) == {"R1"}


def test_xlsx_uses_the_sheet_with_the_header_or_the_named_one(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(tmp_path, sqlite_url))
    wb = openpyxl.Workbook()
    notes = wb.active
    notes.title = "填表说明"
    notes.append(["请按要求填写"])
    ws = wb.create_sheet("花名册")
    ws.append(["东村2026年花名册"])
    ws.merge_cells("A1:C1")
    ws.append(["居民编号", "姓名", "家庭人口"])
    ws.append(["X1", "周七", "4人"])
    ws.append(["小计", None, 4])
    wb.save(tmp_path / "r.xlsx")
    code, out, _ = cli(capsys, "--config", cfg, "residents", "import", str(tmp_path / "r.xlsx"), "--json")
    assert code == 0 and (out["sheet"], out["header_row"], out["imported"]) == ("花名册", 2, 1)
    assert out["warnings"][0]["row"] == 4
    code, _, err = cli(
        capsys, "--config", cfg, "residents", "import", str(tmp_path / "r.xlsx"), "--sheet", "Sheet9"
    )
    assert code == 1 and "no sheet named 'Sheet9'" in err and "花名册" in err and "Traceback" not in err
    code, _, err = cli(
        capsys, "--config", cfg, "residents", "import", str(tmp_path / "r.xlsx"), "--sheet", "填表说明"
    )
    assert code == 1 and "no resident id column" in err
    code, out, _ = cli(
        capsys,
        "--config",
        cfg,
        "residents",
        "import",
        str(tmp_path / "r.xlsx"),
        "--sheet",
        "花名册",
        "--json",
    )
    assert code == 0 and (out["sheet"], out["unchanged"]) == ("花名册", 1)


# -- 6: one person, one resident ------------------------------------------------------------


def test_one_id_number_one_resident_in_the_file_and_against_the_register(app: App, tmp_path: Path) -> None:
    first = write(
        tmp_path / "a.csv",
        [
            ["居民编号", "姓名", "身份证号", "出生日期"],
            ["R1", "王建国", ID_A, ""],  # birth date taken from the ID
            [
                "R2",
                "王建国",
                "\u200b" + ID_A.translate(str.maketrans("0123456789", "０１２３４５６７８９")) + " ",
                "",
            ],
            ["Ｒ1\u200b", "王建国", ID_A, "1950-03-07"],  # the same resident id, normalised
            ["R3", "李秀英", ID_B.lower(), "1996-12-02"],  # contradicts the ID: warning, kept
        ],
    )
    report = import_residents(app, first)
    assert (report.imported, report.rejected) == (2, 2)
    by_row = {e.row: e.message for e in report.errors}
    assert (
        "already resident R1's (row 2)" in by_row[3]
        and ID_A not in by_row[3]
        and "110101********" in by_row[3]
    )
    assert "duplicate of row 2" in by_row[4]
    assert any(w.row == 5 and "contradicts" in w.message for w in report.warnings)
    people = stored(app)
    assert people["R1"].f_birth_date == date(1950, 3, 7) and people["R3"].f_birth_date == date(1996, 12, 2)
    second = write(tmp_path / "b.csv", [["居民编号", "身份证号"], ["R9", ID_A], ["R1", ID_A]])
    report = import_residents(app, second)
    assert (report.imported, report.rejected, report.unchanged) == (0, 1, 1)
    assert report.errors[0].row == 2 and "already resident R1's in the register" in report.errors[0].message
    assert stored(app)["R1"].f_birth_date == date(1950, 3, 7)


# -- 7: cells as people type them --------------------------------------------------------------


def test_cells_as_people_type_them(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "r.csv",
        [
            [
                "居民编号",
                "身份证号码（18位）",
                "联系电话(手机)",
                "耕地面积",
                "家庭人口",
                "人均收入",
                "是否残疾",
                "户口性质",
                "出生日期",
            ],
            [
                "R1",
                ID_A,
                "13812345678 / 13900001111",
                "8.5亩",
                "3人",
                "480元",
                "√",
                "农业",
                "18329",
            ],  # Excel serial
            ["R2", "", "13812345679", "1", "1", "1", "✓", "农业", "1996.12"],  # month only: field needs a day
            ["R3", "4.10102E+17", "", "", "", "", "有", "农业", ""],  # ID saved as a number
            ["R4", "", "", "", "", "", "", "farm", ""],  # enum error lists spellings
        ],
    )
    report = import_residents(app, f)
    assert (report.imported, report.rejected) == (1, 3)
    msg = {e.row: (e.column, e.message) for e in report.errors}
    assert (
        msg[3][0] == "出生日期" and "only a year and month" in msg[3][1] and "precision: month" in msg[3][1]
    )
    assert msg[4][0] == "身份证号码（18位）" and "format the ID column as text" in msg[4][1]
    assert msg[5][0] == "户口性质" and "农业户口" in msg[5][1] and "fields.yaml" in msg[5][1]
    assert any(
        w.row == 2 and "more than one number" in w.message and "138****5678" in w.message
        for w in report.warnings
    )
    r = stored(app)["R1"]
    assert (r.f_farmland_mu, r.f_household_size, r.f_income_per_capita) == (Decimal("8.5"), 3, Decimal("480"))
    assert r.f_disabled is True and r.phone == "+8613812345678" and r.id_number == ID_A
    assert r.f_birth_date == date(1950, 3, 7)


def test_month_precision_and_xlsx_number_cells(project: Path, tmp_path: Path) -> None:
    fields = project.parent / "rules" / "fields.yaml"
    fields.write_text(
        fields.read_text(encoding="utf-8").replace(
            "birth_date:        {type: date,", "birth_date:        {type: date, precision: month,"
        ),
        encoding="utf-8",
    )
    app = App.open(project)
    try:
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["居民编号", "出生日期", "身份证号", "残疾"])
        ws.append(["X1", 1996.12, None, "√"])
        ws.append(["X2", 35040, None, "×"])  # a date cell shown as its serial
        ws.append(["X3", "1996年12月", 410102199612010020, "是"])  # an ID number typed into a number cell
        ws.append(["X4", "1996.12", ID_B, "是"])  # month from the cell, day from the ID
        wb.save(tmp_path / "r.xlsx")
        report = import_residents(app, tmp_path / "r.xlsx")
        assert [(e.row, e.column) for e in report.errors] == [(4, "身份证号")]
        assert "stored as a number" in report.errors[0].message
        people = stored(app)
        assert people["X1"].f_birth_date == date(1996, 12, 1) and people["X2"].f_birth_date == date(
            1995, 12, 7
        )
        assert people["X2"].f_disabled is False and people["X4"].f_birth_date == date(1996, 12, 1)
        assert report.encoding is None and report.sheet == "Sheet"
    finally:
        app.close()


# -- 8: one transaction, unchanged, encodings --------------------------------------------------


def test_identical_reimport_is_unchanged(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(write_config(tmp_path, sqlite_url))
    f = write(
        tmp_path / "r.csv",
        [
            ["居民编号", "姓名", "手机号码", "人均收入", "出生日期", "户口性质"],
            ["R1", "王建国", "13812345678", "12,000", "1950-03-07", "农业"],
            ["R2", "李秀英", "", "", "", ""],
        ],
        encoding="gbk",
    )
    code, out, _ = cli(capsys, "--config", cfg, "residents", "import", str(f), "--json")
    assert code == 0 and (out["imported"], out["encoding"], out["header_row"]) == (2, "gb18030", 1)
    code, out, _ = cli(capsys, "--config", cfg, "residents", "import", str(f), "--json")
    assert (out["imported"], out["updated"], out["unchanged"]) == (0, 0, 2)
    write(f, [["居民编号", "人均收入"], ["R1", "12000.00"], ["R2", "1"]])
    code = main(["--config", cfg, "residents", "import", str(f)])
    out_text = capsys.readouterr().out
    assert (
        code == 0 and "updated 1, unchanged 1" in out_text.replace("\n", " ") and "encoding utf-8" in out_text
    )


def _trigger(app: App, resident_id: str) -> None:
    """A real database failure part-way through the import (as a full disk would be)."""
    with app.engine.begin() as conn:
        if app.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER boom BEFORE INSERT ON residents WHEN NEW.resident_id = '{resident_id}' "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.resident_id = "
                f"'{resident_id}' THEN RAISE EXCEPTION 'disk full (injected)'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON residents FOR EACH ROW EXECUTE FUNCTION boom()"
            )


def test_failure_part_way_leaves_the_register_as_it_was(
    app: App, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import_residents(
        app, write(tmp_path / "a.csv", [["居民编号", "姓名", "人均收入"], ["R0001", "王建国", "100"]])
    )
    before = stored(app)
    with app.engine.connect() as conn:
        events = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
    _trigger(app, "R4500")  # the third batch: two batches were already written
    rows = [["居民编号", "姓名", "人均收入"], ["R0001", "王建国", "999"]] + [
        [f"R{i}", "某某", "1"] for i in range(2, 5001)
    ]
    code, _, err = cli(
        capsys, "--config", str(project), "residents", "import", str(write(tmp_path / "b.csv", rows))
    )
    assert code == 1 and "rolled back, the register is exactly as it was" in err and "injected" in err
    assert "Traceback" not in err
    assert stored(app) == before
    with app.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one() == events


def test_big5_and_other_mojibake_is_refused(app: App, tmp_path: Path) -> None:
    text = "居民編號,姓名,家庭住址,戶口性質\nR1,王建國,城關鎮東村一號,農業戶口\nR2,陳麗華,河口鄉西村,農村\n"
    (tmp_path / "big5.csv").write_bytes(text.encode("big5"))
    with pytest.raises(InputError, match="not UTF-8 or GBK.*Big5"):
        import_residents(app, tmp_path / "big5.csv")
    (tmp_path / "sjis.csv").write_bytes("居民编号,姓名\nR1,さとう\n".encode("shift_jis", errors="replace"))
    with pytest.raises(InputError, match="not UTF-8 or GBK"):
        import_residents(app, tmp_path / "sjis.csv")
    assert stored(app) == {}
    rare = write(
        tmp_path / "gbk.csv",
        [
            ["居民编号", "姓名", "家庭住址"],
            ["R1", "王喆", "城关镇东村一号"],
            ["R2", "李堃", "河口乡西村二号"],
        ],
        encoding="gbk",
    )
    assert import_residents(app, rare).imported == 2  # names with a few rare characters still import


# -- 9: bounded input ---------------------------------------------------------------------------


def test_long_cells_are_refused_with_row_and_column(app: App, tmp_path: Path) -> None:
    f = write(
        tmp_path / "r.csv",
        [["居民编号", "姓名", "备注"], ["R1", "王" * 10_001, "x" * 50_000], ["R2", "李四", ""]],
    )
    report = import_residents(app, f)
    assert (report.imported, report.rejected) == (1, 1)
    assert (report.errors[0].row, report.errors[0].column) == (
        2,
        "姓名",
    ) and "10,001 characters" in report.errors[0].message
    huge = write(tmp_path / "h.csv", [["居民编号", "姓名"], ["R1", "x" * 200_000]])
    with pytest.raises(InputError, match="limited to 10,000 characters"):
        import_residents(app, huge)


def test_zip_bomb_is_refused_before_reading(app: App, tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["居民编号", "姓名"])
    wb.save(tmp_path / "ok.xlsx")
    bomb = tmp_path / "bomb.xlsx"
    with (
        zipfile.ZipFile(tmp_path / "ok.xlsx") as src,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info, src.read(info))
        with dst.open("xl/worksheets/sheet1.xml", "w") as member:
            chunk = b" " * (1 << 20)
            for _ in range(48):  # 48 MiB of blanks: ~50 KB compressed
                member.write(chunk)
    with pytest.raises(InputError, match="refused, part xl/worksheets/sheet1.xml would expand"):
        import_residents(app, bomb)
