"""anystore-sql against SQLite (file and memory), PostgreSQL and MariaDB on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine

from anystore import get_store
from anystore.exceptions import (
    AnystoreError,
    BackendNotFound,
    BackendUnavailable,
    InvalidKey,
    InvalidOption,
)
from anystore.store import Store
from anystore.testing import StoreTests
from anystore_sql.engines import parse_uri
from tests.locks import (
    assert_anycache_computes_once_across_processes,
    assert_crashed_holder_lapses,
    assert_exclusive_across_processes,
)
from tests.services import free_port, require_port

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


class TestSql(StoreTests):
    @pytest.fixture
    def store(self, database: str) -> Store:
        return get_store(database)


class TestSqlChild(StoreTests):
    @pytest.fixture
    def store(self, database: str) -> Store:
        get_store(database).put("outside", "not in the child")
        get_store(f"{database}&prefix=child").put("x", "a sibling key of the child's folder")
        return get_store(f"{database}&prefix=child/store")


@pytest.mark.parametrize(
    ("uri", "url", "table", "prefix"),
    [
        ("sqlite:///x.db", "sqlite:///x.db", "anystore", ""),
        ("sqlite://?table=cache&prefix=a/b/", "sqlite://", "cache", "a/b"),
        ("postgres://u:pw@h/db", "postgresql+psycopg://u:pw@h/db", "anystore", ""),
        (
            "postgresql+psycopg://h/db?sslmode=require",
            "postgresql+psycopg://h/db?sslmode=require",
            "anystore",
            "",
        ),
        ("mysql://root@h:3306/test?table=t", "mysql+pymysql://root@h:3306/test", "t", ""),
        ("mariadb://h/test", "mariadb+pymysql://h/test", "anystore", ""),
    ],
)
def test_uri_forms(uri: str, url: str, table: str, prefix: str) -> None:
    assert parse_uri(uri) == (url, table, prefix)


@pytest.mark.parametrize("table", ["a-b", "1abc", "x; DROP TABLE y", "a" * 64])
def test_bad_table_names(table: str) -> None:
    with pytest.raises(InvalidOption, match="table name"):
        get_store(f"sqlite://?table={table}")


def test_expired_rows_are_invisible_and_purged(database: str) -> None:
    store = get_store(database)
    store.put("gone", 1, ttl=0.5)
    store.put("kept", 1)
    time.sleep(0.7)
    assert list(store.iterate_keys()) == ["kept"]
    assert store.backend.purge_expired() == 1  # type: ignore[attr-defined]
    assert store.backend.purge_expired() == 0  # type: ignore[attr-defined]


def test_percent_and_underscore_prefixes_are_literal(database: str) -> None:
    store = get_store(database)
    store.put_many({"100%/a": 1, "100x/a": 2, "a_b/c": 3, "aXb/c": 4})
    assert list(store.iterate_keys(prefix="100%")) == ["100%/a"]
    assert list(store.iterate_keys(prefix="a_b")) == ["a_b/c"]


def test_trailing_spaces_are_distinct_keys(database: str) -> None:
    store = get_store(database)
    store.put("a", 1)
    store.put("a ", 2)
    assert (store.get("a"), store.get("a ")) == (1, 2)


def test_key_length_limit(database: str) -> None:
    store = get_store(database)
    with pytest.raises(InvalidKey, match="takes"):
        store.put("k" * 5000, 1)


def test_listing_pages_past_one_page(database: str) -> None:
    store = get_store(database)
    store.put_many((f"p/{i:05d}", i) for i in range(2345))
    keys = list(store.iterate_keys(prefix="p"))
    assert len(keys) == 2345 and len(set(keys)) == 2345


def test_foreign_table_is_refused(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    Table("legacy", MetaData(), Column("id", Integer, primary_key=True)).create(engine)
    with pytest.raises(AnystoreError, match="not an anystore table"):
        get_store(f"sqlite:///{tmp_path}/x.db?table=legacy")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendNotFound, match=r"anystore-sql\[postgresql\]"):
        get_store("postgresql+nosuchdriver://u:secret@127.0.0.1/test")


def test_server_down_is_quick_and_masked() -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as error:
        get_store(f"postgresql://u:hunter2@127.0.0.1:{port}/test", connect_timeout=2)
    assert time.monotonic() - start < 10
    assert "hunter2" not in str(error.value) and f"127.0.0.1:{port}" in str(error.value)


def test_wrong_credentials() -> None:
    require_port("127.0.0.1", 3306, "MariaDB")
    with pytest.raises(BackendUnavailable, match="unavailable") as error:
        get_store("mysql://nobody:wrongpass@127.0.0.1:3306/test")
    assert "wrongpass" not in str(error.value)


def test_many_threads_on_one_store(database: str) -> None:
    import threading

    store = get_store(database)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                store.put(f"t{n}/{i}", i)
                assert store.get(f"t{n}/{i}") == i
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(list(store.iterate_keys())) == 240


WRITER = """
import sys
from anystore import get_store
store = get_store(sys.argv[1])
for i in range(150):
    store.put(f"w{sys.argv[2]}/{i}", i)
    store.put_many({f"m{sys.argv[2]}/{i}": i})
    assert store.get(f"w{sys.argv[2]}/{i}") == i
"""


def test_several_processes_write_one_sqlite_file(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/shared.db"
    get_store(uri).put("init", 1)  # create the table before the race
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, uri, str(n)], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()[-2000:]
    assert len(list(get_store(uri).iterate_keys())) == 1 + 4 * 300


def test_lock_is_exclusive_across_processes(shared_database: str) -> None:
    assert_exclusive_across_processes(shared_database)


def test_crashed_holder_lapses(shared_database: str) -> None:
    assert_crashed_holder_lapses(shared_database)


def test_anycache_computes_once_across_processes(shared_database: str, tmp_path: Path) -> None:
    assert_anycache_computes_once_across_processes(shared_database, tmp_path / "calls")


def test_lock_rows_are_hidden_and_purged(database: str) -> None:
    store = get_store(database)
    store.lock("job", ttl=0.2).acquire()
    assert list(store.iterate_keys()) == []
    time.sleep(0.3)
    assert store.backend.purge_expired() == 1  # type: ignore[attr-defined]
