"""SQL faults: stalled servers, deadlocks, malformed URLs, file descriptors, key limits."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from anystore import get_store
from anystore.exceptions import BackendUnavailable, ConcurrentModification, InvalidOption
from anystore.store import Store
from anystore.testing_guarantees import opposite_order_writers
from anystore_sql import errors
from anystore_sql.schema import KEY_LIMITS
from tests.sql.servers import PrivateServer, start_mariadb, start_postgres

TIMEOUT = 1.5  # operation_timeout of the stall tests, seconds
SLACK = 4.0  # for a loaded machine; the default operation_timeout (30 s) would take far longer
CONNECT = 2  # connect_timeout (libpq's least)


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def private(request: pytest.FixtureRequest) -> Iterator[PrivateServer]:
    server = start_postgres() if request.param == "postgresql" else start_mariadb()
    yield server
    server.stop()


def _fails_fast(call: Callable[[], Any], within: float) -> float:
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as error:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < within, f"{elapsed:.1f} s to fail"
    assert "unavailable" in str(error.value)
    return elapsed


def test_a_stalled_server_is_unavailable_within_the_timeouts(private: PrivateServer) -> None:
    uri = f"{private.url}?table=stall"
    store = get_store(uri, operation_timeout=TIMEOUT, connect_timeout=CONNECT)
    store.put("k", b"v" * (3 * 1024 * 1024))
    handle = store.open("k", "rb")
    handle.read(1024 * 1024)
    private.stall()
    try:
        _fails_fast(handle.read, TIMEOUT + SLACK)  # a held snapshot connection
        _fails_fast(lambda: store.get("k"), CONNECT + TIMEOUT + SLACK)  # pooled or new
        _fails_fast(lambda: store.put("j", 1), CONNECT + TIMEOUT + SLACK)
        other = f"{private.url}?table=stall_other"  # a new table: get_store checks it
        _fails_fast(lambda: get_store(other, connect_timeout=CONNECT, operation_timeout=TIMEOUT),
                    CONNECT + TIMEOUT + SLACK)  # fmt: skip
    finally:
        private.resume()
        handle.close()
    # Back to normal once the server answers again: dead connections are replaced.
    assert len(store.get("k", serialization_mode="raw")) == 3 * 1024 * 1024
    store.close()


def test_timeouts_are_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANYSTORE_SQL_OPERATION_TIMEOUT", "7.5")
    monkeypatch.setenv("ANYSTORE_SQL_DEADLOCK_RETRIES", "2")
    store = get_store(f"sqlite:///{tmp_path}/s.db")
    assert store.backend.settings.operation_timeout == 7.5  # type: ignore[attr-defined]
    assert store.backend.settings.deadlock_retries == 2  # type: ignore[attr-defined]
    store = get_store(f"sqlite:///{tmp_path}/s.db", operation_timeout=3)
    assert store.backend.settings.operation_timeout == 3  # type: ignore[attr-defined]
    with pytest.raises(InvalidOption, match="operation_timeout"):
        get_store(f"sqlite:///{tmp_path}/s.db", operation_timeout=0)


# -- deadlocks ------------------------------------------------------------------------------


def test_opposite_orders_never_fail(database: str) -> None:
    # The kit's check, with more keys and rounds: enough to deadlock without the fixes.
    keys = [f"k{i:03d}" for i in range(80)]
    assert opposite_order_writers(get_store(database), keys, rounds=25, deleted=20) == []


class _Deadlock(Exception):
    sqlstate = "40P01"


def test_a_lasting_deadlock_is_a_concurrent_modification() -> None:
    calls = []

    def deadlocked() -> None:
        calls.append(1)
        raise OperationalError("UPDATE ...", {}, _Deadlock("deadlock detected"))

    with pytest.raises(ConcurrentModification, match="colliding"):
        errors.run(deadlocked, "postgresql://u:***@h/db", retries=3, timeout=1)
    assert len(calls) == 4  # the first run and three retries

    def mysql_deadlock_once() -> str:
        calls.append(1)
        if len(calls) == 5:
            raise OperationalError("INSERT ...", {}, Exception(1213, "Deadlock found"))
        return "done"

    assert errors.run(mysql_deadlock_once, "mysql://h/db", retries=3, timeout=1) == "done"


# -- URLs, file descriptors, key limits -----------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://u:hunter2@127.0.0.1:notaport/test",
        "mysql://root:hunter2@127.0.0.1:99999999999999999999x/test",
        "postgresql://u:hunter2@127.0.0.1:-5/test",
    ],
)
def test_a_malformed_port_is_an_invalid_option(uri: str) -> None:
    with pytest.raises(InvalidOption, match="port") as error:
        get_store(uri)
    assert "hunter2" not in str(error.value) and "***" in str(error.value)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_closed_sqlite_stores_release_their_files(tmp_path: Path) -> None:
    before = _open_fds()
    stores: list[Store] = []
    for i in range(100):
        store = get_store(f"sqlite:///{tmp_path}/{i}.db")
        store.put("k", i)
        stores.append(store)
    assert _open_fds() >= before + 100  # each file, its WAL and shared memory
    for store in stores:
        store.close()
    assert _open_fds() <= before + 3
    # A store on the same file opened again (its engine disposed) works as before.
    with get_store(f"sqlite:///{tmp_path}/7.db") as store:
        assert store.get("k") == 7


def test_an_engine_is_shared_until_its_last_store_closes(tmp_path: Path) -> None:
    first = get_store(f"sqlite:///{tmp_path}/s.db")
    second = get_store(f"sqlite:///{tmp_path}/s.db?table=other")
    assert first.backend.engine is second.backend.engine  # type: ignore[attr-defined]
    first.put("k", 1)
    first.close()
    first.close()  # twice is harmless, and does not release the second store's engine
    second.put("k", 2)
    assert second.get("k") == 2
    second.close()


def test_key_limit_counts_the_child_prefix(database: str) -> None:
    store = get_store(f"{database}&prefix=child/store")
    dialect = store.backend.dialect  # type: ignore[attr-defined]
    assert store.backend.max_key_bytes == KEY_LIMITS[dialect] - len("child/store/")
