"""`notifier lists publish | list | show` and `rules check` of `public_fields:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.app import App
from tests.disclosure.conftest import PEOPLE, project
from tests.support.campaign import audit_rows
from tests.support.cli import cli


def test_publish_list_and_show_from_the_command_line(
    listed: tuple[App, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, run_id = listed
    cfg = app.config.base_dir / "notifier.toml"
    out = tmp_path / "board"
    code, done, err = cli(
        capsys, cfg, "lists", "publish", "farm-subsidy-2026", "--on", "2026-04-02", "--days", "10",
        "-o", str(out), "--by", "clerk", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert (done["run"], done["rows"], done["valid_from"], done["valid_until"]) == (
        run_id, 5, "2026-04-02", "2026-04-11",
    )  # fmt: skip
    assert done["url"] == f"https://notice.example.gov.cn/lists/{done['list']}"
    written = sorted(p.suffix for p in out.iterdir())
    assert written == [".html", ".pdf"]
    assert (out / Path(done["pdf"]).name).read_bytes() == (app.config.base_dir / done["pdf"]).read_bytes()
    ((_, event),) = audit_rows(app, "list.published")
    assert event["sha256"] == done["sha256"] and event["pdf_sha256"] == done["pdf_sha256"]
    code, listing, _ = cli(capsys, cfg, "lists", "list", "--json")
    assert code == 0 and [x["list"] for x in listing["lists"]] == [done["list"]]
    code, shown, _ = cli(capsys, cfg, "lists", "show", str(done["list"]), "--json")
    assert (
        code == 0
        and shown["html_sha256"] == event["html_sha256"]
        and shown["state"] in ("expired", "current")
    )
    code, _, err = cli(
        capsys, cfg, "lists", "publish", "farm-subsidy-2026", "--on", "2026-03-01", "--by", "clerk"
    )
    assert code == 1 and "no approved or completed run dated on or before 2026-03-01" in err
    code, _, err = cli(capsys, cfg, "lists", "show", "99")
    assert code == 1 and "no public list 99" in err


def test_rules_check_refuses_personal_public_fields_with_their_place(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = project(tmp_path, sqlite_url, "[farmland_mu, id_number, phone, email, address, farmland]")
    rule_file = str(tmp_path / "rules" / "farm-subsidy-2026.yaml")
    line = len((tmp_path / "rules" / "farm-subsidy-2026.yaml").read_text(encoding="utf-8").splitlines())
    code, _, err = cli(capsys, cfg, "rules", "check")
    assert code == 1
    col = "public_fields: [farmland_mu, ".__len__() + 1
    assert (
        f"{rule_file}:{line}:{col}: 'id_number' is personal data and is never printed on a public list" in err
    )
    assert "'phone' is personal data" in err and "'email' is personal data" in err
    assert f"{rule_file}:{line}:64: unknown field 'farmland' (did you mean \"farmland_mu\"?)" in err
    assert f"{rule_file}:{line}:55: warning: public field 'address'" in err


def test_a_warning_alone_does_not_fail_the_check(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = project(tmp_path, sqlite_url, "[farmland_mu, address]")
    code, report, _ = cli(capsys, cfg, "rules", "check", "--json")
    assert code == 0 and report["ok"] is True
    (warning,) = report["warnings"]
    assert "address" in warning["message"] and warning["file"].endswith("farm-subsidy-2026.yaml")
    assert all(p[4] not in str(report) for p in PEOPLE)
