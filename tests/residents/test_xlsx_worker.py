"""An XLSX sheet read and parsed by a forked worker (pool.wanted_sheet) imports exactly as it does
in process: the same report (row numbers, errors, warnings, skipped footer rows, duplicates) and
the same stored rows, with title and blank rows above the header, data rows among the rows the
header was searched in, footer and empty rows, typed cells and bad rows. A worker that fails
(raises, is killed, cannot be forked) leaves the import to this process from the row after the
last chunk it sent, so nothing is lost or read twice; an error both paths raise is raised."""

from __future__ import annotations

import logging
import math
import os
import signal
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from notifier import forked
from notifier.app import App
from notifier.errors import InputError
from notifier.fields import BUILTIN_FIELDS
from notifier.residents import pool, readers
from notifier.residents.header import HeaderMatcher
from notifier.residents.importer import import_records, import_residents
from notifier.residents.pool import IN_PROCESS, Pooling
from notifier.samplegen import GRANTS_HEADER, generate, write_xlsx
from notifier.storage.schema import records
from tests.support.project import write_config
from tests.support.threads import call

WORKER = Pooling(min_rows=500, chunk_rows=150, workers=1, min_workers=1, max_load=math.inf)
ALONE = Pooling(min_rows=1 << 62, chunk_rows=150)  # in process, in the same chunks (errors' order)
ROWS = 1_400


def _workbook(path: Path, *, errors: bool = False) -> None:
    """A first sheet of instructions (no header), then the roster: a title, a blank row and a note
    above the header (row 4), so rows 5-10 are read with the header search; footer, blank and
    whitespace rows among the data and at its end; typed cells (dates, datetimes, ints, floats,
    booleans, an ID number typed as a number); generated bad rows; duplicates chunks apart."""
    sample = generate(ROWS, invalid=40, seed=21)
    header = sample.residents_header
    col = {h: i for i, h in enumerate(header)}
    rows: list[list[Any]] = [[c if c != "" else None for c in r] for r in sample.residents_rows]
    for i, r in enumerate(rows):
        if i % 3 == 0 and r[col["出生日期"]]:
            try:
                y, m, d = map(int, str(r[col["出生日期"]]).split("-"))
                r[col["出生日期"]] = date(y, m, d) if i % 2 else datetime(y, m, d)
            except ValueError:  # a generated bad date stays text
                pass
        if i % 4 == 0 and str(r[col["家庭人口数"]] or "").isdigit():
            r[col["家庭人口数"]] = int(r[col["家庭人口数"]])
        if i % 5 == 0 and r[col["家庭人均年收入"]]:
            try:
                r[col["家庭人均年收入"]] = float(r[col["家庭人均年收入"]]) + 0.25
            except ValueError:
                pass
        if i % 7 == 0 and r[col["是否低保对象"]] in ("是", "否"):
            r[col["是否低保对象"]] = r[col["是否低保对象"]] == "是"
    rows[30][col["身份证号"]] = 410102199612010020  # an ID number typed as a number: rejected
    rows[31][col["承包耕地面积"]] = "二亩"  # not a number: rejected
    twin = list(rows[3])
    twin[col["姓名"]] = "改名"  # the resident id of spreadsheet row 10 again, 1,000 rows later
    other = list(rows[4])
    other[col["居民编号"]] = "DUP-ID-NUMBER"  # the ID number of row 11 under another resident id
    rows[1_000:1_000] = [twin, other]
    rows[600:600] = [[None] * 5, ["小计", None, 600], [" ", "\t"], [], [None, "无编号的行"]]
    rows[2:2] = [[], ["合计", 3]]  # among the rows read with the header search (rows 7-8)
    rows += [[], ["合计", None, ROWS], ["制表人：李四"], [None, None]]
    wb = openpyxl.Workbook(write_only=True)
    wb.create_sheet("填表说明").append(["请按要求填写"])
    ws = wb.create_sheet("名单")
    ws.append(["某村居民花名册"])
    ws.append([])
    ws.append(["（单位：元）"])
    ws.append(header)
    for r in rows:
        ws.append(r)
    if errors:
        ws.append(["E1", None, None, None, "#N/A"])  # the ID number: text to openpyxl, rejected
    wb.save(path)
    if errors:  # the cell typed as an error, as Excel writes #N/A
        _error_cell(path)


