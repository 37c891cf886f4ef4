"""The SQL fast path: single-row reads as driver SQL on a held pooled connection, one statement
each, a dead connection replaced once, errors still anystore's."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from anystore import get_store
from anystore.exceptions import AnystoreError, BackendUnavailable
from anystore.store import Store
from anystore_sql.backend import SqlBackend
from anystore_sql.fastpath import Held, Idle


def _backend(store: Store) -> SqlBackend:
    backend = store.backend
    assert isinstance(backend, SqlBackend)
    return backend


def _idle(store: Store) -> Idle:
    return _backend(store)._shared.idle


class Counting:
    """A driver cursor that counts the statements it executes."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.sent: list[str] = []

    def execute(self, sql: str, args: Any = None) -> Any:
        self.sent.append(sql)
        return self.cursor.execute(sql) if args is None else self.cursor.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


@pytest.fixture
def store(database: str) -> Iterator[Store]:
    with get_store(database) as opened:
        yield opened


def _held(store: Store) -> Held:
    idle = _idle(store)
    # The engine, and so its idle connections, is shared with every store on the same server
    # that is still open in this worker (earlier tests' included): start from none held.
    idle.drain()
    store.exists("warm-up")  # checks a connection out for the fast path
    assert len(idle.held) == 1
    return idle.held[0]


def test_reads_are_one_driver_statement_each(store: Store) -> None:
    store.put("k", b"v" * 100)
    held = _held(store)
    counting = Counting(held.cursor)
    held.cursor = counting
    assert store.get("k", serialization_mode="raw") == b"v" * 100
    assert store.exists("k")
    assert not store.exists("missing")
    assert store.info("k").size == 100
    assert len(counting.sent) == 4, counting.sent
    assert all(sql.lstrip().startswith("SELECT") for sql in counting.sent)
    assert _idle(store).held == [held]  # the same connection served every read


def test_sqlite_reads_send_no_transaction_statements(tmp_path: Any) -> None:
    with get_store(f"sqlite:///{tmp_path}/s.db") as store:
        store.put("k", 1)
        held = _held(store)
        traced: list[str] = []
        held.driver.set_trace_callback(traced.append)
        for _ in range(3):
            assert store.get("k") == 1
        held.driver.set_trace_callback(None)
        assert len(traced) == 3, traced
        assert all(sql.startswith("SELECT") for sql in traced)


def test_mariadb_read_is_one_statement_on_the_wire(database: str) -> None:
    if not database.startswith("mysql"):
        pytest.skip("MariaDB counts the statements of a session")
    with get_store(database) as store:
        store.put("k", 1)
        held = _held(store)

        def questions() -> int:
            held.cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            return int(held.cursor.fetchone()[1])

        before = questions()
        for _ in range(10):
            assert store.get("k") == 1
        # The SHOW statements themselves count one each.
        assert questions() - before == 10 + 1


def _kill(store: Store, held: Held, database: str) -> None:
    """End the server side of `held` from another connection (SQLite: close it)."""
    dialect = _backend(store).dialect
    if dialect == "sqlite":
        held.driver.close()
        return
    if dialect == "postgresql":
        pid = held.driver.info.backend_pid
        kill = f"SELECT pg_terminate_backend({pid})"
    else:
        kill = f"KILL {held.driver.thread_id()}"
    other = get_store(database)
    try:
        with _backend(other).engine.connect() as connection:
            connection.execute(text(kill))
            connection.commit()
    finally:
        other.close()
    time.sleep(0.2)  # the server closes the socket


def test_a_killed_connection_is_replaced_once(store: Store, database: str) -> None:
    if database.startswith("sqlite://?"):
        pytest.skip("in-memory SQLite has one connection: closing it loses the database")
    store.put("k", b"v")
    held = _held(store)
    _kill(store, held, database)
    assert store.get("k", serialization_mode="raw") == b"v"
    assert _idle(store).held and _idle(store).held[0] is not held
    assert store.exists("k")


def test_a_connection_dead_twice_is_unavailable(tmp_path: Any, monkeypatch: Any) -> None:
    with get_store(f"sqlite:///{tmp_path}/s.db") as store:
        store.put("k", 1)
        idle = _idle(store)
        take = idle.take
        taken: list[Held] = []

        def dead() -> Held:
            held = take()
            held.driver.close()
            taken.append(held)
            return held

        monkeypatch.setattr(idle, "take", dead)
        with pytest.raises(BackendUnavailable, match="closed database"):
            store.get("k")
        assert len(taken) == 2  # the first try and one retry on a fresh connection
        monkeypatch.undo()
        assert store.get("k") == 1


