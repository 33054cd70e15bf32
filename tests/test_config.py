from pathlib import Path

import pytest

from notifier.config import load_config
from notifier.errors import ConfigError


def test_embedded_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    cfg = load_config()
    assert cfg.path is None
    assert cfg.database_url == f"sqlite:///{tmp_path / 'notifier.db'}"
    assert cfg.approval_levels == ["科室审核", "分管领导审批"]
    assert cfg.quiet_hours.enabled and str(cfg.timezone) == "Asia/Shanghai"


def test_relative_paths_and_env_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "n.toml").write_text(
        '[database]\nurl = "sqlite:///data/x.db"\n[providers.smtp]\npassword = "env:MY_SMTP_PW"\n'
    )
    cfg = load_config(sub / "n.toml")
    assert cfg.database_url == f"sqlite:///{sub / 'data/x.db'}"
    assert cfg.rules_dir == sub / "rules"
    with pytest.raises(ConfigError, match="MY_SMTP_PW"):
        cfg.provider_settings("smtp")
    monkeypatch.setenv("MY_SMTP_PW", "s3cret")
    assert cfg.provider_settings("smtp")["password"] == "s3cret"


@pytest.mark.parametrize(
    "text, message",
    [
        ('[database\nurl = "x"\n', r"n\.toml:1:\d+: invalid TOML"),
        ("[databse]\nurl = 'x'\n", r"unknown section \[databse\]"),
        ("[timezone]\nname = 'Mars/Olympus'\n", "unknown timezone"),
        ("[quiet_hours]\nstart = '25:00'\n", "quiet_hours.start"),
        ("[channels.sms]\nproviders = ['nope']\n", "no \\[providers.nope\\] section"),
        ("[approval]\nlevels = []\n", "levels must be a non-empty list"),
        (
            "[sending]\nbatch_sise = 10\n",
            "unknown key 'batch_sise' in \\[sending\\] \\(did you mean \"batch_size\"\\?\\)",
        ),
        (
            "[sending]\nmax_attempts = 'five'\n",
            r"\[sending\] max_attempts must be a whole number, not 'five'",
        ),
        ("[serve]\nport = 80.5\n", r"\[serve\] port must be a whole number"),
        ("[audit]\nunmask_allowed = 'yes'\n", r"\[audit\] unmask_allowed must be true or false"),
        ("[schedule]\nlease_seconds = true\n", r"\[schedule\] lease_seconds must be a number"),
    ],
)
def test_bad_config_says_where(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "n.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "n.toml")


def test_typed_sections_are_built_once_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "n.toml").write_text(
        "[sending]\nretry_base_seconds = 2\n[serve]\ndispatch_interval_seconds = 0.5\n"
    )
    cfg = load_config(tmp_path / "n.toml")
    assert cfg.sending.retry_base_seconds == 2.0 and isinstance(cfg.sending.retry_base_seconds, float)
    assert cfg.sending.batch_size == 500 and cfg.serve.dispatch_interval_seconds == 0.5
    assert cfg.audit.unmask_allowed is False and cfg.schedule.misfire_grace_seconds == 3600


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")


def test_quiet_hours_across_midnight() -> None:
    from datetime import datetime, time

    from notifier.config import QuietHours

    q = QuietHours(True, time(21), time(8))
    assert q.contains(datetime(2026, 3, 2, 23, 30)) and q.contains(datetime(2026, 3, 2, 7, 59))
    assert not q.contains(datetime(2026, 3, 2, 8, 0)) and not q.contains(datetime(2026, 3, 2, 20, 59))
    assert q.ends_after(datetime(2026, 3, 2, 23, 30)) == datetime(2026, 3, 3, 8, 0)
    assert q.ends_after(datetime(2026, 3, 3, 2, 0)) == datetime(2026, 3, 3, 8, 0)
