"""`notifier` commands run in-process, as a user types them against a project's config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import main


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, Any, str]:
    """Run one command; (exit status, parsed JSON or stdout text, stderr)."""
    code = main(["--config", str(cfg), *args])
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, out, err
