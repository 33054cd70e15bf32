"""`rules review`: the residents farm-subsidy-2026 (农村户籍 and 有承包耕地) cannot decide, with
exactly the fields that would decide; the fill-in sheet read back with openpyxl; the filled sheet
imported through `residents import` completes them (bad cells and unknown ids rejected by row and
column, empty cells left missing); `runs create` says how many still wait."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from notifier.app import App
from notifier.residents.importer import import_residents
from notifier.rules.compile import FAIL, PASS, UNKNOWN
from notifier.rules.model import Combinator, FieldCondition
from notifier.rules.reviewqueue import review_queue, undecided
from notifier.storage.schema import audit_events
from tests.support.campaign import rule
from tests.support.cli import cli

ON = date(2026, 4, 1)
FARM = "farm-subsidy-2026"
HEADER = ["居民编号", "姓名", "手机号码", "乡镇", "村", "户籍类型", "承包耕地面积"]
PEOPLE = [
    ["R1", "王大明", "13800000001", "城关镇", "东村", "农村", "5"],  # match
    ["R2", "李小红", "13800000002", "城关镇", "西村", "", "5"],  # review: 户籍类型
    ["R3", "张三丰", "13800000003", "城关镇", "东村", "农村", ""],  # review: 承包耕地面积
    ["R4", "赵四", "13800000004", "城关镇", "东村", "", ""],  # review: both
    ["R5", "钱五", "13800000005", "城关镇", "东村", "", "0"],  # no land: no_match whatever 户籍 is
    ["R6", "孙六", "13800000006", "城关镇", "西村", "城镇", ""],  # urban: no_match whatever the land
    ["R7", "周七", "13800000007", "城关镇", "西村", "", ""],  # review: both
]
FIXED = ["居民编号", "核对姓名（已隐去）", "核对乡镇", "核对村组"]


@pytest.fixture
def register(app: App, tmp_path: Path) -> App:
    path = tmp_path / "people.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *PEOPLE])
    assert import_residents(app, path).imported == len(PEOPLE)
    return app


def queued(app: App) -> list[tuple[str, tuple[str, ...]]]:
    return [(w.resident_id, w.missing) for w in review_queue(app, rule(app, FARM), ON).shown]


def stored(app: App, *ids: str) -> dict[str, tuple[Any, ...]]:
    t = app.residents
    q = sa.select(t.c.resident_id, t.c.name, t.c.f_registration, t.c.f_farmland_mu).where(
        t.c.resident_id.in_(ids)
    )
    with app.engine.connect() as conn:
        return {r[0]: tuple(r[1:]) for r in conn.execute(q)}


def test_only_the_undecided_with_the_fields_that_would_decide(register: App) -> None:
    q = review_queue(register, rule(register, FARM), ON)
    # township/village/id order (东村 before 西村), not id order; R5 and R6 fail another condition
    assert [(w.resident_id, w.name, w.village, w.missing) for w in q.shown] == [
        ("R3", "张**", "东村", ("farmland_mu",)),
        ("R4", "赵*", "东村", ("registration", "farmland_mu")),
        ("R2", "李**", "西村", ("registration",)),
        ("R7", "周*", "西村", ("registration", "farmland_mu")),
    ]
    assert q.total == 4 and q.by_village == {"城关镇 东村": 2, "城关镇 西村": 2}
    assert q.by_field == {"registration": 3, "farmland_mu": 3}
    assert q.labels == {"registration": "户籍类型", "farmland_mu": "承包耕地面积"}
    assert review_queue(register, rule(register, FARM), ON, limit=1).shown[0].resident_id == "R3"


def test_a_missing_part_of_a_passing_any_does_not_count() -> None:
    def leaf(i: str, f: str) -> FieldCondition:
        return FieldCondition(i, i, f, "equals", 1, "review", (1, 1))

    tree = Combinator(
        "all", (Combinator("any", (leaf("a", "x"), leaf("b", "y")), (1, 1)), leaf("c", "z")), (1, 1)
    )
    assert undecided(tree, {"a": UNKNOWN, "b": PASS, "c": UNKNOWN}) == ["c"]
    assert undecided(tree, {"a": UNKNOWN, "b": FAIL, "c": UNKNOWN}) == ["a", "c"]
    assert undecided(tree, {"a": UNKNOWN, "b": UNKNOWN, "c": FAIL}) == []
    assert undecided(Combinator("not", (tree,), (1, 1)), {"a": UNKNOWN, "b": FAIL, "c": PASS}) == ["a"]


def test_the_cli_table_json_and_the_fill_in_sheet(
    register: App, project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = project
    code, out, _ = cli(capsys, cfg, "rules", "review", FARM, "--on", ON.isoformat(), "--json")
    assert code == 0 and out["total"] == 4 and out["by_village"] == {"城关镇 东村": 2, "城关镇 西村": 2}
    assert out["residents"][1] == {
        "resident": "R4",
        "name": "赵*",
        "township": "城关镇",
        "village": "东村",
        "missing": [
            {"field": "registration", "label": "户籍类型"},
            {"field": "farmland_mu", "label": "承包耕地面积"},
        ],
    }
    code, text, _ = cli(capsys, cfg, "rules", "review", FARM, "--on", ON.isoformat())
    assert code == 0 and "4 in review" in text and "户籍类型、承包耕地面积" in text and "赵*" in text
    assert "赵四" not in text and "城关镇 西村" in text
    sheet = tmp_path / "out" / "待补录.xlsx"
    code, out, _ = cli(
        capsys, cfg, "rules", "review", FARM, "--on", ON.isoformat(), "-o", str(sheet), "--json"
    )
    assert code == 0 and out["residents"] == 4 and out["columns"] == ["户籍类型", "承包耕地面积"]
    wb = openpyxl.load_workbook(sheet)
    assert wb.sheetnames == ["待补录", "填写说明"]
    ws = wb["待补录"]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows == [
        [*FIXED, "户籍类型", "承包耕地面积"],
        ["R3", "张**", "城关镇", "东村", None, None],
        ["R4", "赵*", "城关镇", "东村", None, None],
        ["R2", "李**", "城关镇", "西村", None, None],
        ["R7", "周*", "城关镇", "西村", None, None],
    ]
    assert ws.protection.sheet
    open_cells = {
        (c.row, c.column) for row in ws.iter_rows(min_row=2) for c in row if not c.protection.locked
    }
    assert open_cells == {(2, 6), (3, 5), (3, 6), (4, 5), (5, 5), (5, 6)}  # only what each resident lacks
    assert "农村" in ws["E1"].comment.text and "亩" in ws["F1"].comment.text
    lists = [dv.formula1 for dv in ws.data_validations.dataValidation if dv.type == "list"]
    assert lists == ['"农村,城镇"']
    guide = "\n".join(str(r[0]) for r in wb["填写说明"].iter_rows(values_only=True) if r[0])
    assert (
        "留空" in guide
        and "notifier residents import" in guide
        and "户籍类型：从下列值中选填：农村、城镇" in guide
    )
    code, _, err = cli(capsys, cfg, "rules", "review", FARM, "-o", str(tmp_path / "x.csv"))
    assert code != 0 and ".xlsx" in err


def test_the_filled_sheet_completes_residents_and_the_queue_shrinks(
    register: App, project: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = project
    sheet = tmp_path / "sheet.xlsx"
    assert (
        cli(capsys, cfg, "rules", "review", FARM, "--on", ON.isoformat(), "-o", str(sheet), "--json")[0] == 0
    )
    wb = openpyxl.load_workbook(sheet)
    ws = wb["待补录"]
    ws["F2"] = "4.5"  # R3: land -> decided (match)
    ws["E3"] = "农业户口"  # R4: 户籍 filled, land left empty -> still in review, for the land only
    ws["E4"] = "火星"  # R2: not a spelling of 户籍类型 -> the row is rejected, nothing written
    ws["E5"], ws["F5"] = "农村", "很多"  # R7: one good cell, one bad: nothing of the row is written
    ws.append(["R99", "某*", "城关镇", "东村", "农村", None])  # row 6: no such resident
    wb.save(sheet)
    before = stored(register, "R2", "R7")
    code, out, _ = cli(capsys, cfg, "residents", "import", str(sheet), "--dry-run", "--json")
    assert code == 3 and out["fill_in"] and out["updated"] == 2 and queued(register)[0][0] == "R3"
    code, out, _ = cli(capsys, cfg, "residents", "import", str(sheet), "--json")
    assert code == 3 and out["fill_in"] and (out["imported"], out["updated"], out["rejected"]) == (0, 2, 3)
    assert {(e["row"], e["column"]) for e in out["errors"]} == {
        (4, "户籍类型"),
        (5, "承包耕地面积"),
        (6, "居民编号"),
    }
    assert out["warnings"] == []  # the identity columns are read by the cadre only
    got = stored(register, "R2", "R3", "R4", "R7", "R99")
    assert got["R3"][0] == "张三丰" and float(got["R3"][2]) == 4.5  # the masked name never written
    assert got["R4"][1:] == ("rural", None)
    assert (
        got["R2"] == before["R2"] and got["R7"] == before["R7"] == ("周七", None, None) and "R99" not in got
    )
    assert queued(register) == [
        ("R4", ("farmland_mu",)),
        ("R2", ("registration",)),
        ("R7", ("registration", "farmland_mu")),
    ]
    with register.engine.connect() as conn:
        payloads = conn.execute(
            sa.select(audit_events.c.payload).where(audit_events.c.action == "residents.import")
        ).scalars()
        details = [json.loads(p) for p in payloads]
    assert [d.get("fill_in") for d in details] == [None, True] and details[-1]["rejected_rows"] == [4, 5, 6]

    code, out, _ = cli(
        capsys, cfg, "runs", "create", FARM, "--on", ON.isoformat(), "--by", "tester", "--json"
    )
    assert code == 0 and out["review"] == 3
    assert out["review_note"] == f"另有 3 人因资料不全待核实，见 notifier rules review {FARM}"
    code, text, _ = cli(capsys, cfg, "runs", "create", FARM, "--on", "2026-04-02", "--by", "tester")
    assert code == 0 and f"另有 3 人因资料不全待核实，见 notifier rules review {FARM}" in text