def _error_cell(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    name = "xl/worksheets/sheet2.xml"
    xml = parts[name].decode()
    at = xml.rindex('t="inlineStr"')
    end = xml.index("</c>", at)
    parts[name] = (xml[:at] + 't="e"><v>#N/A</v>' + xml[end:]).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in parts.items():
            zf.writestr(n, data)


@pytest.fixture(scope="module")
def roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xlsx") / "roster.xlsx"
    _workbook(path)
    return path


def _stored(app: App) -> list[tuple[Any, ...]]:
    t = app.residents
    cols = [c for c in t.c if c.name not in ("created_at", "updated_at")]
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(t.c.resident_id))]


def _import(folder: Path, path: Path, pooling: Pooling, from_thread: bool = False) -> tuple[Any, ...]:
    folder.mkdir()
    app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
    try:
        got: list[Any] = []

        def run() -> None:
            try:
                got.append(import_residents(app, path, pooling=pooling).as_json() | {"file": None})
            except Exception as exc:  # compared with what the other path raises
                got.append(exc)

        call(run, from_thread=from_thread)
        return got[0], _stored(app)
    finally:
        app.close()


class Forks:
    """Counts the sheet workers started and the messages this process received from them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started = 0
        self.messages: list[str] = []
        start, messages = forked.Child.start, forked.Child.messages

        def counted_start(work: Any) -> Any:
            child = start(work)
            self.started += child is not None
            return child

        def counted(child: Any) -> Any:
            for m in messages(child):
                self.messages.append(m[0])
                yield m

        monkeypatch.setattr(forked.Child, "start", staticmethod(counted_start))
        monkeypatch.setattr(forked.Child, "messages", counted)


@pytest.fixture
def inline(roster: Path, tmp_path: Path) -> tuple[Any, ...]:
    return _import(tmp_path / "inline", roster, ALONE)


def test_the_roster_exercises_what_it_should(roster: Path, inline: tuple[Any, ...]) -> None:
    table = readers.read_xlsx(roster, HeaderMatcher(dict(BUILTIN_FIELDS)))
    assert table.sheet_rows is not None  # read by calamine
    types = {type(c) for _, cells in table.rows for c in cells}
    assert {str, int, float, bool, datetime} <= types
    report, stored = inline
    assert report["header_row"] == 4 and report["sheet"] == "名单"
    assert report["imported"] > ROWS - 60 and len(stored) == report["imported"]
    errors = {(e["row"], e["message"].split(":")[0]) for e in report["errors"]}
    assert (1_012, "duplicate of row 10") in errors  # row 10: read with the header search
    assert any(e["row"] == 1_013 and "one person, one resident" in e["message"] for e in report["errors"])
    assert any(e["message"] == "resident id is missing" and e["row"] == 611 for e in report["errors"])
    footers = [w["row"] for w in report["warnings"] if "not a resident: skipped" in w["message"]]
    assert footers == [8, 608, 1_415, 1_416]  # one among the header search's rows
    assert report["rejected"] >= 40


def test_a_sheet_parsed_by_a_forked_worker_imports_as_in_process(
    roster: Path, tmp_path: Path, inline: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    forks = Forks(monkeypatch)
    with caplog.at_level(logging.WARNING, "notifier.forked"):
        pooled = _import(tmp_path / "pooled", roster, WORKER)
    assert forks.started == 1 and not caplog.records
    assert forks.messages == ["chunk"] * 10 + ["end"]  # 1,400 residents' rows in chunks of 150
    assert pooled == inline


@pytest.mark.parametrize("chunk_rows", [1, 7, 5_000])
def test_any_chunk_size_gives_the_same_import(
    roster: Path, tmp_path: Path, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One row a chunk (footer rows between every two), and one chunk of all rows."""
    pooling = Pooling(min_rows=500, chunk_rows=chunk_rows, workers=1, min_workers=1, max_load=math.inf)
    alone = Pooling(min_rows=1 << 62, chunk_rows=chunk_rows)
    forks = Forks(monkeypatch)
    assert _import(tmp_path / "a", roster, pooling) == _import(tmp_path / "b", roster, alone)
    assert forks.started == 1 and forks.messages[-1] == "end"


