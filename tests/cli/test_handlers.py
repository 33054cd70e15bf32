"""The command tree: every command has a handler, and every command answers both ways: one JSON
object with --json, a table or text (never JSON) on a terminal. The flow walks every command
that takes --json, on a real project folder with a real SQLite file and the outbox provider."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.cli import build_parser, main

from ..support.project import write_config

ON = "2026-04-01"


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:  # type: ignore[type-arg]
    found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return found[0] if found else None


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    sub = _subcommands(parser)
    if sub is None:
        yield path, parser
        return
    assert sub.required, f"`notifier {' '.join(path)}` alone must be a usage error"
    for name, child in sub.choices.items():
        yield from leaves(child, (*path, name))


def command_path(argv: list[str]) -> tuple[str, ...]:
    parser, path = build_parser(), []
    for token in argv:
        sub = _subcommands(parser)
        if sub is None or token not in sub.choices:
            break
        path.append(token)
        parser = sub.choices[token]
    return tuple(path)


def takes_json(parser: argparse.ArgumentParser) -> bool:
    return any("--json" in a.option_strings for a in parser._actions)


def test_every_command_has_a_handler() -> None:
    commands = dict(leaves(build_parser()))
    assert len(commands) >= 20
    for path, parser in commands.items():
        assert callable(parser.get_default("handler")), f"`notifier {' '.join(path)}` has no handler"
    assert not takes_json(commands[("serve",)])  # a service, not a report


def steps(folder: Path) -> list[list[str]]:
    """Every command that takes --json, in an order that gives each something to show."""
    return [
        ["init", str(folder / "county")],
        ["residents", "import", str(folder / "p.csv")],
        ["records", "import", "grants", str(folder / "g.csv")],
        ["rules", "check"],
        ["rules", "preview", "farm-subsidy-2026", "--on", ON],
        ["rules", "preview", "--all", "--on", ON],
        ["rules", "explain", "farm-subsidy-2026", "A1", "--on", ON],
        ["rules", "review", "farm-subsidy-2026", "--on", ON],
        ["rules", "review", "farm-subsidy-2026", "--on", ON, "-o", str(folder / "review.xlsx")],
        ["rules", "approve", "dibao-monthly-payment", "--by", "li"],
        ["schedule", "list"],
        ["runs", "create", "farm-subsidy-2026", "--on", ON, "--by", "clerk"],
        ["runs", "approve", "1", "--by", "r1"],
        ["runs", "messages", "1"],
        ["runs", "approve", "1", "--by", "r2"],
        ["send", "--until-idle"],
        ["send", "--resolve-unknown", "1", "--as", "sent", "--by", "r1"],
        ["runs", "show", "1"],
        ["runs", "deliveries", "1", "--status", "delivered"],
        ["runs", "diff", "1"],
        ["runs", "retry", "1", "--by", "clerk"],
        ["runs", "list"],
        ["lists", "publish", "farm-subsidy-2026", "--on", ON, "-o", str(folder / "lists"), "--by", "clerk"],
        ["lists", "list"],
        ["lists", "show", "1"],
        ["runs", "create", "rural-housing-repair-2026", "--on", "2026-03-02", "--by", "clerk"],
        ["runs", "cancel", "2", "--by", "clerk"],
        ["audit", "verify"],
        ["audit", "checkpoint"],
        ["audit", "export", "--format", "jsonl", "-o", str(folder / "events.jsonl")],
        ["audit", "coverage", "1"],
        ["audit", "coverage", "1", "--format", "csv", "-o", str(folder / "coverage.csv")],
        ["audit", "resident", "A1"],
        ["audit", "pseudonym", "13800000001"],
        ["retention", "apply", "--dry-run", "--by", "admin"],
        ["residents", "deactivate", "A2", "--as", "moved", "--reason", "迁出", "--by", "clerk"],
        ["residents", "reactivate", "A2", "--reason", "误报", "--by", "clerk"],
        ["demo", "--dir", str(folder / "demo"), "--residents", "40"],
    ]


@pytest.fixture
def county(tmp_path: Path, sqlite_url: str) -> str:
    cfg = write_config(tmp_path, sqlite_url, '[serve]\npublic_url = "https://notice.example.gov.cn"\n')
    with (tmp_path / "p.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [
                ["居民编号", "姓名", "手机号码", "户籍类型", "承包耕地面积"],
                ["A1", "张三", "13800000001", "农村", "5"],
                ["A2", "李四", "13800000002", "农村", "3"],
            ]
        )
    (tmp_path / "g.csv").write_text("居民编号,补助类别,发放日期\nA1,危房改造,2025-06-01\n", encoding="utf-8")
    return str(cfg)


def test_the_flow_covers_every_json_command(tmp_path: Path) -> None:
    json_commands = {path for path, parser in leaves(build_parser()) if takes_json(parser)}
    accounts = {
        p for p in json_commands if p[0] == "users"
    }  # they act as an account: tests/cli/test_users.py
    assert accounts and {command_path(argv) for argv in steps(tmp_path)} == json_commands - accounts


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "terminal"])
def test_every_command_answers_in_json_and_on_a_terminal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, county: str, as_json: bool
) -> None:
    for argv in steps(tmp_path):
        code = main(["--config", county, *argv, *(["--json"] if as_json else [])])
        out, err = capsys.readouterr()
        assert code == 0, (argv, err)
        if as_json:
            assert out.endswith("\n") and out.count("\n") == 1, (argv, out)
            assert isinstance(json.loads(out), dict), argv
        else:
            assert out.strip() and not out.lstrip().startswith("{"), (argv, out)


def test_a_sample_that_cannot_render_is_shown_with_its_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, county: str
) -> None:
    assert main(["--config", county, "residents", "import", str(tmp_path / "p.csv")]) == 0
    # A2 has 3 mu: its SMS divides by zero. The terminal preview used to crash on that sample.
    (tmp_path / "templates" / "farm_subsidy.sms.j2").write_text(
        "每亩{{ (100 / (resident.farmland_mu - 3)) | money }}\n", encoding="utf-8"
    )
    capsys.readouterr()
    assert main(["--config", county, "rules", "preview", "farm-subsidy-2026", "--on", ON]) == 0
    out = capsys.readouterr().out
    assert "每亩¥50.00" in out and "error: farm_subsidy.sms.j2" in out and "DivisionByZero" in out
