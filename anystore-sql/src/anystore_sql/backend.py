"""SQL stores: `sqlite:///file.db`, `sqlite://` (memory), `postgresql://...`, `mysql://...`,
`mariadb://...` (and `+driver` forms), with `?table=NAME&prefix=some/prefix`.

SQLAlchemy 2 Core, one engine per database URL shared by the stores on it (`engines.py`); the
single-statement operations run as precompiled driver SQL on its pooled connections instead
(`fastpath.py`).
Each statement is written out per dialect (the upserts in `statements.py`): an upsert per put
of a small value (created_at kept), one executemany per put_many, one `IN` per get_many,
`DELETE ... RETURNING` (or a row lock) per pop, and listings that page through the primary-key
index without ever selecting a value. Values over 1 MiB live in chunk rows (`chunks.py`); read
handles serve one version (a snapshot transaction, or a version token); every transaction takes
row locks in key order and is retried on deadlocks (`errors.py`); statements have a deadline.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select

from anystore.backend import Backend, BackendStat, utc
from anystore.exceptions import InvalidKey, mask_uri
from anystore.keys import lock_name
from anystore.settings import load_settings
from anystore_sql import statements
from anystore_sql.chunks import ChunkRows, ChunkStatements, read_all
from anystore_sql.engines import acquire, release
from anystore_sql.fastpath import FastPath, Statement
from anystore_sql.schema import CHUNK_BYTES, INLINE_MAX, KEY_LIMITS, ensure_tables, make_tables
from anystore_sql.sessions import Sessions
from anystore_sql.settings import SqlSettings
from anystore_sql.streams import Streams
from anystore_sql.urls import parse_uri
from anystore_sql.watchdog import Deadline

T = TypeVar("T")
# Keys per page when listing, per IN (...) when reading or deleting many.
PAGE = 1000
# Expired rows are purged lazily on writes, at most this often (seconds) per store, a page of at
# most PURGE_PAGE rows (oldest expiry first; a chunked value counts its chunk rows too) at a time,
# so that no write pays for a table-wide sweep; a full page means more are waiting: the next
# sweep runs PURGE_AGAIN seconds after it.
PURGE_INTERVAL = 60.0
PURGE_PAGE = PAGE
PURGE_AGAIN = 1.0


class SqlBackend(Streams, Sessions, Backend):
    """Keeps each value in a row of one table (large ones in chunk rows), below a key prefix.

    Options (keywords of `get_store()`, else `ANYSTORE_SQL_*`, see settings.py): `pool_size`,
    `max_overflow`, `pool_timeout`, `pool_recycle`, `connect_timeout`, `operation_timeout`,
    `deadlock_retries`, `busy_timeout` (SQLite), `echo`.
    """

    # Native expiry, DELETE ... RETURNING or row locks, a created_at column, lock rows.
    supports_ttl = atomic_pop = keeps_created_at = supports_locks = True

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        url, table_name, prefix = parse_uri(uri)
        self.masked_uri = mask_uri(uri)
        self.settings = load_settings(SqlSettings, options)
        self._shared = acquire(url, self.settings)
        self._closed = False
        self.engine = self._shared.engine
        self.dialect = self.engine.dialect.name
        self.table, self.chunks = make_tables(table_name)
        self._prefix = prefix + "/" if prefix else ""
        # The key column holds the child store's prefix too.
        self._key_limit = KEY_LIMITS.get(self.dialect, 2000)
        self.max_key_bytes = max(1, self._key_limit - len(self._prefix.encode()))
        self._next_purge = 0.0  # time.time() of the next sweep on a write
        # One in-memory SQLite connection serves every thread: take turns.
        self._lock = threading.RLock() if self._shared.memory else None
        self._build_statements()
        if table_name not in self._shared.checked_tables:
            try:
                self._run(partial(ensure_tables, self.engine, self.table, self.chunks))
            except BaseException:
                self.close()
                raise
            self._shared.checked_tables.add(table_name)

    # -- statements --------------------------------------------------------------------------

    def _build_statements(self) -> None:
        t = self.table
        now: Any = bindparam("now")
        self._live = or_(t.c.expires_at.is_(None), t.c.expires_at > now)
        self._expired = and_(t.c.expires_at.is_not(None), t.c.expires_at <= now)
        self._get = select(t.c.value, t.c.size).where(t.c.key == bindparam("k"), self._live)
        self._exists = select(t.c.key).where(t.c.key == bindparam("k"), self._live)
        self._delete = delete(t).where(t.c.key == bindparam("k"))
        self._stat = select(
            func.coalesce(t.c.size, func.length(t.c.value)),
            t.c.created_at,
            t.c.updated_at,
            t.c.expires_at,
        ).where(t.c.key == bindparam("k"), self._live)
        self._upsert = statements.upsert(t, self.dialect)
        self._take_lock = statements.take_lock(t, self.dialect)
        self._lock_holder = select(t.c.value).where(t.c.key == bindparam("k"))
        self._chunked = ChunkStatements(t, self.chunks, self._live)
        fast = self._fast = FastPath(self._shared.idle, self.settings, self.masked_uri, self._lock)
        self._chunk_rows = ChunkRows(self._chunked, self.engine.dialect, fast.usable)
        self._fast_get = fast.compile(self._get)
        self._fast_exists = fast.compile(self._exists)
        self._fast_stat = fast.compile(self._stat)
        self._fast_upsert = fast.compile(self._upsert)
        self._fast_delete = self._fast_deletes()
        self._binary_keys = self.dialect in ("mysql", "mariadb")
        # A listing page, from its first key (>=) or after the last one seen (>), below an
        # upper bound or not.
        self._pages: dict[tuple[bool, bool], tuple[Any, Statement]] = {}
        for first in (True, False):
            for bounded in (True, False):
                low: Any = bindparam("low")
                conditions = [self._live, t.c.key >= low if first else t.c.key > low]
                if bounded:
                    conditions.append(t.c.key < bindparam("high"))
                page = select(t.c.key).where(*conditions).order_by(t.c.key).limit(PAGE)
                self._pages[first, bounded] = (page, fast.compile(page, ("low", "high")))

    def _fast_deletes(self) -> tuple[Statement, ...]:
        # A delete takes the row before its chunks (the lock order of chunks.py), atomically:
        # PostgreSQL in one statement (the chunks' DELETE reads the row DELETE's RETURNING),
        # MySQL/MariaDB in one multi-table DELETE driven by the row's primary key, SQLite both
        # inside BEGIN IMMEDIATE (local calls).
        fast = self._fast
        table, chunks = fast.quote(self.table.name), fast.quote(self.chunks.name)
        if self.dialect == "postgresql":
            sql = (
                f"WITH gone AS (DELETE FROM {table} WHERE key = %(k)s RETURNING key) "
                f"DELETE FROM {chunks} WHERE key IN (SELECT key FROM gone)"
            )
            return (fast.text(sql, ("k",)),)
        if self.dialect in ("mysql", "mariadb"):
            key = fast.quote("key")
            sql = (
                f"DELETE {table}, {chunks} FROM {table} LEFT JOIN {chunks} "
                f"ON {chunks}.{key} = {table}.{key} WHERE {table}.{key} = %(k)s"
            )
            return (fast.text(sql, ("k",)),)
        return fast.compile(self._delete), fast.compile(self._chunked.clear)

    def _maybe_purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        # Set first: a sweep that fails is not tried again by every following write.
        self._next_purge = now + PURGE_INTERVAL
        if self._purge_page():
            # From the sweep's end: on a busy server a sweep may take most of a second, and the
            # writes right after it should not each pay for the next one.
            self._next_purge = time.time() + PURGE_AGAIN

    def _purge_page(self) -> bool:
        """Delete the expired values (and their chunks) of one page of at most PURGE_PAGE rows,
        the oldest expiry first; return whether the page was full (more may be waiting)."""
        t = self.table
        # Through the expires_at index: a page of entries, however many rows have expired.
        oldest = (
            select(t.c.key, t.c.size)
            .where(self._expired)
            .order_by(t.c.expires_at)
            .limit(PURGE_PAGE)
        )

        def work(connection: Connection, watch: Deadline) -> bool:
            params = {"now": time.time()}
            page: list[str] = []
            rows = 0
            for key, size in list(connection.execute(oldest, params)):
                # 1,000 expired values of 200 MB are 200,000 chunk rows: not one write's work.
                rows += 1 if size is None else 1 + -(-int(size) // CHUNK_BYTES)
                if page and rows > PURGE_PAGE:
                    break
                page.append(key)
            if page:
                watch.renew()
                self._delete_expired(connection, watch, page, params)
            return rows >= PURGE_PAGE

        return self._transaction(work)

    def _delete_expired(
        self, connection: Connection, watch: Deadline, keys: list[str], params: dict[str, Any]
    ) -> int:
        # Locked in key order (as every writer locks) and still expired when locked: a value
        # rewritten since `keys` were read is left alone, and so are its chunks.
        t = self.table
        locked = (
            select(t.c.key)
            .where(t.c.key.in_(keys), self._expired)
            .order_by(t.c.key)
            .with_for_update()
        )
        keys = [row[0] for row in connection.execute(locked, params)]
        if keys:
            watch.renew()
            connection.execute(self._chunked.clear_many, {"keys": keys})
            connection.execute(delete(t).where(t.c.key.in_(keys), self._expired), params)
        return len(keys)

    def purge_expired(self) -> int:
        """Delete every row (and its chunks) whose TTL has passed, all prefixes, in one
        transaction; return how many. (Writes purge a page at a time on their own.)"""
        t = self.table
        expired = select(t.c.key).where(self._expired).order_by(t.c.key).with_for_update()

        def work(connection: Connection, watch: Deadline) -> int:
            params = {"now": time.time()}
            keys = [row[0] for row in connection.execute(expired, params)]
            for i in range(0, len(keys), PAGE):
                watch.renew()
                page = keys[i : i + PAGE]
                connection.execute(self._chunked.clear_many, {"keys": page})
                connection.execute(delete(t).where(t.c.key.in_(page), self._expired), params)
            return len(keys)

        return self._transaction(work)

    def cleanup(self, older_than: float) -> int:
        """Remove chunk rows no value refers to any more (left by an inline overwrite of a
        chunked value), written over `older_than` seconds ago; return how many rows.

        A crashed writer leaves nothing: a chunked write is one transaction.
        """
        low, high = self._bounds("")
        params = {"cut": time.time() - older_than, "low": low, "high": high or "\U0010ffff"}
        return int(self._write((self._chunked.orphans, params)))

    # -- primitives --------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        full = self._prefix + key
        params = {"k": full, "now": time.time()}
        rows = (
            self._fast.rows(self._fast_get, params)
            if self._fast.usable()
            else self._read(self._get, params)
        )
        if not rows:
            return None
        value, size = rows[0]
        return bytes(value) if size is None else self._read_chunked(full)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        now = time.time()
        if len(data) > INLINE_MAX:
            self._write_chunked(key, io.BytesIO(data), len(data), ttl)
        else:
            row = self._row(self._prefix + key, data, ttl, now)
            if self._fast.usable():
                # One statement, atomic on its own: autocommit, no transaction round trips.
                self._fast.run(((self._fast_upsert, row),))
            else:
                self._write((self._upsert, row))
        self._maybe_purge(now)

    def delete(self, key: str) -> None:
        found = {"k": self._prefix + key}
        fast = self._fast_delete
        if not self._fast.usable():
            self._write((self._delete, found), (self._chunked.clear, found))
        elif len(fast) == 1:
            self._fast.run(((fast[0], found),))
        else:
            self._fast.run(tuple((step, found) for step in fast), "BEGIN IMMEDIATE")

    def stat(self, key: str) -> BackendStat | None:
        params = {"k": self._prefix + key, "now": time.time()}
        fast = self._fast
        rows = (
            fast.rows(self._fast_stat, params) if fast.usable() else self._read(self._stat, params)
        )
        if not rows:
            return None
        size, created, updated, expires = rows[0]
        return BackendStat(
            size=int(size or 0),
            created_at=utc(created),
            updated_at=utc(updated),
            expires_at=utc(expires) if expires is not None else None,
        )

    def _bounds(self, prefix: str) -> tuple[str, str | None]:
        # A literal range on the primary key, so that % and _ are never wildcards: `base` <= key
        # < `base0` holds `base` and the keys below `base/` ('0' follows '/'), and a few siblings
        # (`base-x`) that Store leaves out; the root is `root/` <= key < `root0`.
        if prefix:
            return self._prefix + prefix, self._prefix + prefix + "0"
        return self._prefix, (self._prefix[:-1] + "0") if self._prefix else None

    def list_keys(self, prefix: str) -> Iterator[str]:
        # Lock rows share the table; their reserved names are hidden by Store.
        low, high = self._bounds(prefix)
        params: dict[str, Any] = {"low": low, "now": 0.0}
        if high is not None:
            params["high"] = high
        first = True
        while True:
            core, fast = self._pages[first, high is not None]
            params["now"] = time.time()
            if self._fast.usable():
                keys = [row[0] for row in self._fast.rows(fast, params)]
                if self._binary_keys:
                    keys = [key.decode() for key in keys]
            else:
                keys = [row[0] for row in self._read(core, params)]
            start = len(self._prefix)
            yield from [full[start:] for full in keys] if start else keys
            if len(keys) < PAGE:
                return
            params["low"] = keys[-1]
            first = False

    # -- derived, native ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        params = {"k": self._prefix + key, "now": time.time()}
        fast = self._fast
        return bool(
            fast.rows(self._fast_exists, params)
            if fast.usable()
            else self._read(self._exists, params)
        )

    def pop(self, key: str) -> bytes | None:
        t = self.table
        full = self._prefix + key
        now = time.time()
        columns = (t.c.value, t.c.expires_at, t.c.size)
        returning = self.dialect in ("postgresql", "sqlite")
        if returning:
            take: Any = delete(t).where(t.c.key == full).returning(*columns)
        else:
            take = select(*columns).where(t.c.key == full).with_for_update()

        def work(connection: Connection, _: Deadline) -> bytes | None:
            found = connection.execute(take).first()
            if found is None:
                return None
            if not returning:
                connection.execute(delete(t).where(t.c.key == full))
            value, expires, size = found
            if size is not None:
                value = read_all(connection, self._chunk_rows, full, bytes(value), int(size))
                connection.execute(self._chunked.clear, {"k": full})
            if expires is not None and expires <= now:
                return None
            return bytes(value)

        return self._transaction(work, repeatable=False)

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        t = self.table
        start = len(self._prefix)
        for i in range(0, len(keys), PAGE):
            fulls = [self._prefix + key for key in keys[i : i + PAGE]]
            statement = select(t.c.key, t.c.value, t.c.size).where(t.c.key.in_(fulls), self._live)
            for full, value, size in self._read(statement, {"now": time.time()}):
                data = bytes(value) if size is None else self._read_chunked(full)
                if data is not None:
                    yield full[start:], data

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        if not items:
            return
        # The last value of a key wins; rows are locked in key order, so that two writers of
        # the same keys never wait for each other in a circle.
        ordered = sorted({self._prefix + key: data for key, data in items}.items())

        def work(connection: Connection, watch: Deadline) -> None:
            now = time.time()
            batch: list[dict[str, Any]] = []
            for full, data in ordered:
                if len(data) <= INLINE_MAX:
                    batch.append(self._row(full, data, ttl, now))
                    continue
                if batch:
                    connection.execute(self._upsert, batch)
                    batch = []
                self._publish(connection, watch, full, io.BytesIO(data), len(data), ttl)
            if batch:
                watch.renew()
                connection.execute(self._upsert, batch)  # one executemany

        self._transaction(work)
        self._maybe_purge(time.time())

    def delete_many(self, keys: Iterable[str]) -> None:
        t = self.table
        fulls = sorted({self._prefix + key for key in keys})
        for i in range(0, len(fulls), PAGE):
            page = fulls[i : i + PAGE]
            self._write(
                (delete(t).where(t.c.key.in_(page)), None),
                (self._chunked.clear_many, {"keys": page}),
            )

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        now = time.time()
        full = self._prefix + lock_name(name)
        if len(full.encode()) > self._key_limit:
            raise InvalidKey(f"Lock name {name[:40]!r}... is too long for {self.dialect}")
        row = self._row(full, token.encode(), None, now)
        row["exp"] = now + ttl

        def work(connection: Connection, _: Deadline) -> bool:
            connection.execute(self._take_lock, row)
            holder = connection.execute(self._lock_holder, {"k": full}).scalar()
            return holder is not None and bytes(holder) == row["v"]

        return self._transaction(work)

    def release_lock(self, name: str, token: str) -> bool:
        t = self.table
        ours = and_(t.c.key == self._prefix + lock_name(name), t.c.value == token.encode())
        if self._write(
            (delete(t).where(ours, t.c.expires_at > time.time()), None), repeatable=False
        ):
            return True
        # Lapsed: remove it if it is still ours (nobody else needed it), but report the loss.
        self._write((delete(t).where(ours), None))
        return False

    def close(self) -> None:
        # The engine is shared by the stores on the same database: the last one disposes it.
        if not self._closed:
            self._closed = True
            release(self._shared)