def _failing_in_the_child(monkeypatch: pytest.MonkeyPatch, how: str, at: int) -> None:
    """parse_chunk in the worker only (not in this process) fails on its `at`-th chunk; at 0 the
    worker is killed after its last chunk, before it sends its end (and the footer rows after)."""
    parent, calls, parse, cut = os.getpid(), [0], pool.parse_chunk, pool.chunks

    def cut_short(rows: Any, size: int) -> Any:
        yield from cut(rows, size)
        if os.getpid() != parent and at == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    def flaky(chunk: Any, p: Any) -> Any:
        if os.getpid() != parent:
            calls[0] += 1
            if calls[0] == at:
                if how == "raise":
                    raise MemoryError("no memory in the worker")
                os.kill(os.getpid(), signal.SIGKILL)
        return parse(chunk, p)

    monkeypatch.setattr(pool, "parse_chunk", flaky)
    monkeypatch.setattr(pool, "chunks", cut_short)


@pytest.mark.parametrize(
    ("how", "at"), [("raise", 1), ("raise", 4), ("kill", 1), ("kill", 6), ("kill", 10), ("kill", 0)]
)
def test_a_failing_worker_leaves_the_rest_to_this_process(
    roster: Path,
    tmp_path: Path,
    inline: tuple[Any, ...],
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
    how: str,
    at: int,
) -> None:
    """Before the first chunk, after some, before the last one or after it (before its end)."""
    _failing_in_the_child(monkeypatch, how, at)
    forks = Forks(monkeypatch)
    with caplog.at_level(logging.WARNING, "notifier.forked"):
        pooled = _import(tmp_path / "pooled", roster, WORKER)
    sent = at - 1 if at else 10
    assert forks.started == 1 and forks.messages[:sent] == ["chunk"] * sent
    assert forks.messages[sent:] == []  # (a failure is not a message: logged, below)
    assert ("MemoryError" in caplog.text) == (how == "raise")
    assert pooled == inline