def test_other_errors_are_typed_as_before_and_not_retried(store: Store) -> None:
    store.put("k", 1)
    held = _held(store)
    counting = Counting(held.cursor)
    held.cursor = counting
    backend = _backend(store)
    with backend.engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {backend.table.name}"))
    with pytest.raises(AnystoreError, match=r"no such table|does not exist|doesn't exist") as fast:
        store.get("k")
    assert len(counting.sent) == 1
    # The SQLAlchemy path (taken while a listener watches) raises the same error type.
    event.listen(backend.engine, "before_cursor_execute", _ignore)
    try:
        with pytest.raises(AnystoreError) as slow:
            store.get("k")
    finally:
        event.remove(backend.engine, "before_cursor_execute", _ignore)
    assert type(fast.value) is type(slow.value)
    assert str(fast.value) == str(slow.value)


def _ignore(*_: Any) -> None:
    pass


def test_listeners_see_every_read(store: Store) -> None:
    store.put("k", 1)
    engine = _backend(store).engine
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert store.get("k") == 1
        assert store.exists("k")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len([s for s in seen if s.startswith("SELECT")]) == 2, seen


def test_held_connections_leave_room_for_other_work(database: str) -> None:
    if database.startswith("sqlite://?"):
        pytest.skip("in-memory SQLite has one static connection")
    # Were the connection not handed back, the pool would raise its TimeoutError after 3 s.
    with get_store(database, pool_size=1, max_overflow=0, pool_timeout=3) as store:
        store.put("k", 1)
        assert store.get("k") == 1  # the fast path now holds the pool's only connection
        store.put("k", 2)  # a write transaction needs it
        with store.open("k", "rb") as handle:  # and a snapshot
            handle.read()
        assert store.get("k") == 2


def _child_reads(database: str, queue: Any) -> None:
    store = _CHILD_STORE[0]
    queue.put(store.get("k"))


_CHILD_STORE: list[Store] = []


def test_a_forked_child_opens_its_own_connection(shared_database: str) -> None:
    with get_store(shared_database) as store:
        store.put("k", 1)
        parent_held = _held(store)
        _CHILD_STORE[:] = [store]
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child_reads, args=(shared_database, queue))
        child.start()
        child.join(30)
        _CHILD_STORE.clear()
        assert child.exitcode == 0
        assert queue.get(timeout=5) == 1
        # The parent's connection was left alone by the child and still serves the parent.
        assert store.get("k") == 1
        assert _idle(store).held == [parent_held]


def test_small_put_and_delete_are_driver_statements(store: Store) -> None:
    held = _held(store)
    counting = Counting(held.cursor)
    held.cursor = counting
    store.put("k", b"v" * 100)
    assert store.get("k", serialization_mode="raw") == b"v" * 100
    store.delete("k")
    assert not store.exists("k")
    sent = [sql.split()[0] for sql in counting.sent]
    dialect = _backend(store).dialect
    if dialect == "sqlite":  # the row, then its chunks, in one local transaction
        assert sent == ["INSERT", "SELECT", "BEGIN", "DELETE", "DELETE", "COMMIT", "SELECT"]
    elif dialect == "postgresql":  # one statement deletes both
        assert sent == ["INSERT", "SELECT", "WITH", "SELECT"]
    else:  # one multi-table DELETE
        assert sent == ["INSERT", "SELECT", "DELETE", "SELECT"]


def _chunk_rows(store: Store) -> int:
    backend = _backend(store)
    with backend.engine.connect() as connection:
        return int(
            connection.execute(text(f"SELECT COUNT(*) FROM {backend.chunks.name}")).scalar_one()
        )


def test_delete_removes_the_chunks_too(store: Store) -> None:
    store.put("big", b"x" * (2 * 1024 * 1024 + 1))
    store.put("orphaned", b"y" * (2 * 1024 * 1024 + 1))
    store.put("orphaned", b"small")  # an inline overwrite leaves its old chunks behind
    assert _chunk_rows(store) == 6
    store.delete("big")
    store.delete("orphaned")
    assert _chunk_rows(store) == 0
    assert not store.exists("big") and not store.exists("orphaned")


def test_a_listing_is_one_driver_statement_per_page(store: Store) -> None:
    from anystore_sql.backend import PAGE

    keys = [f"d/{i:05d}" for i in range(PAGE + 1)]
    store.put_many([(key, b"v") for key in keys])
    store.put("e/other", b"v")
    held = _held(store)
    counting = Counting(held.cursor)
    held.cursor = counting
    assert sorted(store.iterate_keys("d")) == keys
    assert len(counting.sent) == 2, counting.sent  # a full page, then the last key
