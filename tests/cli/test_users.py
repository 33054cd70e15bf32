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