def test_no_fork_parses_in_process(
    roster: Path, tmp_path: Path, inline: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    forks = Forks(monkeypatch)
    assert _import(tmp_path / "pooled", roster, WORKER) == inline and forks.started == 0


def test_an_error_of_both_paths_is_raised_and_nothing_is_stored(
    roster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk no process can parse: the worker's failure hands it to this process, which raises
    what the in-process import raises; the transaction is rolled back."""
    parse = pool.parse_chunk

    def broken(chunk: Any, p: Any) -> Any:
        if any(n == 700 for n, _ in chunk):
            raise RuntimeError("cannot parse row 700")
        return parse(chunk, p)

    monkeypatch.setattr(pool, "parse_chunk", broken)
    forks = Forks(monkeypatch)
    (pooled, stored), (inline, stored_inline) = (
        _import(tmp_path / "a", roster, WORKER),
        _import(tmp_path / "b", roster, ALONE),
    )
    assert forks.started == 1 and forks.messages == ["chunk"] * 4  # then it failed (logged)
    assert isinstance(pooled, RuntimeError) and isinstance(inline, RuntimeError)
    assert str(pooled) == str(inline) == "cannot parse row 700"
    assert stored == stored_inline == []


def test_an_unreadable_workbook_is_the_same_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """calamine reads the workbook in this process, before any worker: its error is today's."""
    good = tmp_path / "good.xlsx"
    _workbook(good)
    with zipfile.ZipFile(good) as zf:
        parts = {i.filename: zf.read(i) for i in zf.infolist()}
    bad = tmp_path / "bad.xlsx"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in parts.items():
            zf.writestr(n, data[: len(data) // 2] if n == "xl/workbook.xml" else data)
    forks = Forks(monkeypatch)
    (pooled, _), (inline, _) = _import(tmp_path / "a", bad, WORKER), _import(tmp_path / "b", bad, IN_PROCESS)
    assert isinstance(pooled, InputError) and str(pooled) == str(inline)
    assert "not a readable XLSX workbook" in str(pooled) and forks.started == 0


def test_openpyxl_workbooks_and_threads_stay_in_process(
    tmp_path: Path, roster: Path, inline: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workbook with error cells is read by openpyxl, a file as it goes: never forked; neither
    is a process running other threads (the console): a child could inherit a held lock."""
    errors = tmp_path / "errors.xlsx"
    _workbook(errors, errors=True)
    assert readers.has_error_cells(errors)
    forks = Forks(monkeypatch)
    pooled, inline_errors = _import(tmp_path / "a", errors, WORKER), _import(tmp_path / "b", errors, ALONE)
    assert pooled == inline_errors and any(
        e["row"] == ROWS + 18 and e["column"] == "身份证号" for e in pooled[0]["errors"]
    )
    assert _import(tmp_path / "c", roster, WORKER, from_thread=True) == inline
    assert forks.started == 0


def test_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    idle = math.inf
    assert Pooling(min_rows=1_000, workers=1, max_load=idle).wanted_sheet(1_000)
    assert not Pooling(min_rows=1_000, workers=1, max_load=idle).wanted_sheet(999)
    assert not Pooling(min_rows=1_000, workers=1, max_load=idle).wanted_sheet(None)
    assert not IN_PROCESS.wanted_sheet(10**9)
    assert not Pooling(min_rows=10, workers=1, max_load=-1.0).wanted_sheet(10_000)  # no idle core
    assert not Pooling(min_rows=10, workers=1, min_text_workers=2, max_load=idle).wanted_sheet(10_000)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # no core but this process's: no worker
    assert not Pooling(min_rows=10, max_load=idle).wanted_sheet(10_000)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert Pooling(min_rows=10, max_load=idle).wanted_sheet(10_000)
    monkeypatch.setattr(pool, "_forks", lambda: False)  # other threads run: spawning would reload
    assert not Pooling(min_rows=10, max_load=idle).wanted_sheet(10_000)


def test_records_from_a_sheet_parsed_by_a_forked_worker(
    roster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`records import` reads its chunks the same way (parsed_table)."""
    sample = generate(ROWS, invalid=40, seed=21)
    grants = tmp_path / "grants.xlsx"
    write_xlsx(grants, GRANTS_HEADER, [*sample.grants_rows[:300], ["合计"], [], *sample.grants_rows[300:]])
    forks = Forks(monkeypatch)
    results = []
    small = Pooling(min_rows=100, chunk_rows=50, workers=1, min_workers=1, max_load=math.inf)
    for name, pooling in (("pooled", small), ("inline", Pooling(min_rows=1 << 62, chunk_rows=50))):
        folder = tmp_path / name
        folder.mkdir()
        app = App.open(write_config(folder, f"sqlite:///{folder / 'n.db'}"))
        try:
            import_residents(app, roster, pooling=ALONE)
            kind = next(iter(app.dictionary.records))
            report = import_records(app, kind, grants, pooling=pooling).as_json() | {"file": None}
            with app.engine.connect() as conn:
                q = sa.select(records.c.resident_id, records.c.data, records.c.fingerprint)
                results.append((report, [tuple(r) for r in conn.execute(q.order_by(records.c.id))]))
        finally:
            app.close()
    assert forks.started == 1 and forks.messages[-1] == "end"
    (pooled, stored), (inline, stored_inline) = results
    assert pooled["imported"] > 300 and any("合计" in w["message"] for w in pooled["warnings"])
    assert pooled == inline and stored == stored_inline
