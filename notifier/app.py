"""What every command needs, opened once and passed in: config, database, data dictionary."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa

from .config import Config, load_config, missing_config_message
from .errors import ConfigError
from .fields import DataDictionary, load_dictionary
from .storage.db import open_database, read_only
from .storage.fieldcols import residents_table, sync_field_columns


@dataclass
class App:
    config: Config
    engine: sa.Engine
    dictionary: DataDictionary

    @classmethod
    def open(cls, config: Config | str | Path | None = None) -> "App":
        cfg = config if isinstance(config, Config) else load_config(config)
        if cfg.path is None:  # embedded defaults would create notifier.db in the current folder
            raise ConfigError(missing_config_message())
        engine = open_database(cfg.database_url, _busy_timeout(cfg))
        dictionary = load_dictionary(cfg.fields_file)
        sync_field_columns(engine, dictionary)
        return cls(cfg, engine, dictionary)

    @cached_property
    def reader(self) -> sa.Engine:
        """For connections that only read: on SQLite they do not take the write lock."""
        return read_only(self.engine)

    @cached_property
    def residents(self) -> sa.Table:
        return residents_table(self.dictionary)

    def close(self) -> None:
        self.engine.dispose()


def _busy_timeout(cfg: Config) -> float:
    value = cfg.raw["database"].get("busy_timeout_seconds", 60)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(
            f"{cfg.where()}: [database] busy_timeout_seconds must be a positive number, not {value!r}"
        )
    return float(value)
