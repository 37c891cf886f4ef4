"""Large values in chunk rows: writing them in one transaction, reading ranges of one version.

A value over `INLINE_MAX` bytes is written as its row in the value table (`size` set, `value`
holding a fresh 16-byte version token) followed by `CHUNK_BYTES` rows in the chunk table, each
carrying the token, all in the writer's transaction. The row comes first, so every writer of a
key takes the key's row lock before it touches the key's chunks: two writers of one key queue
on the row, never deadlock on chunks.

A reader serves ranges of the version it opened: inside a snapshot transaction where the
database has one (PostgreSQL REPEATABLE READ, MySQL/MariaDB `WITH CONSISTENT SNAPSHOT`, SQLite
WAL), else by asking for the chunk rows of its token only (in-memory SQLite), so that once the
value is replaced or deleted the rows are gone and the read fails with `ConcurrentModification`
instead of mixing versions. A reader going on sequentially fetches whole chunk rows ahead (up to
`READ_AHEAD` a query; `ChunkReader`); a seek starts again from the row it needs. psycopg reads
them as binary results, SQLite (in a snapshot) with incremental blob I/O (`ChunkRows`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.engine.interfaces import Dialect

from anystore.exceptions import ConcurrentModification
from anystore_sql import errors
from anystore_sql.schema import CHUNK_BYTES, INLINE_MAX

# Chunk rows (MiB) a handle reading sequentially fetches per query, at most. Few on purpose:
# every row is a fresh 1 MiB allocation, and with several held at once the allocator gave the
# memory back and faulted it in again on every query (on SQLite 63,000 page faults per 200 MB
# at 4 rows a query, none at 1; half the speed); a round trip costs far less than a MiB.
READ_AHEAD = 2
# Rowids (SQLite, no data) a sequential reader looks up per query, at most.
ROWIDS_AHEAD = 64


def new_token() -> bytes:
    """A version token for a chunked value (random: unique across processes)."""
    return uuid.uuid4().bytes


class ChunkStatements:
    """The statements over one value table and its chunk table."""

    def __init__(self, table: Table, chunks: Table, live: Any) -> None:
        t, c = table, chunks
        key: Any = bindparam("k")
        token: Any = bindparam("t")
        self.clear = delete(c).where(c.c.key == key)
        self.clear_many = delete(c).where(c.c.key.in_(bindparam("keys", expanding=True)))
        self.add = insert(c).values(
            key=key,
            seq=bindparam("seq"),
            token=token,
            data=bindparam("d"),
            created_at=bindparam("now"),
        )
        # Everything a reader needs to know at open, in one query: size (NULL: inline), the
        # token of a chunked value, a small inline value itself, and a big inline value's
        # length and time (values written before chunking; see schema.py).
        inline = t.c.size.is_(None)
        self.head = select(
            t.c.size,
            case((inline, func.length(t.c.value))),
            case((~inline, t.c.value), (func.length(t.c.value) <= INLINE_MAX, t.c.value)),
            t.c.updated_at,
        ).where(t.c.key == key, live)
        start: Any = bindparam("start")
        length: Any = bindparam("length")
        # Whole chunk rows `first <= seq < stop` of one version, `n` = stop - first: a range
        # on the primary key (on SQLite several times faster than `seq = :seq` per row), and a
        # LIMIT so that the scan stops at its last row: without it InnoDB also fetched the next
        # row's 1 MiB to find the range's end (from disk when the value outgrows its buffer
        # pool: a third slower at two rows a query).
        self.chunk_rows = (
            select(c.c.seq, c.c.data)
            .where(
                c.c.key == key,
                c.c.token == token,
                c.c.seq >= bindparam("first"),
                c.c.seq < bindparam("stop"),
            )
            .order_by(c.c.seq)
            .limit(bindparam("n"))
        )
        # Their rowids instead, for SQLite's incremental blob I/O.
        self.chunk_rowids = self.chunk_rows.with_only_columns(c.c.seq, literal_column("rowid"))
        self.chunks_name = c.name
        self.all_chunks = (
            select(c.c.data).where(c.c.key == key, c.c.token == token).order_by(c.c.seq)
        )
        self.inline_range = select(func.substr(t.c.value, start, length)).where(
            t.c.key == key, t.c.size.is_(None), t.c.updated_at == bindparam("u")
        )
        self.orphans = delete(c).where(
            c.c.created_at < bindparam("cut"),
            c.c.key >= bindparam("low"),
            c.c.key < bindparam("high"),
            ~select(t.c.key)
            .where(and_(t.c.key == c.c.key, t.c.size.is_not(None), t.c.value == c.c.token))
            .exists(),
        )


def write_chunks(
    connection: Connection,
    statements: ChunkStatements,
    full: str,
    token: bytes,
    source: IO[bytes],
    now: float,
    renew: Callable[[], None],
) -> int:
    """Replace the chunk rows of `full` with the bytes of `source`; return how many were read.

    Call it after writing the key's row in the same transaction (the row lock comes first).
    `renew` is called before each chunk (it extends the statement deadline).
    """
    renew()
    connection.execute(statements.clear, {"k": full})
    seq = 0
    size = 0
    while data := source.read(CHUNK_BYTES):
        renew()
        connection.execute(
            statements.add, {"k": full, "seq": seq, "t": token, "d": data, "now": now}
        )
        size += len(data)
        seq += 1
    return size


def read_all(connection: Connection, rows: ChunkRows, full: str, token: bytes, size: int) -> bytes:
    """The whole chunked value of version `token`, `size` bytes.

    Raises `ConcurrentModification` when its rows do not add up to `size` (they are gone, or a
    writer that does not know chunks overwrote the row; see the README on migration).
    """
    data = b"".join(bytes(row[0]) for row in rows.all(connection, {"k": full, "t": token}))
    if len(data) != size:
        raise ConcurrentModification(
            f"The chunks of {full!r} hold {len(data)} bytes, its row says {size}: the value "
            "changed while it was read; read it again"
        )
    return data


class ChunkReader:
    """Reads `[start, start + length)` of one version of a value (a `read_range` of core's
    `open_ranged`), a few chunk rows per query, or straight from the rows on SQLite.

    `session()` gives the connection to run on: the snapshot connection a handle holds, or a
    fresh connection per range where there is no snapshot. `token` is the chunked value's
    version token; None for a value kept inline (read with substr, checked by `updated_at`).
    `rows` runs the queries (a `ChunkRows`); `snapshot` tells that `session()` is the held
    snapshot connection, where SQLite's chunk rows are read with incremental blob I/O (their
    rowids, looked up by token in the snapshot, stay valid for the handle's life).

    A read that goes on where the previous one ended doubles how many rows (rowids on SQLite)
    the next query fetches ahead, up to `READ_AHEAD` (`ROWIDS_AHEAD`); a seek starts again from
    one and drops what was fetched ahead. Memory: the rows fetched and not served yet.
    """

    def __init__(
        self,
        session: Callable[[], AbstractContextManager[Connection]],
        statements: ChunkStatements,
        full: str,
        token: bytes | None,
        updated_at: float,
        size: int,
        rows: ChunkRows,
        snapshot: bool,
    ) -> None:
        self.session = session
        self.statements = statements
        self.full = full
        self.token = token
        self.updated_at = updated_at
        self.size = size
        self._count = -(-size // CHUNK_BYTES)
        self._rows = rows
        self._blobs = snapshot and rows.blobs
        self._most = ROWIDS_AHEAD if self._blobs else rows.ahead()
        self._ahead: dict[int, Any] = {}  # seq -> its data, or its rowid on SQLite
        self._window = 1
        self._next = 0  # where the previous range ended

    def __call__(self, start: int, length: int) -> bytes:
        with self.session() as connection:
            if self.token is None:
                return self._inline(connection, start, length)
            return self._chunked(connection, start, length)

    def _inline(self, connection: Connection, start: int, length: int) -> bytes:
        params = {"k": self.full, "u": self.updated_at, "start": start + 1, "length": length}
        value = connection.execute(self.statements.inline_range, params).scalar()
        return b"" if value is None else bytes(value)

    def _chunked(self, connection: Connection, start: int, length: int) -> bytes:
        end = start + length
        if start != self._next:
            self._ahead.clear()  # a seek: what was fetched ahead is not what comes next
            self._window = 1
        self._next = end
        pieces = []
        for seq in range(start // CHUNK_BYTES, (end - 1) // CHUNK_BYTES + 1):
            base = seq * CHUNK_BYTES
            low, high = max(start, base) - base, min(end, base + CHUNK_BYTES) - base
            piece = self._piece(connection, seq, low, high)
            if piece is None:
                break  # the version is gone: the reader sees a short range and says so
            pieces.append(piece)
        return b"".join(pieces)

    def _piece(self, connection: Connection, seq: int, low: int, high: int) -> bytes | None:
        """Bytes `[low, high)` of chunk `seq`, None if its row is gone."""
        ahead = self._ahead
        found = ahead.get(seq)
        if found is None:
            stop = min(self._count, seq + self._window)
            params = {"k": self.full, "t": self.token, "first": seq, "stop": stop, "n": stop - seq}
            fetch = self._rows.rowids if self._blobs else self._rows
            ahead.update((int(row[0]), row[1]) for row in fetch(connection, params))
            self._window = min(self._most, self._window * 2)
            found = ahead.get(seq)
            if found is None:
                return None
        if high >= min(CHUNK_BYTES, self.size - seq * CHUNK_BYTES):
            del ahead[seq]  # served to its end: a sequential reader never asks again
        if self._blobs:
            return self._rows.blob(connection, int(found), low, high)
        data = bytes(found)
        return data if low == 0 and high >= len(data) else data[low:high]


class ChunkRows:
    """Runs the chunk reads of `ChunkReader` on one backend's dialect.

    `__call__` gives the `(seq, data)` rows of `ChunkStatements.chunk_rows`. On psycopg (when
    `direct()` allows: no echo, no cursor listeners) it runs on the driver's own connection
    asking for binary results: bytea in text form is hex, and decoding it cost more than the
    transfer. On SQLite (Python 3.11+, `direct()` again) `rowids` and `blob` read a chunk with
    incremental blob I/O instead: straight from the database pages into the bytes handed on,
    where a selected row is copied once more inside SQLite.
    """

    def __init__(
        self, statements: ChunkStatements, dialect: Dialect, direct: Callable[[], bool]
    ) -> None:
        self.statement = statements.chunk_rows
        self.all_statement = statements.all_chunks
        self.rowid_statement = statements.chunk_rowids
        self.chunks = statements.chunks_name
        self.dialect = dialect
        self.direct = direct
        self.binary = dialect.name == "postgresql" and dialect.driver == "psycopg"
        self.sql = str(self.statement.compile(dialect=dialect)) if self.binary else ""
        self.all_sql = str(self.all_statement.compile(dialect=dialect)) if self.binary else ""
        self._blobs = dialect.driver == "pysqlite" and hasattr(
            dialect.loaded_dbapi.Connection, "blobopen"
        )

    def ahead(self) -> int:
        """The most rows a query fetches for a sequential reader: one with psycopg's binary
        results (two rows a query faulted every page of both in again, see READ_AHEAD),
        READ_AHEAD elsewhere."""
        return 1 if self.binary and self.direct() else READ_AHEAD

    @property
    def blobs(self) -> bool:
        """Whether chunks are read with SQLite's incremental blob I/O (see `blob`)."""
        return self._blobs and self.direct()

    def __call__(self, connection: Connection, params: dict[str, Any]) -> list[Any]:
        return self._rows(connection, self.statement, self.sql, params)

    def all(self, connection: Connection, params: dict[str, Any]) -> list[Any]:
        """The `(data,)` rows of every chunk of one version (`ChunkStatements.all_chunks`), in
        order: what a whole-value read (`get`, `pop`) joins."""
        return self._rows(connection, self.all_statement, self.all_sql, params)

    def _rows(
        self, connection: Connection, statement: Any, sql: str, params: dict[str, Any]
    ) -> list[Any]:
        if self.binary and self.direct():
            return self._binary(connection, sql, params)
        return list(connection.execute(statement, params))

    def rowids(self, connection: Connection, params: dict[str, Any]) -> list[Any]:
        """The `(seq, rowid)` rows of the chunk rows `chunk_rows` would select (SQLite)."""
        return list(connection.execute(self.rowid_statement, params))

    def blob(self, connection: Connection, rowid: int, low: int, high: int) -> bytes:
        """Bytes `[low, high)` of the chunk row `rowid`, read in the connection's transaction."""
        driver: Any = connection.connection.driver_connection
        with (
            self._translated(driver, "blobopen", {"rowid": rowid}),
            driver.blobopen(self.chunks, "data", rowid, readonly=True) as blob,
        ):
            if low:
                blob.seek(low)
            return bytes(blob.read(high - low))

    def _binary(self, connection: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
        driver: Any = connection.connection.driver_connection
        # The connection's snapshot transaction is open (SQLAlchemy began it, the head query
        # ran in it): the driver's cursor reads in the same one.
        with self._translated(driver, sql, params), driver.cursor(binary=True) as cursor:
            cursor.execute(sql, params)
            rows: list[Any] = cursor.fetchall()
        return rows  # the cursor is closed: the driver's copy of the result is freed

    @contextmanager
    def _translated(self, driver: Any, sql: str, params: dict[str, Any]) -> Iterator[None]:
        """Driver errors raised as SQLAlchemy raises them, so that errors.run translates them
        (a lost connection is BackendUnavailable; the handle's release invalidates it)."""
        error_type: type[Exception] = self.dialect.loaded_dbapi.Error
        try:
            yield
        except error_type as error:
            raise errors.from_driver(self.dialect, error, sql, params, driver) from None
