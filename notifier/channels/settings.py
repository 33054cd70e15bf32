"""Typed provider settings: the keys every `[providers.NAME]` table may hold, and how a table
becomes a kind's settings class (unknown keys and wrong types refused, with the key named).

Each kind subclasses ProviderSettings in its package (`twilio/settings.py`, ...) and writes its
defaults there, once. A field's metadata may name its TOML key (`key("from")`), or an
environment variable read when the key is absent (`from_env("TWILIO_AUTH_TOKEN")`): a default
taken from the environment, never a requirement that it be set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self

from ..config import typed_section


def key(name: str) -> dict[str, str]:
    """Field metadata: the field's TOML key, where it is not a Python name."""
    return {"key": name}


def from_env(variable: str) -> dict[str, str]:
    """Field metadata: the environment variable giving the value when the table has no such key."""
    return {"env": variable}


@dataclass(frozen=True)
class ProviderSettings:
    """Keys every provider takes. `kind` picks the package (default: the table's name)."""

    kind: str = ""
    rate_per_second: float = 0.0  # messages per second at most, over all workers on the database; 0: no limit
    burst: float = 1.0  # messages that may go at once after an idle spell
    concurrency: int = 10  # requests in flight at once
    per_number_seconds: float = 0.0  # SMS: at least this long between two messages to one number; 0: no limit

    @classmethod
    def from_table(cls, table: Mapping[str, Any], name: str, where: str = "config") -> Self:
        values = dict(table)
        for f in fields(cls):
            variable, toml = f.metadata.get("env"), f.metadata.get("key", f.name)
            if variable and toml not in values and os.environ.get(variable):
                values[toml] = os.environ[variable]
        return typed_section(cls, values, f"providers.{name}", where)
