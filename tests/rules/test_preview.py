"""`rules preview` with several rules or --all: one summary from one scan of the register, with
the same counts and channels as each rule's own preview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from notifier.cli import main
from tests.support.campaign import sample_register
from tests.support.project import write_config

SAMPLE_RULES = ["dibao-monthly-payment", "farm-subsidy-2026", "rural-housing-repair-2026"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cfg(tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    cfg = str(write_config(tmp_path, db_url))
    people, grants = sample_register(tmp_path, 600)
    assert run(capsys, "--config", cfg, "residents", "import", str(people), "--json")[0] == 0
    assert run(capsys, "--config", cfg, "records", "import", "grants", str(grants), "--json")[0] == 0
    return cfg


def test_all_rules_summary_equals_single_previews(capsys: pytest.CaptureFixture[str], cfg: str) -> None:
    code, out, _ = run(capsys, "--config", cfg, "rules", "preview", "--all", "--on", "2026-03-02", "--json")
    summary = json.loads(out)
    assert code == 0 and set(summary) == {"on", "rules", "errors"} and summary["errors"] == []
    assert [r["rule"] for r in summary["rules"]] == SAMPLE_RULES
    for r in summary["rules"]:
        assert set(r) == {"rule", "version", "counts", "by_channel"}
        code, out, _ = run(
            capsys, "--config", cfg, "rules", "preview", r["rule"], "--on", "2026-03-02", "--json"
        )
        single = json.loads(out)
        assert code == 0 and r["version"] == single["version"]
        assert r["counts"] == {k: single[k] for k in ("match", "no_match", "review")}
        assert r["by_channel"] == single["by_channel"]
    assert all(r["counts"]["match"] and r["counts"]["review"] for r in summary["rules"])


def test_named_rules_in_the_order_given_and_a_table(capsys: pytest.CaptureFixture[str], cfg: str) -> None:
    code, out, _ = run(
        capsys,
        "--config",
        cfg,
        "rules",
        "preview",
        "rural-housing-repair-2026",
        "dibao-monthly-payment",
        "rural-housing-repair-2026",
        "--on",
        "2026-03-02",
        "--json",
    )
    assert code == 0 and [r["rule"] for r in json.loads(out)["rules"]] == [
        "rural-housing-repair-2026",
        "dibao-monthly-payment",
    ]
    code, out, _ = run(capsys, "--config", cfg, "rules", "preview", "--all", "--on", "2026-03-02")
    assert code == 0 and "3 rules on 2026-03-02" in out and all(rule in out for rule in SAMPLE_RULES)
    assert "no_match" in out and "SMS cost" not in out


def test_usage_and_broken_rules(capsys: pytest.CaptureFixture[str], cfg: str, tmp_path: Path) -> None:
    for argv in ([], ["--all", "farm-subsidy-2026"]):
        with pytest.raises(SystemExit) as exc:
            main(["--config", cfg, "rules", "preview", *argv])
        assert exc.value.code == 2
    code, _, err = run(
        capsys, "--config", cfg, "rules", "preview", "farm-subsidy-2026", "no-such-rule", "--json"
    )
    assert code == 1 and "no rule 'no-such-rule'" in err
    broken = tmp_path / "rules" / "broken.yaml"
    broken.write_text(
        (tmp_path / "rules" / "farm-subsidy-2026.yaml")
        .read_text(encoding="utf-8")
        .replace("id: farm-subsidy-2026", "id: broken")
        .replace("equals: rural", "equals: rurall"),
        encoding="utf-8",
    )
    code, out, err = run(capsys, "--config", cfg, "rules", "preview", "--all", "--json")
    summary = json.loads(out)
    assert code == 3 and [r["rule"] for r in summary["rules"]] == SAMPLE_RULES
    assert summary["errors"] and all(Path(e["file"]).name == "broken.yaml" for e in summary["errors"])
