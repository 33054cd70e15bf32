"""Shared fixtures, built on tests/support: a project folder with config, rules and templates on
SQLite and on a real PostgreSQL server; a real SMTP server and a Twilio-compatible server on
127.0.0.1; the pipeline's project that sends e-mail through that SMTP server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.app import App
from notifier.residents.importer import import_residents
from tests.support.campaign import PEOPLE, smtp_project, write_roster
from tests.support.pgserver import PgServer
from tests.support.project import write_config
from tests.support.smtp_server import SmtpServer
from tests.support.twilio_server import TwilioServer

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notifier.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database(f"t{next(_counter)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'notifier.db'}"


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Path:
    return write_config(tmp_path, db_url)


@pytest.fixture
def app(project: Path) -> Iterator[App]:
    a = App.open(project)
    yield a
    a.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def tserver() -> Iterator[TwilioServer]:
    with TwilioServer() as s:  # own thread: the dispatcher runs under asyncio.run
        yield s


@pytest.fixture
def papp(tmp_path: Path, db_url: str, smtp: SmtpServer) -> Iterator[App]:
    """The pipeline's village imported (from a GBK file), e-mail through the SMTP server."""
    cfg = smtp_project(tmp_path, db_url, smtp.port, connections=2)
    a = App.open(cfg)
    import_residents(a, write_roster(tmp_path / "p.csv", PEOPLE, encoding="gbk"))
    yield a
    a.close()
