"""Project folders like `notifier init` makes (config, rules, templates) and free local ports."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def write_config(folder: Path, db_url: str, extra: str = "") -> Path:
    """A project folder like `notifier init` makes: config, rules, templates."""
    for sub in ("rules", "templates"):
        if not (folder / sub).exists():
            shutil.copytree(REPO / sub, folder / sub)
    cfg = folder / "notifier.toml"
    cfg.write_text(
        f'[database]\nurl = "{db_url}"\n\n[quiet_hours]\nenabled = false\n{extra}\n', encoding="utf-8"
    )
    return cfg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
