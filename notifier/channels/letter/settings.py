"""`[providers.letter]` settings."""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import ProviderSettings


@dataclass(frozen=True)
class LetterSettings(ProviderSettings):
    dir: str = "letters"  # relative to the config file's folder
