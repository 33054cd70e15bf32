"""Configuration: TOML, embedded defaults, `env:NAME` secrets, paths relative to the file.

Without a config file, commands that only read files (`rules check`) run on the embedded
defaults; commands that open the database refuse (`App.open`, `missing_config_message`), so
a database is never created in whatever folder a command happens to be started from.
Secrets are resolved only when the provider that needs them is built.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError, did_you_mean
from .status import Channel

DEFAULT_FILE = "notifier.toml"

DEFAULTS: dict[str, Any] = {
    "database": {"url": "sqlite:///notifier.db", "busy_timeout_seconds": 60},
    "paths": {"rules": "rules", "templates": "templates", "fields": "rules/fields.yaml"},
    "timezone": {"name": "Asia/Shanghai"},
    "quiet_hours": {"enabled": True, "start": "21:00", "end": "08:00"},
    "approval": {"levels": ["科室审核", "分管领导审批"], "per_run": False},
    "sending": {
        "batch_size": 500,
        "max_attempts": 5,
        "retry_base_seconds": 30,
        "stale_seconds": 120,
        "settle_seconds": 30,
        "failover_after": 3,
        "failover_cooldown_seconds": 60,
        "retry_deadline_seconds": 21600,
        "account_pause_seconds": 900,
    },
    "channels": {
        "sms": {"providers": ["outbox"], "price_per_segment": 0.05},
        "email": {"providers": ["outbox"]},
        "letter": {"providers": ["letter"]},
    },
    # Each provider's defaults live in its settings class (channels/<kind>/settings.py); these
    # empty tables only make the usual provider names exist, so `[channels.*]` can name them.
    "providers": {"outbox": {}, "letter": {}, "smtp": {}, "twilio": {}, "aliyun": {}, "tencent": {}},
    "schedule": {"misfire_grace_seconds": 3600, "lease_seconds": 30},
    "audit": {
        "checkpoint_file": "audit-checkpoints.jsonl",
        "unmask_allowed": False,
        "signing_key_env": "NOTIFIER_AUDIT_KEY",
        "verify_public_key": "",
        "checkpoint_interval_seconds": 3600,
        # HMAC key of the pseudonyms audit events carry instead of phone numbers (audit/pseudonyms.py);
        # an unset variable falls back to a random key kept in the database.
        "pseudonym_key": "env:NOTIFIER_PSEUDONYM_KEY",
    },
    # How long personal data is kept (retention/): days after a run completed, after a resident left.
    "retention": {
        "messages_days": 180,
        "files_days": 180,
        "left_residents_days": 180,
        "daily": True,
    },
    # `notifier serve`: webhook endpoints + dispatcher loop. public_url is the base URL Twilio
    # calls (its signature covers the full URL); empty = the origin of status_callback_url.
    # The console (`notifier serve`): signed session cookies; the secret is read when serve starts.
    "console": {
        "session_secret": "env:NOTIFIER_SESSION_SECRET",
        "session_hours": 8,
        "login_failures_per_address": 20,
        "login_window_minutes": 15,
        # Roster uploads wait for confirmation in upload_dir (relative to the config file), at most an hour.
        "max_upload_mb": 50,
        "upload_dir": "uploads",
    },
    "ui": {"language": "zh_CN"},
    # Verification codes on every notice (verification.py) and the public page /v that checks them.
    "verification": {
        "secret": "env:NOTIFIER_VERIFY_SECRET",
        "contact_phone": "",  # the department's official number, shown on /v
        "failures_per_address": 20,  # unknown codes from one client address before it must wait
        "window_minutes": 15,
    },
    # The residents' self-query page /query (selfquery_page.py): 身份证号 + 姓名, optionally an SMS code.
    # Needs [verification] secret (ID numbers are hashed with it); attempts counted in the database.
    "selfquery": {
        "enabled": True,
        "attempts_per_address": 10,  # queries from one client address per window
        "attempts_per_id": 5,  # queries naming one ID number per window, from anywhere
        "window_minutes": 15,
        "otp": False,  # a one-time code by SMS before the list is shown
        "otp_minutes": 5,
        "otp_attempts": 5,
    },
    "serve": {
        "host": "127.0.0.1",
        "port": 8080,
        "public_url": "",
        "dispatch_interval_seconds": 30,
        "shutdown_timeout_seconds": 30,
    },
}
_SECTIONS = set(DEFAULTS)
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True)
class QuietHours:
    enabled: bool
    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        if not self.enabled or self.start == self.end:
            return False
        t = local.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, local: datetime) -> datetime:
        """The first moment at or after `local` that is outside quiet hours."""
        if not self.contains(local):
            return local
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)


@dataclass(frozen=True)
class SendingSettings:
    """[sending]: how the dispatcher claims, retries and fails over (defaults in DEFAULTS)."""

    batch_size: int
    max_attempts: int
    retry_base_seconds: float
    stale_seconds: float
    settle_seconds: float
    failover_after: int
    failover_cooldown_seconds: float
    retry_deadline_seconds: float
    account_pause_seconds: float = 900.0  # an account-level refusal (balance, ...) pauses the provider


@dataclass(frozen=True)
class ServeSettings:
    """[serve]: the HTTP side and the loops of `notifier serve`."""

    host: str
    port: int
    public_url: str
    dispatch_interval_seconds: float
    shutdown_timeout_seconds: float


@dataclass(frozen=True)
class ConsoleSettings:
    """[console]: sessions of the web console (the secret stays `env:NAME` until serve needs it) and
    roster uploads (their size bound, and the private folder where they wait for confirmation)."""

    session_secret: str
    session_hours: float
    login_failures_per_address: int  # failed logins from one client address before it must wait
    login_window_minutes: float  # ... counted over this window, which is also the wait
    max_upload_mb: float
    upload_dir: str


@dataclass(frozen=True)
class VerificationSettings:
    """[verification]: the secret codes are derived with (`env:NAME`, read when a run is created or
    `/v` answers), the official phone shown beside a genuine notice, and how many unknown codes one
    client address may try within the window before it must wait."""

    secret: str
    contact_phone: str
    failures_per_address: int
    window_minutes: float


@dataclass(frozen=True)
class SelfQuerySettings:
    """[selfquery]: whether /query answers, how many queries one client address and one ID number
    may make per window (counted in the database, so every worker shares them), and the optional
    SMS one-time code: how long it lives and how many tries it allows."""

    enabled: bool
    attempts_per_address: int
    attempts_per_id: int
    window_minutes: float
    otp: bool
    otp_minutes: float
    otp_attempts: int


@dataclass(frozen=True)
class UiSettings:
    """[ui]: the language of what staff read (zh_CN or en)."""

    language: str


@dataclass(frozen=True)
class AuditSettings:
    """[audit]: checkpoints, their signing key and whether unmasked exports are allowed."""

    checkpoint_file: str
    unmask_allowed: bool
    signing_key_env: str
    verify_public_key: str
    checkpoint_interval_seconds: float
    pseudonym_key: str = "env:NOTIFIER_PSEUDONYM_KEY"


@dataclass(frozen=True)
class RetentionSettings:
    """[retention]: days personal data is kept (0: kept for ever). Bodies and contacts of a run's
    messages and deliveries count from the run's completion (a rule's `item.retention_days`
    overrides `messages_days`), outbox and letter files likewise, a left resident's register data
    from `left_at`. `daily`: `serve` applies the policy once a day (the scheduler lease holder)."""

    messages_days: int
    files_days: int
    left_residents_days: int
    daily: bool


@dataclass(frozen=True)
class ScheduleSettings:
    """[schedule]: firing of rule schedules and the scheduler lease."""

    misfire_grace_seconds: float
    lease_seconds: float


@dataclass(frozen=True)
class ApprovalSettings:
    """[approval]: the approval levels every run (or, with per_run = false, every rule version) passes."""

    levels: list[str]
    per_run: bool


_T = TypeVar("_T")


def typed_section(cls: type[_T], raw: Mapping[str, Any], name: str, where: str) -> _T:
    """A typed section from its TOML table: unknown keys and wrong types are refused with the key
    named, so a typo in the config never silently falls back to a default. A key absent from the
    table takes the field's default (the sections above get every key from DEFAULTS); a field's
    `metadata["key"]` names its TOML key where that is not a Python name (`from`)."""
    by_key = {f.metadata.get("key", f.name): f for f in fields(cls)}  # type: ignore[arg-type]
    for key in raw:
        if key not in by_key:
            raise ConfigError(f"{where}: unknown key {key!r} in [{name}]{did_you_mean(key, by_key)}")
    values: dict[str, Any] = {}
    for key, f in by_key.items():
        if key not in raw:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{where}: [{name}] needs {key}")
            continue
        value, kind = raw[key], str(f.type)
        if not _KIND_CHECKS[kind](value):
            raise ConfigError(f"{where}: [{name}] {key} must be {_KIND_WORDS[kind]}, not {value!r}")
        values[f.name] = float(value) if kind == "float" else value
    return cls(**values)


_KIND_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "list[str]": lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v),
}
_KIND_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "list[str]": "a non-empty list of names",
}


@dataclass(frozen=True)
class ChannelSettings:
    providers: list[str]
    price_per_segment: float = 0.0


@dataclass
class Config:
    path: Path | None
    base_dir: Path
    raw: dict[str, Any] = field(repr=False)
    database_url: str = field(repr=False)  # may hold a password: print masked_url(database_url)
    rules_dir: Path
    templates_dir: Path
    fields_file: Path
    timezone: ZoneInfo
    quiet_hours: QuietHours
    channels: dict[Channel, ChannelSettings]
    sending: SendingSettings
    serve: ServeSettings
    audit: AuditSettings
    schedule: ScheduleSettings
    approval: ApprovalSettings
    console: ConsoleSettings
    ui: UiSettings
    verification: VerificationSettings
    selfquery: SelfQuerySettings
    retention: RetentionSettings

    @property
    def approval_levels(self) -> list[str]:
        return self.approval.levels

    def provider_settings(self, name: str) -> dict[str, Any]:
        """A provider's settings with `env:NAME` values read from the environment."""
        section = self.raw["providers"].get(name)
        if section is None:
            raise ConfigError(f"{self.where()}: no [providers.{name}] section")
        return {k: resolve_secret(v, f"providers.{name}.{k}") for k, v in section.items()}

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def where(self) -> str:
        return str(self.path) if self.path else "embedded defaults"


