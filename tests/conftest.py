"""Shared fixtures: a project folder with config, rules and templates; SQLite and a real
PostgreSQL server; a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import itertools
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.app import App

REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator["object"]:
    from .pgserver import PgServer

    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{next(_counter)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notifier.db'}"


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


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Path:
    return write_config(tmp_path, db_url)


@pytest.fixture
def app(project: Path) -> Iterator[App]:
    a = App.open(project)
    yield a
    a.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
