"""Fixtures of the SQL tests: a fresh table on each database (SQLite file and memory, and the
loopback PostgreSQL and MariaDB services), dropped afterwards with its chunk table."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from anystore_sql.schema import chunk_table_name
from anystore_sql.urls import parse_uri
from tests.services import require_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def _drop_engines() -> Iterator[dict[str, Engine]]:
    """One engine per server for dropping the tests' tables (a new one per test cost a connect
    and a dispose each time), disposed at the end of the session."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _drop(engines: dict[str, Engine], url: str, table: str) -> None:
    if url not in engines:
        engines[url] = create_engine(parse_uri(url)[0])
    with engines[url].begin() as connection:
        for name in (table, chunk_table_name(table)):
            connection.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _database(
    request: pytest.FixtureRequest, tmp_path: Path, engines: dict[str, Engine]
) -> Iterator[str]:
    table = _table()
    if request.param == "sqlite-file":
        yield f"sqlite:///{tmp_path}/store.db?table={table}"
        return
    if request.param == "sqlite-memory":
        yield f"sqlite://?table={table}"
        return
    url, port, name = (
        (POSTGRES, 5432, "PostgreSQL")
        if request.param == "postgresql"
        else (MARIADB, 3306, "MariaDB")
    )
    require_port("127.0.0.1", port, name)
    yield f"{url}?table={table}"
    _drop(engines, url, table)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "postgresql", "mariadb"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, _drop_engines: dict[str, Engine]
) -> Iterator[str]:
    """A database URL with a fresh table of its own (dropped afterwards)."""
    yield from _database(request, tmp_path, _drop_engines)


@pytest.fixture(params=["sqlite-file", "postgresql", "mariadb"])
def shared_database(
    request: pytest.FixtureRequest, tmp_path: Path, _drop_engines: dict[str, Engine]
) -> Iterator[str]:
    """Like `database`, but one that several processes can open."""
    yield from _database(request, tmp_path, _drop_engines)
