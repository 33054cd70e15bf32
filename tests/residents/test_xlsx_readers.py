"""python-calamine and openpyxl read the same workbooks into identical rows, and an import
through either gives the same report."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from notifier.app import App
from notifier.fields import BUILTIN_FIELDS
from notifier.residents.header import HeaderMatcher
from notifier.residents.readers import Table, has_error_cells, read_xlsx
from notifier.samplegen import generate, write_xlsx
from tests.support.project import write_config

ID_A = "110101195003071235"


def _typed(path: Path) -> None:
    """Cells as the import tests type them: dates, ints, floats, an ID number in a number cell,
    booleans, a time, empty cells, a title row above the header and a footer below the data."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["某村居民花名册"])
    ws.append([])
    ws.append(["居民编号", "姓名", "出生日期", "家庭人口", "人均收入", "残疾", "身份证号", "备注"])
    ws.append(["X1", "周七", date(1940, 1, 2), 4, 5200.5, "是", ID_A, " 空格 "])
    ws.append(["X2", "吴八", "not a date", 3.5, 100, "否", 410102199612010020, None])
    ws.append(["X3", None, datetime(1996, 12, 1, 8, 30), 35040, 1996.12, True, None, time(3, 4)])
    ws.append(["X4", "", -0.0, 1e20, 0.1, False, "4.1E+17", "=1+1"])
    ws.append([])
    ws.append(["合计", None, None, 11])
    wb.save(path)


def _offset(path: Path) -> None:
    """Data that starts at C3, and a first sheet without a header."""
    wb = openpyxl.Workbook()
    wb.active.title = "填表说明"
    wb.active["B2"] = "请按要求填写"
    ws = wb.create_sheet("名单")
    ws["C3"], ws["D3"] = "居民编号", "姓名"
    ws["C4"], ws["D4"] = "R1", "王五"
    ws["D6"] = "孤行"
    wb.save(path)


def _read(path: Path, reader: str, sheet: str | None = None) -> tuple[Any, ...]:
    matcher = HeaderMatcher(dict(BUILTIN_FIELDS))
    t: Table = read_xlsx(path, matcher, sheet, reader=reader)
    rows = list(t.rows)
    return t.header, t.header_row, t.sheet, rows, t.skipped


@pytest.mark.parametrize("make", [_typed, _offset])
def test_both_readers_yield_identical_rows(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "r.xlsx"
    make(path)
    calamine, openpyxl_rows = _read(path, "calamine"), _read(path, "openpyxl")
    assert calamine == openpyxl_rows
    assert calamine[3]  # rows were read at all


def test_named_sheet_and_generated_register(tmp_path: Path) -> None:
    _offset(tmp_path / "o.xlsx")
    assert _read(tmp_path / "o.xlsx", "calamine", "填表说明") == _read(
        tmp_path / "o.xlsx", "openpyxl", "填表说明"
    )
    sample = generate(300, invalid=10, seed=3)
    write_xlsx(tmp_path / "g.xlsx", sample.residents_header, sample.residents_rows)
    got = _read(tmp_path / "g.xlsx", "calamine")
    assert got == _read(tmp_path / "g.xlsx", "openpyxl") and len(got[3]) == 300


def test_error_cells_are_read_by_openpyxl(tmp_path: Path) -> None:
    """calamine reads #N/A as empty; openpyxl keeps its text, which the ID check rejects."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["居民编号", "身份证号"])
    ws.append(["R1", "#N/A"])
    wb.save(tmp_path / "e.xlsx")
    _typed(tmp_path / "t.xlsx")
    assert has_error_cells(tmp_path / "e.xlsx") and not has_error_cells(tmp_path / "t.xlsx")
    assert _read(tmp_path / "e.xlsx", "calamine")[3] == [(2, ["R1", "#N/A"])]


def test_import_report_is_the_same_through_both_readers(tmp_path: Path) -> None:
    from notifier.residents import readers
    from notifier.residents.importer import import_residents

    _typed(tmp_path / "r.xlsx")
    reports = []
    for reader in ("calamine", "openpyxl"):
        folder = tmp_path / reader
        folder.mkdir()
        app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
        try:
            readers.XLSX_READER = reader
            reports.append(import_residents(app, tmp_path / "r.xlsx").as_json())
        finally:
            readers.XLSX_READER = "calamine"
            app.close()
    assert reports[0] == reports[1] and reports[0]["rejected"] >= 1 and reports[0]["imported"] >= 2
