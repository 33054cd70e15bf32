"""Residents who leave (deceased, moved away): their pending notices skipped at once, no new run
or preview counts them, coverage names why, every change audited; a mistake undone."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from notifier import runs
from notifier.app import App
from notifier.audit.coverage import coverage
from notifier.errors import InputError, NotFound
from notifier.preview import preview
from notifier.residents.leaving import LeftAs, deactivate, reactivate
from tests.support.campaign import ON, approve_all, audit_rows, by_resident, rule, send
from tests.support.cli import cli


def _covered(app: App, run_id: int) -> dict[str, int]:
    cov, rows = coverage(app, run_id)
    for _ in rows:
        pass
    return cov.skipped_by_reason


def test_a_resident_who_died_gets_no_notice_from_any_run(papp: App) -> None:
    before = preview(papp, rule(papp), ON)
    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    approve_all(papp, run_id)
    out = deactivate(papp, ["F01", "F02"], reason="2026-03 户籍注销", left_as=LeftAs.DECEASED, by="clerk")
    assert out["left"] == ["F01", "F02"] and out["deliveries_skipped"] == 2 and out["runs"] == [run_id]
    d = by_resident(papp, run_id)
    assert d["F01"].status == d["F02"].status == "skipped"
    assert d["F01"].reason == "resident left (deceased): 2026-03 户籍注销" and d["F01"].notice_key is None
    report = send(papp, run_id)
    assert report.sent == 2  # F03 letter, F05 e-mail: the two who left got nothing
    assert _covered(papp, run_id)["left"] == 2
    assert [s for s, p in audit_rows(papp, "resident.left")] == ["resident:F01", "resident:F02"]
    assert all(
        p == {"as": "deceased", "reason": "2026-03 户籍注销"} for _, p in audit_rows(papp, "resident.left")
    )

    after = preview(papp, rule(papp), ON)
    assert after.counts["match"] == before.counts["match"] - 2
    assert sum(after.counts.values()) == sum(before.counts.values()) - 2  # the register in care
    again = deactivate(papp, ["F01"], reason="重复", left_as=LeftAs.DECEASED, by="clerk")
    assert again["left"] == [] and again["already_left"] == ["F01"]


def test_a_mistake_is_undone_and_a_new_run_reaches_the_resident_again(papp: App) -> None:
    deactivate(papp, ["F01"], reason="误报迁出", left_as=LeftAs.MOVED, by="clerk")
    first = runs.create_run(papp, rule(papp), ON, "clerk").run
    assert "F01" not in by_resident(papp, first)
    out = reactivate(papp, ["F01", "F03"], reason="核实仍在本村", by="clerk")
    assert out == {"returned": ["F01"], "not_left": ["F03"]}
    runs.cancel_run(papp, first, "clerk")
    second = runs.create_run(papp, rule(papp), ON, "clerk").run
    assert by_resident(papp, second)["F01"].status == "pending"
    assert [p["reason"] for _, p in audit_rows(papp, "resident.returned")] == ["核实仍在本村"]
    with papp.engine.connect() as conn:
        t = papp.residents
        assert conn.execute(sa.select(t.c.left_at).where(t.c.resident_id == "F01")).scalar_one() is None


def test_unknown_residents_and_a_missing_reason_are_refused_and_change_nothing(papp: App) -> None:
    with pytest.raises(NotFound, match="no resident NOPE"):
        deactivate(papp, ["F01", "NOPE"], reason="x", left_as=LeftAs.OTHER, by="clerk")
    with pytest.raises(InputError, match="--reason is required"):
        deactivate(papp, ["F01"], reason="  ", left_as=LeftAs.OTHER, by="clerk")
    assert audit_rows(papp, "resident.left") == []
    assert sum(preview(papp, rule(papp), ON).counts.values()) == 7


def test_the_cli_marks_residents_as_left(
    papp: App, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "notifier.toml"
    code, out, _ = cli(
        capsys,
        cfg,
        "residents",
        "deactivate",
        "F07",
        "--as",
        "moved",
        "--reason",
        "迁往外县",
        "--by",
        "clerk",
        "--json",
    )
    assert code == 0 and out["left"] == ["F07"] and out["as"] == "moved"
    code, _, err = cli(capsys, cfg, "residents", "deactivate", "ZZZ", "--reason", "x", "--by", "clerk")
    assert code == 1 and "no resident ZZZ" in err and "Traceback" not in err


def test_the_rosters_status_column_marks_residents_as_left_on_import(papp: App, tmp_path: Path) -> None:
    from notifier.residents.importer import import_residents

    run_id = runs.create_run(papp, rule(papp), ON, "clerk").run
    roster = tmp_path / "status.csv"
    roster.write_text("居民编号,状态\nF01,死亡\nF02,正常\nF03,迁出\nF05,在册\n", encoding="utf-8")
    dry = import_residents(papp, roster, dry_run=True, actor="clerk")
    assert dry.left == 2 and by_resident(papp, run_id)["F01"].status == "pending"  # a dry run changes nothing
    report = import_residents(papp, roster, actor="clerk")
    assert report.left == 2 and report.as_json()["left"] == 2
    d = by_resident(papp, run_id)
    assert (d["F01"].status, d["F03"].status, d["F02"].status) == ("skipped", "skipped", "pending")
    assert d["F01"].reason == "resident left (deceased): roster status.csv: 状态"
    assert [(s, p["as"]) for s, p in audit_rows(papp, "resident.left")] == [
        ("resident:F01", "deceased"),
        ("resident:F03", "moved"),
    ]
    again = tmp_path / "again.csv"
    again.write_text("居民编号,状态\nF01,正常\n", encoding="utf-8")
    back = import_residents(papp, again, actor="clerk")
    assert back.left == 0 and ["resident F01 has left (deceased)" in w.message for w in back.warnings] == [
        True
    ]
    assert by_resident(papp, run_id)["F01"].status == "skipped"  # 正常 alone does not bring anyone back