def masked_url(url: str) -> str:
    """A database URL fit to print or log: the password shown as ***."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return _URL_PASSWORD.sub(r"\1***@", url)


_URL_PASSWORD = re.compile(r"(://[^/:@]*:)[^/]*@")


def resolve_secret(value: Any, key: str) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ConfigError(f"{key} reads the environment variable {name}, which is not set")
        return os.environ[name]
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _ui(raw: dict[str, Any], where: str) -> UiSettings:
    from .i18n import LANGUAGES

    ui = typed_section(UiSettings, raw, "ui", where)
    if ui.language not in LANGUAGES:
        known = ", ".join(LANGUAGES)
        raise ConfigError(f"{where}: [ui] language must be one of {known}, not {ui.language!r}")
    return ui


def _parse_time(value: Any, key: str, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f'{where}: {key} must be a time like "21:00", not {value!r}') from None


def missing_config_message(cwd: Path | None = None) -> str:
    """What was looked for, and how to point at the right county folder."""
    here = (cwd or Path.cwd()).resolve()
    return (
        f"no config file: looked for {here / DEFAULT_FILE} ($NOTIFIER_CONFIG is not set); "
        f"nothing was created in {here}. Run this in the county folder (`cd` there), "
        "pass `--config PATH`, or create a project with `notifier init DIR`"
    )


def load_config(path: str | Path | None = None) -> Config:
    """Read the config file (explicit path, $NOTIFIER_CONFIG, or ./notifier.toml if present)."""
    explicit = path or os.environ.get("NOTIFIER_CONFIG")
    cfg_path = Path(explicit) if explicit else Path(DEFAULT_FILE)
    raw = copy.deepcopy(DEFAULTS)
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            m = _TOML_POS.search(str(exc))
            pos = f":{m.group(1)}:{m.group(2)}" if m else ""
            raise ConfigError(
                f"{cfg_path}{pos}: invalid TOML: {_TOML_POS.sub('', str(exc)).strip()}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{cfg_path}: not UTF-8 text") from None
        unknown = set(data) - _SECTIONS
        if unknown:
            raise ConfigError(
                f"{cfg_path}: unknown section [{sorted(unknown)[0]}]; known: {', '.join(sorted(_SECTIONS))}"
            )
        _merge(raw, data)
        base = cfg_path.resolve().parent
        used: Path | None = cfg_path.resolve()
    elif explicit:
        raise ConfigError(f"config file {cfg_path} does not exist (run `notifier init` to create one)")
    else:
        base, used = Path.cwd(), None
    return _build(raw, base, used)


def _build(raw: dict[str, Any], base: Path, path: Path | None) -> Config:
    where = str(path) if path else "embedded defaults"
    url = str(resolve_secret(raw["database"]["url"], "database.url"))
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = "sqlite:///" + str(base / url[len("sqlite:///") :])
    try:
        tz = ZoneInfo(str(raw["timezone"]["name"]))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: unknown timezone {raw['timezone']['name']!r} in [timezone] name"
        ) from None
    qh = raw["quiet_hours"]
    quiet = QuietHours(
        bool(qh.get("enabled", True)),
        _parse_time(qh["start"], "quiet_hours.start", where),
        _parse_time(qh["end"], "quiet_hours.end", where),
    )
    approval = typed_section(ApprovalSettings, raw["approval"], "approval", where)
    channels: dict[Channel, ChannelSettings] = {}
    for name, section in raw["channels"].items():
        try:
            ch = Channel(name)
        except ValueError:
            raise ConfigError(
                f"{where}: unknown channel [channels.{name}]; known: sms, email, letter"
            ) from None
        providers = section.get("providers", [])
        if not isinstance(providers, list) or not providers:
            raise ConfigError(f"{where}: [channels.{name}] providers must be a non-empty list")
        for p in providers:
            if p not in raw["providers"]:
                raise ConfigError(
                    f"{where}: [channels.{name}] names provider {p!r}, which has no [providers.{p}] section"
                )
        channels[ch] = ChannelSettings(list(providers), float(section.get("price_per_segment", 0.0)))
    paths = raw["paths"]

    def resolve(v: str) -> Path:
        return Path(v) if Path(v).is_absolute() else base / v

    return Config(
        path=path,
        base_dir=base,
        raw=raw,
        database_url=url,
        rules_dir=resolve(paths["rules"]),
        templates_dir=resolve(paths["templates"]),
        fields_file=resolve(paths.get("fields", str(Path(paths["rules"]) / "fields.yaml"))),
        timezone=tz,
        quiet_hours=quiet,
        channels=channels,
        sending=typed_section(SendingSettings, raw["sending"], "sending", where),
        serve=typed_section(ServeSettings, raw["serve"], "serve", where),
        audit=typed_section(AuditSettings, raw["audit"], "audit", where),
        schedule=typed_section(ScheduleSettings, raw["schedule"], "schedule", where),
        approval=approval,
        console=typed_section(ConsoleSettings, raw["console"], "console", where),
        ui=_ui(raw["ui"], where),
        verification=typed_section(VerificationSettings, raw["verification"], "verification", where),
        selfquery=typed_section(SelfQuerySettings, raw["selfquery"], "selfquery", where),
        retention=_retention(raw["retention"], where),
    )


def _retention(raw: dict[str, Any], where: str) -> RetentionSettings:
    r = typed_section(RetentionSettings, raw, "retention", where)
    for key in ("messages_days", "files_days", "left_residents_days"):
        if getattr(r, key) < 0:
            raise ConfigError(
                f"{where}: [retention] {key} must be 0 (keep) or more days, not {getattr(r, key)}"
            )
    return r
