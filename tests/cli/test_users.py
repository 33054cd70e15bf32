"""`notifier init` makes the first admin; `users ...` manages accounts as an account (token)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from notifier.cli import main

PW = "correct horse battery"


def cli(
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("{") else {}), err


def test_init_creates_the_first_admin_and_its_token_manages_accounts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFIER_TOKEN", raising=False)
    code, out, _ = cli(capsys, "init", str(tmp_path / "county"), "--json")
    assert code == 0 and out["admin"] == "admin" and out["token"].startswith("ntk_")
    cfg, admin_token = out["config"], out["token"]
    code, again, _ = cli(capsys, "init", str(tmp_path / "county"), "--json")
    assert code == 0 and "token" not in again  # a second init never makes a second admin
    # without a token, an account-managing command is refused and says how to authenticate
    code, _, err = cli(capsys, "--config", cfg, "users", "list", "--json")
    assert code == 1 and "NOTIFIER_TOKEN" in err
    monkeypatch.setenv("NOTIFIER_TOKEN", admin_token)
    code, out, _ = cli(
        capsys,
        "--config",
        cfg,
        "users",
        "add",
        "li",
        "--role",
        "经办",
        "--display",
        "李经办",
        "--password-stdin",
        "--json",
        stdin=PW + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and out["roles"] == ["operator"] and out["display"] == "李经办"
    code, out, _ = cli(
        capsys,
        "--config",
        cfg,
        "users",
        "add",
        "wang",
        "--role",
        "reviewer",
        "--level",
        "1",
        "--password-stdin",
        "--json",
        stdin=PW + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and out["levels"] == [1]
    code, out, err = cli(
        capsys,
        "--config",
        cfg,
        "users",
        "add",
        "zhao",
        "--role",
        "reviewer",
        "--password-stdin",
        "--json",
        stdin=PW + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 1 and "--level" in err
    code, out, _ = cli(capsys, "--config", cfg, "users", "token", "li", "--json")
    li_token = out["token"]
    code, out, _ = cli(capsys, "--config", cfg, "users", "list", "--json")
    assert [a["name"] for a in out["accounts"]] == ["admin", "li", "wang"]
    # an operator cannot manage accounts, and the refusal is audited
    monkeypatch.setenv("NOTIFIER_TOKEN", li_token)
    code, _, err = cli(capsys, "--config", cfg, "users", "list", "--json")
    assert code == 1 and "accounts.manage" in err
    code, _, err = cli(capsys, "--config", cfg, "users", "list", "--by", "admin", "--json")
    assert code == 1 and "does not match" in err
    monkeypatch.setenv("NOTIFIER_TOKEN", admin_token)
    code, out, _ = cli(capsys, "--config", cfg, "users", "disable", "li", "--json")
    assert code == 0 and out["disabled"] is True
    monkeypatch.setenv("NOTIFIER_TOKEN", li_token)
    code, _, err = cli(capsys, "--config", cfg, "users", "token", "li", "--json")
    assert code == 1 and "not valid" in err
    monkeypatch.setenv("NOTIFIER_TOKEN", admin_token)
    code, out, _ = cli(capsys, "--config", cfg, "audit", "verify", "--json")
    assert code == 0 and out["ok"]


def test_runs_are_created_and_approved_by_accounts_level_by_level(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Separation of duties on accounts: the creator never approves, one account one level, a
    reviewer of level 2 cannot approve level 1; --by alone proves nothing; refusals audited."""
    monkeypatch.delenv("NOTIFIER_TOKEN", raising=False)
    code, out, _ = cli(capsys, "init", str(tmp_path / "c"), "--json")
    cfg, admin = out["config"], out["token"]
    (tmp_path / "p.csv").write_text(
        "居民编号,姓名,手机号码,户籍类型,承包耕地面积\nA1,张三,13800000001,农村,5\nA2,李四,13800000002,农村,3\n",
        encoding="utf-8",
    )
    code, _, err = cli(capsys, "--config", cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")
    assert code == 1 and "acts for a person" in err  # an import is done by an account too
    tokens = {}
    for name, roles, levels in [
        ("op", ["operator"], []),
        ("opr", ["operator", "reviewer"], ["1"]),
        ("r1", ["reviewer"], ["1"]),
        ("r2", ["reviewer"], ["2"]),
    ]:
        monkeypatch.setenv("NOTIFIER_TOKEN", admin)
        args = [a for r in roles for a in ("--role", r)] + [a for lv in levels for a in ("--level", lv)]
        assert (
            cli(
                capsys,
                "--config",
                cfg,
                "users",
                "add",
                name,
                *args,
                "--password-stdin",
                "--json",
                stdin=PW + "\n",
                monkeypatch=monkeypatch,
            )[0]
            == 0
        )
        tokens[name] = cli(capsys, "--config", cfg, "users", "token", name, "--json")[1]["token"]
    monkeypatch.setenv("NOTIFIER_TOKEN", tokens["op"])
    assert cli(capsys, "--config", cfg, "residents", "import", str(tmp_path / "p.csv"), "--json")[0] == 0

    def as_(who: str, *argv: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
        monkeypatch.setenv("NOTIFIER_TOKEN", tokens[who])
        return cli(capsys, "--config", cfg, *argv, "--json")

    monkeypatch.delenv("NOTIFIER_TOKEN")
    code, _, err = cli(
        capsys,
        "--config",
        cfg,
        "runs",
        "create",
        "farm-subsidy-2026",
        "--on",
        "2026-04-01",
        "--by",
        "op",
        "--json",
    )
    assert code == 1 and "NOTIFIER_TOKEN" in err  # a typed name is not an account
    code, _, err = as_("r1", "runs", "create", "farm-subsidy-2026", "--on", "2026-04-01")
    assert code == 1 and "runs.create" in err
    code, run, _ = as_("opr", "runs", "create", "farm-subsidy-2026", "--on", "2026-04-01")
    assert code == 0
    rid = str(run["run"])
    code, _, err = as_("opr", "runs", "approve", rid)
    assert code == 1 and "creator cannot approve" in err
    code, _, err = as_("r2", "runs", "approve", rid)
    assert code == 1 and "at level 1" in err  # level 2's reviewer cannot take level 1
    code, _, err = as_("op", "runs", "approve", rid)
    assert code == 1 and "runs.approve" in err
    code, out, _ = as_("r1", "runs", "approve", rid, "--by", "R1")  # --by as an assertion: it matches
    assert code == 0 and out["status"] == "awaiting_approval"
    code, _, err = as_("r1", "runs", "approve", rid)
    assert code == 1 and ("already approved" in err or "at level 2" in err)
    code, out, _ = as_("r2", "runs", "approve", rid)
    assert code == 0 and out["status"] == "approved"
    assert [a["by"].split(":")[-1] for a in out["approvals"]] == ["r1", "r2"]
    assert all(a["by"].startswith("account:") for a in out["approvals"])
    code, _, _ = cli(
        capsys,
        "--config",
        cfg,
        "audit",
        "export",
        "--format",
        "jsonl",
        "-o",
        str(tmp_path / "e.jsonl"),
        "--json",
    )
    actions = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    refusals = [e for e in actions if e.get("action") == "account.refused"]
    assert len(refusals) == 3  # r1 create, r2 level 1, op approve (the creator's is a StateError)
