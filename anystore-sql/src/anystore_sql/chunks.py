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
instead of mixing versions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Connection, Table, and_, bindparam, case, delete, func, insert, select

from anystore.exceptions import ConcurrentModification
from anystore_sql.schema import CHUNK_BYTES, INLINE_MAX


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
        self.chunk_range = select(func.substr(c.c.data, start, length)).where(
            c.c.key == key, c.c.seq == bindparam("seq"), c.c.token == token
        )
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


def read_all(
    connection: Connection, statements: ChunkStatements, full: str, token: bytes, size: int
) -> bytes:
    """The whole chunked value of version `token`, `size` bytes.

    Raises `ConcurrentModification` when its rows do not add up to `size` (they are gone, or a
    writer that does not know chunks overwrote the row; see the README on migration).
    """
    rows = connection.execute(statements.all_chunks, {"k": full, "t": token})
    data = b"".join(bytes(row[0]) for row in rows)
    if len(data) != size:
        raise ConcurrentModification(
            f"The chunks of {full!r} hold {len(data)} bytes, its row says {size}: the value "
            "changed while it was read; read it again"
        )
    return data


@dataclass(frozen=True)
class RangeSource:
    """Reads `[start, start + length)` of one version of a value, a chunk row per query.

    `session()` gives the connection to run on: the snapshot connection a handle holds, or a
    fresh connection per range where there is no snapshot. `token` is the chunked value's
    version token; None for a value kept inline (read with substr, checked by `updated_at`).
    """

    session: Callable[[], AbstractContextManager[Connection]]
    statements: ChunkStatements
    full: str
    token: bytes | None
    updated_at: float

    def __call__(self, start: int, length: int) -> bytes:
        with self.session() as connection:
            return b"".join(self._pieces(connection, start, length))

    def _pieces(self, connection: Connection, start: int, length: int) -> Iterator[bytes]:
        s = self.statements
        if self.token is None:
            params = {"k": self.full, "u": self.updated_at, "start": start + 1, "length": length}
            value = connection.execute(s.inline_range, params).scalar()
            yield b"" if value is None else bytes(value)
            return
        end = start + length
        for seq in range(start // CHUNK_BYTES, (end - 1) // CHUNK_BYTES + 1):
            first = max(start, seq * CHUNK_BYTES)
            take = min(end, (seq + 1) * CHUNK_BYTES) - first
            params = {
                "k": self.full,
                "seq": seq,
                "t": self.token,
                "start": first - seq * CHUNK_BYTES + 1,
                "length": take,
            }
            data = connection.execute(s.chunk_range, params).scalar()
            if data is None:
                return  # the version is gone: the reader sees a short range and says so
            yield bytes(data)
