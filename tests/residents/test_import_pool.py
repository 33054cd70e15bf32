"""Parsing in worker processes gives exactly what parsing in process gives: the same report
(errors and warnings with row and column, counts) and the same stored rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from notifier.app import App
from notifier.residents.importer import ImportReport, import_records, import_residents
from notifier.residents.pool import IN_PROCESS, Pooling
from notifier.samplegen import GRANTS_HEADER, generate, write_csv
from notifier.storage.schema import records
from tests.support.project import write_config

SMALL = Pooling(min_rows=1_000, chunk_rows=500, workers=2, max_load=math.inf)  # whatever the load


def _roster(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    """3,000 generated rows with invalid ones, plus duplicates that span chunks: a resident id
    twice, one ID number under two resident ids, and a row that only repeats an earlier one."""
    sample = generate(3_000, invalid=40, seed=7)
    rows = [list(r) for r in sample.residents_rows]
    a, b, c = [i for i in range(10, 3_000) if i + 2 not in sample.invalid_rows and rows[i][4]][:3]
    twin = list(rows[a])
    twin[1] = "改名"
    other = list(rows[b])
    other[0] = "DUP-ID-NUMBER"
    rows[2_600:2_600] = [twin, other, list(rows[c])]
    assert (a, b, c) == (10, 11, 12)  # valid rows with an ID number: spreadsheet rows 12, 13, 14
    path = tmp_path / "roster.csv"
    write_csv(path, sample.residents_header, rows)
    return path, sample.grants_rows


def _report(r: ImportReport) -> dict[str, Any]:
    return r.as_json() | {"file": None}


def _stored(app: App) -> list[tuple[Any, ...]]:
    t = app.residents
    cols = [c for c in t.c if c.name not in ("created_at", "updated_at")]
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(t.c.resident_id))]


def test_pooled_import_equals_in_process(tmp_path: Path) -> None:
    path, grants = _roster(tmp_path)
    grants_path = tmp_path / "grants.csv"
    write_csv(grants_path, GRANTS_HEADER, grants[:2_500])
    results = []
    for name, pooling in (("pooled", SMALL), ("inline", IN_PROCESS)):
        folder = tmp_path / name
        folder.mkdir()
        app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
        try:
            first = import_residents(app, path, pooling=pooling)
            again = import_residents(app, path, pooling=pooling)
            kind = next(iter(app.dictionary.records))
            recs = import_records(app, kind, grants_path, pooling=pooling)
            with app.engine.connect() as conn:
                q = sa.select(records.c.resident_id, records.c.data, records.c.fingerprint)
                stored_records = [tuple(r) for r in conn.execute(q.order_by(records.c.fingerprint))]
            results.append((_report(first), _report(again), _report(recs), _stored(app), stored_records))
        finally:
            app.close()
    pooled, inline = results
    first = pooled[0]
    assert recs_ok(pooled[2]) and len(pooled[4]) > 500
    assert (
        first["rejected"] >= 40 and first["imported"] > 2_900 and pooled[1]["unchanged"] == first["imported"]
    )
    messages = {(e["row"], e["message"].split(":")[0]) for e in first["errors"]}
    assert {(2_602, "duplicate of row 12"), (2_604, "duplicate of row 14")} <= messages  # 5 chunks later
    assert any(e["row"] == 2_603 and "one person, one resident" in e["message"] for e in first["errors"])
    assert pooled == inline


def recs_ok(report: dict[str, Any]) -> bool:
    return bool(report["imported"]) and report["rejected"] == len({e["row"] for e in report["errors"]})


def test_small_files_and_single_workers_stay_in_process() -> None:
    idle = math.inf  # whatever the machine's load
    assert not Pooling(min_rows=1_000, workers=2, max_load=idle).wanted(999)
    assert Pooling(min_rows=1_000, workers=2, max_load=idle).wanted(1_000)
    assert not Pooling(min_rows=1_000, workers=2, max_load=idle).wanted(None)
    assert not Pooling(min_rows=10, workers=1, max_load=idle).wanted(10_000)  # rows: one worker is slower
    assert Pooling(min_rows=10, workers=1, max_load=idle).wanted_text(10_000)  # text: one forked worker
    busy = -1.0  # no load average is under it
    assert not Pooling(min_rows=10, workers=2, max_load=busy).wanted(10_000)
    assert not Pooling(min_rows=10, workers=1, max_load=busy).wanted_text(10_000)
