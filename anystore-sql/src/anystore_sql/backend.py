"""SQL stores: `sqlite:///file.db`, `sqlite://` (memory), `postgresql://...`, `mysql://...`,
`mariadb://...` (and `+driver` forms), with `?table=NAME&prefix=some/prefix`.

SQLAlchemy 2 Core, one engine per database URL shared by every store on it (`engines.py`).
Each statement is written out per dialect (the upserts in `statements.py`): an upsert per put
(created_at kept), one executemany per put_many, one `IN` per get_many, `DELETE ... RETURNING`
(or a row lock) per pop, and listings that page through the primary-key index without ever
selecting a value.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from anystore.backend import Backend, BackendStat
from anystore.exceptions import AnystoreError, BackendUnavailable, mask_uri
from anystore.io import CHUNK_SIZE, WriteHandle, spooled_write_handle
from anystore.keys import is_reserved, lock_name
from anystore.settings import load_settings
from anystore_sql import statements
from anystore_sql.engines import WRITE_OPTION, parse_uri, shared_engine
from anystore_sql.schema import check_key_length, ensure_table, make_table
from anystore_sql.settings import SqlSettings

# Keys per page when listing, per IN (...) when reading or deleting many.
PAGE = 1000
# Expired rows are purged lazily at most this often (seconds) per store.
PURGE_INTERVAL = 60.0
# Tables already checked (or created) in this process, per engine.
_checked_tables: set[tuple[int, str]] = set()


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


class SqlBackend(Backend):
    """Keeps each value in a row of one table, below an optional key prefix.

    Options (keywords of `get_store()`, else `ANYSTORE_SQL_*`): `pool_size`, `max_overflow`,
    `pool_timeout`, `pool_recycle`, `connect_timeout`, `busy_timeout` (SQLite), `echo`.
    """

    atomic_pop = True
    keeps_created_at = True
    supports_locks = True

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        settings = load_settings(SqlSettings, options)
        url, table_name, prefix = parse_uri(uri)
        self.masked_uri = mask_uri(uri)
        self.engine = shared_engine(url, settings)
        self.dialect = self.engine.dialect.name
        self.table = make_table(table_name)
        self._prefix = prefix + "/" if prefix else ""
        self._last_purge = 0.0
        # One in-memory SQLite connection serves every thread: take turns.
        self._lock = threading.RLock() if self.engine.pool.__class__ is StaticPool else None
        self._build_statements()
        marker = (id(self.engine), table_name)
        if marker not in _checked_tables:
            self._guard(lambda: ensure_table(self.engine, self.table))
            _checked_tables.add(marker)

    # -- connections and errors --------------------------------------------------------------

    def _guard(self, action: Any) -> Any:
        """Run `action`, translating connection failures into `BackendUnavailable`."""
        try:
            return action()
        except (OperationalError, InterfaceError) as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            if "max_allowed_packet" in reason:
                raise AnystoreError(
                    f"A value is too large for {self.masked_uri}: {reason}. Raise the server's "
                    "limit (SET GLOBAL max_allowed_packet=1073741824) or store smaller values."
                ) from None
            raise BackendUnavailable(
                f"Database {self.masked_uri} is unavailable: {mask_uri(reason)}"
            ) from None

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._serialized(), self.engine.connect() as connection:
            if self.dialect == "postgresql":
                # psycopg switches autocommit on the client, which spares the ROLLBACK round
                # trip after every read. (PyMySQL would send SET AUTOCOMMIT twice instead, and
                # SQLite's driver autocommits already: see _sqlite_pragmas.)
                yield connection.execution_options(isolation_level="AUTOCOMMIT")
            else:
                yield connection

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._serialized(), self.engine.connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                yield connection

    @contextmanager
    def _serialized(self) -> Iterator[None]:
        if self._lock is None:
            yield
        else:
            with self._lock:
                yield

    def _read(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        def run() -> list[Any]:
            with self._reading() as connection:
                return list(connection.execute(statement, params or {}))

        return self._guard(run)

    def _write(self, statement: Any, params: Any = None) -> Any:
        def run() -> Any:
            with self._writing() as connection:
                result = connection.execute(statement, params or {})
                return list(result) if result.returns_rows else result.rowcount

        return self._guard(run)

    # -- statements --------------------------------------------------------------------------

    def _build_statements(self) -> None:
        t = self.table
        now = bindparam("now")
        self._live = or_(t.c.expires_at.is_(None), t.c.expires_at > now)
        self._get = select(t.c.value).where(t.c.key == bindparam("k"), self._live)
        self._exists = select(t.c.key).where(t.c.key == bindparam("k"), self._live)
        self._delete = delete(t).where(t.c.key == bindparam("k"))
        self._stat = select(
            func.length(t.c.value), t.c.created_at, t.c.updated_at, t.c.expires_at
        ).where(t.c.key == bindparam("k"), self._live)
        self._upsert = statements.upsert(t, self.dialect)
        self._take_lock = statements.take_lock(t, self.dialect)
        self._lock_holder = select(t.c.value).where(t.c.key == bindparam("k"))

    def _full(self, key: str) -> str:
        full = self._prefix + key
        check_key_length(full, self.dialect)
        return full

    def _row(self, key: str, data: bytes, ttl: float | None, now: float) -> dict[str, Any]:
        return {"k": self._full(key), "v": data, "now": now, "exp": now + ttl if ttl else None}

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge > PURGE_INTERVAL:
            self._last_purge = now
            self.purge_expired()

    def purge_expired(self) -> int:
        """Delete the rows whose TTL has passed (all prefixes of the table); return how many."""
        t = self.table
        statement = delete(t).where(t.c.expires_at.is_not(None), t.c.expires_at <= time.time())
        return int(self._write(statement))

    # -- primitives --------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        rows = self._read(self._get, {"k": self._prefix + key, "now": time.time()})
        return bytes(rows[0][0]) if rows else None

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        now = time.time()
        self._write(self._upsert, self._row(key, data, ttl, now))
        self._maybe_purge(now)

    def delete(self, key: str) -> None:
        self._write(self._delete, {"k": self._prefix + key})

    def stat(self, key: str) -> BackendStat | None:
        rows = self._read(self._stat, {"k": self._prefix + key, "now": time.time()})
        if not rows:
            return None
        size, created, updated, expires = rows[0]
        return BackendStat(
            size=int(size or 0),
            created_at=_utc(created),
            updated_at=_utc(updated),
            expires_at=_utc(expires) if expires is not None else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        t = self.table
        base = self._prefix + prefix
        start = len(self._prefix)
        if prefix:
            # Literal range on the primary key: `base/` <= key < `base0` ('0' follows '/'),
            # so % and _ in a prefix are never wildcards.
            if self._read(self._exists, {"k": base, "now": time.time()}):
                yield prefix
            low, high = base + "/", base + "0"
        elif self._prefix:
            low, high = self._prefix, self._prefix[:-1] + "0"
        else:
            low, high = "", None
        after = None
        while True:
            conditions = [self._live, t.c.key >= low] if after is None else [self._live]
            if after is not None:
                conditions.append(t.c.key > after)
            if high is not None:
                conditions.append(t.c.key < high)
            page = select(t.c.key).where(*conditions).order_by(t.c.key).limit(PAGE)
            keys = [row[0] for row in self._read(page, {"now": time.time()})]
            for full in keys:
                # Lock rows share the table; their names hold a reserved segment.
                if is_reserved(full):
                    continue
                yield full[start:]
            if len(keys) < PAGE:
                return
            after = keys[-1]

    # -- derived, native ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return bool(self._read(self._exists, {"k": self._prefix + key, "now": time.time()}))

    def pop(self, key: str) -> bytes | None:
        t = self.table
        full = self._prefix + key
        now = time.time()
        if self.dialect in ("postgresql", "sqlite"):
            statement = delete(t).where(t.c.key == full).returning(t.c.value, t.c.expires_at)
            rows = self._write(statement)
        else:
            locked = select(t.c.value, t.c.expires_at).where(t.c.key == full).with_for_update()

            def run() -> list[Any]:
                with self._writing() as connection:
                    found = list(connection.execute(locked))
                    if found:
                        connection.execute(delete(t).where(t.c.key == full))
                    return found

            rows = self._guard(run)
        if not rows or (rows[0][1] is not None and rows[0][1] <= now):
            return None
        return bytes(rows[0][0])

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        t = self.table
        start = len(self._prefix)
        for i in range(0, len(keys), PAGE):
            fulls = [self._prefix + key for key in keys[i : i + PAGE]]
            statement = select(t.c.key, t.c.value).where(t.c.key.in_(fulls), self._live)
            for full, value in self._read(statement, {"now": time.time()}):
                yield full[start:], bytes(value)

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        if not items:
            return
        now = time.time()
        rows = [self._row(key, data, ttl, now) for key, data in items]
        self._write(self._upsert, rows)  # one executemany, one transaction
        self._maybe_purge(now)

    def delete_many(self, keys: Iterable[str]) -> None:
        t = self.table
        fulls = [self._prefix + key for key in keys]
        for i in range(0, len(fulls), PAGE):
            self._write(delete(t).where(t.c.key.in_(fulls[i : i + PAGE])))

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        now = time.time()
        row = {"k": self._full(lock_name(name)), "v": token.encode(), "now": now, "exp": now + ttl}

        def run() -> bool:
            with self._writing() as connection:
                connection.execute(self._take_lock, row)
                holder = connection.execute(self._lock_holder, {"k": row["k"]}).scalar()
                return holder is not None and bytes(holder) == row["v"]

        return bool(self._guard(run))

    def release_lock(self, name: str, token: str) -> bool:
        t = self.table
        ours = and_(t.c.key == self._full(lock_name(name)), t.c.value == token.encode())
        if self._write(delete(t).where(ours, t.c.expires_at > time.time())):
            return True
        # Lapsed: remove it if it is still ours (nobody else needed it), but report the loss.
        self._write(delete(t).where(ours))
        return False

    def open_read(self, key: str) -> IO[bytes] | None:
        info = self.stat(key)
        if info is None:
            return None
        return io.BufferedReader(_ChunkReader(self, self._prefix + key, info.size), CHUNK_SIZE)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        # Spooled to a temp file, then one upsert in one transaction: a value is one row, so
        # its size is bounded by the dialect (see the README), not by this process's memory
        # while writing.
        return spooled_write_handle(lambda spool: self.write(key, spool.read(), ttl))

    def close(self) -> None:
        # The engine is shared with other stores on the same database; it lives with the process.
        pass


class _ChunkReader(io.RawIOBase):
    """Reads a value with SUBSTR, one chunk per query, so memory stays bounded."""

    def __init__(self, backend: SqlBackend, full: str, size: int) -> None:
        self.backend = backend
        self.full = full
        self.size = size
        self.position = 0
        t = backend.table
        self._chunk = select(func.substr(t.c.value, bindparam("start"), bindparam("length"))).where(
            t.c.key == bindparam("k")
        )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.position)
        if want <= 0:
            return 0
        params = {"k": self.full, "start": self.position + 1, "length": want}
        rows = self.backend._read(self._chunk, params)
        data = bytes(rows[0][0]) if rows and rows[0][0] is not None else b""
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
