"""Streams and large values of the SQL backend: read handles on one version, chunked writes.

`open_read` takes a snapshot connection (see sessions.py), reads the value's head in it and
hands back a small value whole, or a seekable `anystore.io.open_ranged` handle whose ranges are
chunk rows of the opened version (`chunks.ChunkReader`), releasing the connection on close.
`open_write` spools and, on close, writes the row and its chunks in one short transaction
(`chunks.write_chunks`), retried whole after a deadlock.
"""

from __future__ import annotations

import io
import tempfile
import time
from functools import partial
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select

from anystore.exceptions import AnystoreError
from anystore.io import WriteHandle, open_ranged
from anystore_sql import watchdog
from anystore_sql.chunks import (
    ChunkReader,
    ChunkRows,
    ChunkStatements,
    new_token,
    read_all,
    write_chunks,
)
from anystore_sql.schema import INLINE_MAX
from anystore_sql.sessions import Sessions


class Streams(Sessions):
    """The streaming half of `SqlBackend` (a mixin: the backend sets the attributes below)."""

    table: Table
    _prefix: str
    _chunked: ChunkStatements
    _chunk_rows: ChunkRows
    _upsert: Any

    def _row(
        self, full: str, data: bytes, ttl: float | None, now: float, size: int | None = None
    ) -> dict[str, Any]:
        return {"k": full, "v": data, "now": now, "exp": now + ttl if ttl else None, "sz": size}

    if TYPE_CHECKING:  # SqlBackend's own

        def write(self, key: str, data: bytes, ttl: float | None = None) -> None: ...
        def _maybe_purge(self, now: float) -> None: ...

    def _read_chunked(self, full: str) -> bytes | None:
        # One session for the head and the chunks: a snapshot, or the in-memory lock held.
        def run() -> bytes | None:
            connection = self._snapshot()
            try:
                with self._session(connection)() as session:
                    row = session.execute(self._chunked.head, {"k": full, "now": time.time()})
                    head = row.first()
                    if head is None:
                        return None
                    size, _, value, _ = head
                    if size is None:
                        return bytes(value) if value is not None else self._whole(session, full)
                    return read_all(session, self._chunk_rows, full, bytes(value), int(size))
            finally:
                self._end(connection)

        return self._run(run)

    def _whole(self, session: Connection, full: str) -> bytes:
        value = session.execute(select(self.table.c.value).where(self.table.c.key == full))
        return bytes(value.scalar_one())

    def _write_chunked(self, key: str, source: IO[bytes], size: int, ttl: float | None) -> None:
        full = self._prefix + key
        self._transaction(
            lambda connection, watch: self._publish(connection, watch, full, source, size, ttl)
        )

    def _publish(
        self,
        connection: Connection,
        watch: watchdog.Deadline,
        full: str,
        source: IO[bytes],
        size: int,
        ttl: float | None,
    ) -> None:
        # The row first (its lock orders writers of this key), then its chunks.
        now = time.time()
        token = new_token()
        source.seek(0)
        watch.renew()
        connection.execute(self._upsert, self._row(full, token, ttl, now, size))
        written = write_chunks(connection, self._chunked, full, token, source, now, watch.renew)
        if written != size:
            # Our own spool changed size under us: an internal fault, not the caller's input.
            raise AnystoreError(f"wrote {written} of {size} bytes of {full!r}; nothing published")

    def open_read(self, key: str) -> IO[bytes] | None:
        return self._run(partial(self._open, self._prefix + key))

    def _open(self, full: str) -> IO[bytes] | None:
        connection = self._snapshot()
        session = self._session(connection)
        handed_over = False
        try:
            with session() as opened:
                head = opened.execute(self._chunked.head, {"k": full, "now": time.time()}).first()
            if head is None:
                return None
            size, length, value, updated = head
            if size is None and value is not None:
                return io.BytesIO(bytes(value))  # small: read whole, one statement
            total = int(size if size is not None else length)
            token = None if size is None else bytes(value)
            source = ChunkReader(
                session,
                self._chunked,
                full,
                token,
                updated,
                total,
                self._chunk_rows,
                snapshot=connection is not None,
            )
            handle = open_ranged(
                total,
                lambda start, length: self._run(partial(source, start, length), False),
                on_close=(lambda: self._end(connection)) if connection is not None else None,
            )
            handed_over = True
            return handle
        finally:
            if not handed_over:
                self._end(connection)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        # Spooled to a temp file, then written in one short transaction on close: chunk by
        # chunk (bounded memory), retried as a whole on a deadlock, and holding no lock while
        # the caller is still producing the value (on SQLite the lock is the whole database).
        # A value up to INLINE_MAX stays in memory; a larger one goes to disk at once (core's
        # default spool keeps 8 MiB in memory first).
        spool = tempfile.SpooledTemporaryFile(max_size=INLINE_MAX)

        def commit(spool: IO[bytes]) -> None:
            try:
                size = spool.seek(0, io.SEEK_END)
                spool.seek(0)
                if size <= INLINE_MAX:
                    self.write(key, spool.read(), ttl)
                else:
                    self._write_chunked(key, spool, size, ttl)
                    self._maybe_purge(time.time())
            finally:
                spool.close()

        return WriteHandle(spool, commit, lambda spool: spool.close())
