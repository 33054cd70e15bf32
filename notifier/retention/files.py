"""The outbox and letter files of a run: `<dir>/run-N/` of every outbox and letter provider, and
the letter provider's assembled `run-N.html` and `run-N-roster.csv` beside it. They hold bodies,
names and addresses, so retention removes them with the run's messages (their own `files_days`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..channels.registry import kind_of
from ..config import Config

_KINDS = {"outbox": "outbox", "letter": "letters"}  # kind -> its settings' default dir


def provider_dirs(config: Config) -> list[Path]:
    """The folders of every configured outbox and letter provider (each once)."""
    out: list[Path] = []
    for name, section in config.raw["providers"].items():
        kind = kind_of(config, name)
        if kind in _KINDS:
            p = config.resolve_path(str(section.get("dir", _KINDS[kind])))
            if p not in out:
                out.append(p)
    return out


def run_files(config: Config, run_id: int) -> list[Path]:
    """What exists of run `run_id` in those folders."""
    found = []
    for folder in provider_dirs(config):
        for p in (
            folder / f"run-{run_id}",
            folder / f"run-{run_id}.html",
            folder / f"run-{run_id}-roster.csv",
        ):
            if p.exists() or p.is_symlink():
                found.append(p)
    return found


def count(path: Path) -> int:
    """Files in `path` (itself, if it is one)."""
    if path.is_dir() and not path.is_symlink():
        return sum(1 for p in path.rglob("*") if not p.is_dir())
    return 1


def remove(paths: list[Path]) -> int:
    """Remove them (folders with everything in them); returns how many files went."""
    n = 0
    for p in paths:
        n += count(p)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    return n
