"""Large SQL values in chunk rows: snapshots, seeks, memory, migration, leftovers."""

from __future__ import annotations

import gc
import io
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Float, Index, LargeBinary, MetaData, Table, event, insert, text
from sqlalchemy.dialects import mysql

from anystore import get_store
from anystore.exceptions import AnystoreError, ConcurrentModification
from anystore.store import Store
from anystore_sql.chunks import READ_AHEAD, ChunkRows
from anystore_sql.schema import CHUNK_BYTES, KeyType
from tests.transfer import move_200mb

MIB = 1024 * 1024


def _data(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed) % 256 for i in range(256)) * 4096
    return (block * (size // len(block) + 1))[:size]


class Statements:
    """Counts the statements an engine sends, by the table they name."""

    def __init__(self, store: Store) -> None:
        self.sent: list[str] = []
        self.engine = store.backend.engine  # type: ignore[attr-defined]
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.sent.append(statement)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def reset(self) -> None:
        self.sent.clear()


@pytest.fixture
def counted(database: str) -> Iterator[tuple[Store, Statements]]:
    store = get_store(database)
    store.backend._next_purge = float("inf")  # type: ignore[attr-defined]  # no purge now
    statements = Statements(store)
    yield store, statements
    statements.close()


def _snapshot(database: str) -> bool:
    return not database.startswith("sqlite://?")


def test_overwrite_mid_read_serves_the_old_version_or_refuses(database: str) -> None:
    store = get_store(database)
    old, new = _data(5 * MIB + 3, 1), _data(4 * MIB, 2)
    store.put("k", old)
    with store.open("k", "rb") as handle:
        first = handle.read(MIB)
        store.put("k", new)
        store.put("other", b"x" * 10)  # writers are not blocked by the open reader
        if _snapshot(database):
            assert first + handle.read() == old  # the snapshot keeps the old version
        else:
            with pytest.raises(ConcurrentModification):
                handle.read()
    assert store.get("k", serialization_mode="raw") == new


def test_delete_mid_read_serves_the_old_version_or_refuses(database: str) -> None:
    store = get_store(database)
    old = _data(3 * MIB, 3)
    store.put("k", old)
    handle = store.open("k", "rb")
    first = handle.read(10)
    store.delete("k")
    if _snapshot(database):
        assert first + handle.read() == old
    else:
        with pytest.raises(ConcurrentModification):
            handle.read()
    handle.close()
    assert not store.exists("k")


def test_abandoned_read_handle_releases_its_connection(database: str) -> None:
    if not _snapshot(database):
        pytest.skip("in-memory SQLite reads hold no connection between reads")
    store = get_store(database)
    store.put("k", _data(3 * MIB))
    pool = store.backend.engine.pool  # type: ignore[attr-defined]
    before = pool.checkedout()
    handle = store.open("k", "rb")
    handle.read(100)
    assert pool.checkedout() == before + 1
    del handle
    gc.collect()
    assert pool.checkedout() == before
    with store.open("k", "rb") as handle:
        handle.read(1)
    assert pool.checkedout() == before


def test_seek_is_one_ranged_query(counted: tuple[Store, Statements]) -> None:
    store, statements = counted
    data = _data(9 * MIB + 17)
    store.put("big", data)
    with store.open("big", "rb") as handle:
        statements.reset()
        handle.seek(7 * MIB + 5)
        assert handle.read(100) == data[7 * MIB + 5 : 7 * MIB + 105]
        reads = [s for s in statements.sent if "_chunks" in s]
        # The 1 MiB buffer from there: chunk rows 7 and 8, none of the 7 before.
        assert len(reads) == 2, statements.sent
        assert handle.seek(-10, io.SEEK_END) == len(data) - 10
        assert handle.read() == data[-10:]
        handle.seek(-20, io.SEEK_CUR)
        assert handle.tell() == len(data) - 20
        assert handle.read(5) == data[-20:-15]


def test_a_sequential_read_fetches_rows_ahead(counted: tuple[Store, Statements]) -> None:
    store, statements = counted
    data = _data(9 * MIB + 1)
    store.put("big", data)
    with store.open("big", "rb") as handle:
        statements.reset()
        assert handle.read() == data
        reads = [s for s in statements.sent if "_chunks" in s]
        # 10 chunk rows: 1, then READ_AHEAD (2) per query while the reads go on in order.
        assert len(reads) == 1 + -(-9 // READ_AHEAD), statements.sent
        statements.reset()
        handle.seek(MIB + 10)  # a seek starts again from the row it needs
        assert handle.read(10) == data[MIB + 10 : MIB + 20]
        assert len([s for s in statements.sent if "_chunks" in s]) == 2  # rows 1 and 2


def test_reads_in_any_order_serve_the_opened_bytes(database: str) -> None:
    # No statement listener here: PostgreSQL reads binary results on the driver, SQLite file
    # stores read chunk rows with blob I/O (see the next test).
    store = get_store(database)
    data = _data(6 * MIB + 12345, 4)
    store.put("big", data)
    rng = random.Random(7)
    with store.open("big", "rb") as handle:
        assert handle.read(10) == data[:10]
        assert handle.read(3 * MIB) == data[10 : 3 * MIB + 10]  # across chunk ends
        handle.seek(MIB - 7)  # back into rows served already
        assert handle.read(20) == data[MIB - 7 : MIB + 13]
        handle.seek(5 * MIB + 3)  # past what was fetched ahead
        assert handle.read() == data[5 * MIB + 3 :]
        for _ in range(20):
            start = rng.randrange(len(data))
            length = rng.choice([1, 100, MIB - 1, MIB, MIB + 1, 3 * MIB])
            handle.seek(start)
            assert handle.read(length) == data[start : start + length]
        handle.seek(0)
        assert handle.read() == data


def test_sqlite_files_read_chunks_with_blob_io(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not hasattr(sqlite3.Connection, "blobopen"):
        pytest.skip("sqlite3 has blobopen from Python 3.11")
    blobs: list[int] = []
    original = ChunkRows.blob

    def counted(self: ChunkRows, connection: Any, rowid: int, low: int, high: int) -> bytes:
        blobs.append(high - low)
        return original(self, connection, rowid, low, high)

    monkeypatch.setattr(ChunkRows, "blob", counted)
    store = get_store(f"sqlite:///{tmp_path}/blobs.db")
    data = _data(3 * MIB + 5, 6)
    store.put("big", data)
    with store.open("big", "rb") as handle:
        assert handle.read() == data
    assert blobs == [MIB, MIB, MIB, 5]
    old, new = data, _data(2 * MIB + 1, 7)
    with store.open("big", "rb") as handle:  # the snapshot holds across the rowids it read
        head = handle.read(MIB)
        store.put("big", new)
        store.put("other", new)  # new chunk rows, maybe on the rowids of the old ones
        assert head + handle.read() == old
    assert store.get("big", serialization_mode="raw") == new
    store.close()


def test_postgresql_whole_value_reads_take_binary_results(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database.startswith("postgresql"):
        pytest.skip("binary results are psycopg's")
    sent: list[str] = []
    original = ChunkRows._binary

    def counted(self: ChunkRows, connection: Any, sql: str, params: dict[str, Any]) -> list[Any]:
        sent.append(sql)
        return original(self, connection, sql, params)

    monkeypatch.setattr(ChunkRows, "_binary", counted)
    store = get_store(database)
    data = _data(2 * MIB + 3, 8)
    store.put("big", data)
    # get, get_many and pop join every chunk row from one binary query (bytea as hex text
    # cost twice the transfer and a decoding pass).
    assert store.get("big", serialization_mode="raw") == data
    assert store.get_many(["big"], serialization_mode="raw") == {"big": data}
    assert store.pop("big", serialization_mode="raw") == data
    assert len(sent) == 3 and all("ORDER BY" in sql for sql in sent), sent


def test_small_put_and_get_are_one_statement(counted: tuple[Store, Statements]) -> None:
    store, statements = counted
    store.put("small", b"v" * 1000)
    assert store.get("small", serialization_mode="raw") == b"v" * 1000
    sent = [s for s in statements.sent if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    assert len(sent) == 2, sent


def test_large_values_are_chunk_rows(database: str) -> None:
    store = get_store(database)
    data = _data(3 * CHUNK_BYTES + 5)
    store.put("big", data)
    with store.open("big2", "wb") as handle:
        for i in range(0, len(data), 100_000):
            handle.write(data[i : i + 100_000])
    backend = store.backend
    with backend.engine.connect() as connection:  # type: ignore[attr-defined]
        rows = connection.execute(
            text(f"SELECT COUNT(*), MAX(LENGTH(data)) FROM {backend.chunks.name}")  # type: ignore[attr-defined]
        ).one()
    assert tuple(rows) == (8, CHUNK_BYTES)
    assert store.get("big", serialization_mode="raw") == data
    assert store.get_many(["big", "big2"], serialization_mode="raw") == {"big": data, "big2": data}
    assert store.info("big2").size == len(data)
    assert store.pop("big", serialization_mode="raw") == data
    assert not store.exists("big")
    store.put("big2", b"small now")  # the inline overwrite leaves the chunks to cleanup
    assert store.cleanup(older_than=3600) == 0
    assert store.cleanup(older_than=0) == 4
    assert store.get("big2") == "small now"


def test_expired_chunked_values_are_purged_with_their_chunks(database: str) -> None:
    store = get_store(database)
    store.backend._next_purge = float("inf")  # type: ignore[attr-defined]  # only the purge below
    store.put("gone", _data(2 * MIB + 1), ttl=0.3)
    time.sleep(0.4)
    assert not store.exists("gone")
    assert store.backend.purge_expired() == 1  # type: ignore[attr-defined]
    assert store.cleanup(older_than=0) == 0  # nothing left over


@pytest.mark.slow
def test_200mb_through_open_in_bounded_memory(shared_database: str) -> None:
    baseline, peak = move_200mb(repr(shared_database))
    # The baseline (Python, SQLAlchemy, pydantic, the driver, connected) is 50-62 MB alone; the
    # transfer itself holds a chunk or two.
    assert peak - baseline < 16, f"moving 200 MB took {peak - baseline} MB (peak {peak} MB)"


# -- a table written by anystore-sql before chunking ------------------------------------------


def _legacy_table(name: str) -> Table:
    """The value table as the previous schema code created it (one row per value)."""
    value_type = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    table = Table(
        name,
        MetaData(),
        Column("key", KeyType(), primary_key=True),
        Column("value", value_type, nullable=False),
        Column("created_at", Float(53), nullable=False),
        Column("updated_at", Float(53), nullable=False),
        Column("expires_at", Float(53), nullable=True),
    )
    Index(f"ix_{name}_expires_at", table.c.expires_at)
    return table


def test_a_table_of_the_old_schema_keeps_working(database: str) -> None:
    from sqlalchemy import create_engine

    from anystore_sql.urls import parse_uri

    url, name, _ = parse_uri(database)
    if url.startswith("sqlite://") and not url.startswith("sqlite:///"):
        pytest.skip("an in-memory database cannot hold a table from an earlier version")
    engine = create_engine(url)
    legacy = _legacy_table(name)
    legacy.metadata.create_all(engine)
    big = _data(3 * MIB + 1, 5)  # a value the old code kept whole in its row
    now = time.time()
    rows = [("old/small", b'"kept"'), ("old/big", big)]
    with engine.begin() as connection:
        for key, value in rows:
            row = {"key": key, "value": value, "created_at": now, "updated_at": now}
            connection.execute(insert(legacy).values(expires_at=None, **row))
    engine.dispose()
    store = get_store(database)
    assert store.get("old/small") == "kept"
    assert store.get("old/big", serialization_mode="raw") == big
    assert store.info("old/big").size == len(big)
    with store.open("old/big", "rb") as handle:
        handle.seek(2 * MIB)
        assert handle.read(MIB) == big[2 * MIB : 3 * MIB]
    store.put("old/big", big[::-1])  # rewritten as chunks
    assert store.get("old/big", serialization_mode="raw") == big[::-1]
    assert sorted(store.iterate_keys()) == ["old/big", "old/small"]


def test_a_table_that_cannot_be_migrated_says_what_to_run(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    _legacy_table("cache").metadata.create_all(engine)
    engine.dispose()
    # Read-only access: the ALTER TABLE that migrates the table is refused.
    uri = f"sqlite:///file:{tmp_path}/old.db?mode=ro&uri=true&table=cache"
    with pytest.raises(AnystoreError, match="ADD COLUMN size BIGINT NULL") as error:
        get_store(uri)
    assert "older anystore-sql" in str(error.value)


WRITER = """
import sys
from anystore import get_store
get_store(sys.argv[1], busy_timeout=2000).put("k", b"new" * 1000)
"""


def test_an_open_reader_does_not_block_another_process_writing(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/shared.db"
    store = get_store(uri)
    old = _data(3 * MIB)
    store.put("k", old)
    with store.open("k", "rb") as handle:
        head = handle.read(MIB)
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", WRITER, uri], check=True, timeout=60)
        assert time.monotonic() - start < 10
        assert head + handle.read() == old
    assert store.get("k", serialization_mode="raw") == b"new" * 1000
