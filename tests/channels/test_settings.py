"""Typed provider settings: every kind is built the same way from its `[providers.NAME]` table,
refuses unknown keys and wrong types with the key named, and writes its defaults once."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from notifier.channels.base import ProviderContext
from notifier.channels.registry import KINDS, build_provider
from notifier.channels.smtp import SmtpProvider, SmtpSettings
from notifier.channels.twilio import TwilioProvider, TwilioSettings
from notifier.config import load_config
from notifier.errors import ConfigError

from ..support.project import write_config

REPO = Path(__file__).resolve().parents[2]
TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "t0ken", "from": "+15005550006"}
ALIYUN = {"access_key_id": "LTAI" + "0" * 20, "access_key_secret": "s3cret"}
TENCENT = {"secret_id": "AKID" + "0" * 32, "secret_key": "k3y", "sdk_app_id": "1400000001"}
MINIMAL: dict[str, dict[str, Any]] = {
    "outbox": {},
    "letter": {},
    "smtp": {},
    "twilio": TWILIO,
    "aliyun": ALIYUN,
    "tencent": TENCENT,
}


def test_every_kind_has_a_minimal_table() -> None:
    assert set(MINIMAL) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_takes_the_same_arguments(kind: str, tmp_path: Path) -> None:
    p = KINDS[kind].provider("mine", MINIMAL[kind], ProviderContext(tmp_path, "n.toml"))
    assert (p.name, p.kind, p.context.base_dir) == ("mine", kind, tmp_path)
    assert isinstance(p.options, p.settings_class) and p.concurrency >= 1
    assert p.describe()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_unknown_key_is_refused_with_its_name(kind: str) -> None:
    with pytest.raises(
        ConfigError, match=r"n\.toml: unknown key 'rate_per_secnd' in \[providers\.x\]"
    ) as info:
        KINDS[kind].provider("x", MINIMAL[kind] | {"rate_per_secnd": 5}, ProviderContext(where="n.toml"))
    assert 'did you mean "rate_per_second"' in info.value.message


@pytest.mark.parametrize(
    "kind, key, value, words",
    [
        ("outbox", "dir", 3, "a string"),
        ("smtp", "port", "25", "a whole number"),
        ("smtp", "starttls", "yes", "true or false"),
        ("twilio", "timeout", "10s", "a number"),
        ("letter", "concurrency", 2.5, "a whole number"),
        ("tencent", "source_networks", "10.0.0.0/8", "a non-empty list of names"),
    ],
)
def test_a_wrong_type_is_refused_with_its_name(kind: str, key: str, value: Any, words: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[providers\.p\] {key} must be {words}"):
        KINDS[kind].provider("p", MINIMAL[kind] | {key: value})


def test_defaults_are_written_once_in_the_settings_classes(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, "sqlite:///x.db", "[providers.smtp]\nport = 2525\n"))
    smtp = build_provider(cfg, "smtp")
    assert isinstance(smtp, SmtpProvider) and smtp.options == SmtpSettings(port=2525)
    assert (smtp.rate_per_second, smtp.concurrency, smtp.options.from_) == (50.0, 4, "notice@example.gov.cn")
    assert build_provider(cfg, "outbox").describe() == f"outbox ({tmp_path / 'outbox'})"
    assert cfg.raw["providers"]["outbox"] == {}  # nothing duplicated in config.DEFAULTS


def test_twilio_credentials_default_to_twilios_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        TwilioProvider("twilio", {"from": TWILIO["from"]})
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "from-env")
    p = TwilioProvider("twilio", {"from": TWILIO["from"]})
    assert (p.options.account_sid, p.options.auth_token) == ("AC" + "1" * 32, "from-env")
    assert TwilioSettings.from_table(TWILIO, "twilio").auth_token == "t0ken"  # the table wins


def test_the_example_config_names_only_known_keys() -> None:
    example = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    for name, table in example["providers"].items():
        cls = KINDS[table.get("kind", name)].provider.settings_class
        assert cls.from_table(table, name).kind in ("", name)  # `env:` values are resolved before this
