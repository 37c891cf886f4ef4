"""How the SQL backend talks to its database: connections for reads, writes and snapshots.

Reads run in autocommit (no transaction round trips); writes in one transaction each (SQLite:
`BEGIN IMMEDIATE`); a read handle holds one connection in a read-only snapshot transaction for
its whole life (PostgreSQL REPEATABLE READ, MySQL/MariaDB `START TRANSACTION WITH CONSISTENT
SNAPSHOT` at REPEATABLE READ, SQLite WAL `BEGIN`), released on close or when the handle is
garbage-collected. In-memory SQLite has one connection for every thread, so it takes turns and
has no snapshots. Every round trip to PostgreSQL runs under a watchdog deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from anystore_sql import errors, watchdog
from anystore_sql.engines import SNAPSHOT_OPTION, WRITE_OPTION, SharedEngine
from anystore_sql.settings import SqlSettings

T = TypeVar("T")


class Sessions:
    """The connection handling of `SqlBackend` (a mixin: it sets the attributes below)."""

    engine: Engine
    dialect: str
    settings: SqlSettings
    masked_uri: str
    _shared: SharedEngine
    _lock: threading.RLock | None

    # -- connections and errors --------------------------------------------------------------

    def _run(self, action: Callable[[], T], repeatable: bool = True) -> T:
        return errors.run(
            action,
            self.masked_uri,
            retries=self.settings.deadlock_retries,
            timeout=self.settings.operation_timeout,
            repeatable=repeatable,
        )

    def _deadline(self, connection: Connection) -> AbstractContextManager[watchdog.Deadline]:
        # PostgreSQL only: PyMySQL has socket timeouts of its own, SQLite has no server.
        fd = None
        if self.dialect == "postgresql":
            fd = connection.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
        return watchdog.deadline(fd, self.settings.operation_timeout)

    def _connect(self) -> Connection:
        # The fast path's idle connections go back first if the pool has none left.
        self._shared.idle.make_room()
        return self.engine.connect()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._serialized(), self._connect() as connection:
            if self.dialect == "postgresql":
                # psycopg switches autocommit on the client, which spares the ROLLBACK round
                # trip after every read. (PyMySQL would send SET AUTOCOMMIT twice instead, and
                # SQLite's driver autocommits already: see engines._sqlite_pragmas.)
                connection.execution_options(isolation_level="AUTOCOMMIT")
            with self._deadline(connection):
                yield connection

    @contextmanager
    def _writing(self) -> Iterator[tuple[Connection, watchdog.Deadline]]:
        with self._serialized(), self._connect() as connection:
            connection.execution_options(**{WRITE_OPTION: True})
            with self._deadline(connection) as watch, connection.begin():
                yield connection, watch

    def _serialized(self) -> AbstractContextManager[Any]:
        return nullcontext() if self._lock is None else self._lock

    def _snapshot(self) -> Connection | None:
        """A connection in a read-only snapshot transaction, or None where there is none."""
        if self._shared.memory or (self.dialect == "sqlite" and not self._shared.wal[0]):
            return None
        connection = self._connect()
        try:
            with self._deadline(connection):
                if self.dialect == "postgresql":
                    connection.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                    connection.begin()
                elif self.dialect == "sqlite":
                    connection.execution_options(**{SNAPSHOT_OPTION: True})
                    connection.begin()
                else:
                    connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    connection.exec_driver_sql(
                        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
                    )
        except BaseException:
            connection.close()
            raise
        return connection

    def _session(
        self, connection: Connection | None
    ) -> Callable[[], AbstractContextManager[Connection]]:
        if connection is None:
            return self._reading

        @contextmanager
        def held() -> Iterator[Connection]:
            with self._deadline(connection):
                yield connection

        return held

    def _end(self, connection: Connection | None) -> None:
        """End a snapshot and return its connection to the pool (never raises)."""
        if connection is None:
            return
        try:
            with self._deadline(connection):
                connection.rollback()
        except Exception:
            connection.invalidate()
        finally:
            connection.close()

    def _read(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        def run() -> list[Any]:
            with self._reading() as connection:
                return list(connection.execute(statement, params or {}))

        return self._run(run)

    def _transaction(
        self, work: Callable[[Connection, watchdog.Deadline], T], repeatable: bool = True
    ) -> T:
        """`work(connection, deadline)` in one write transaction, retried whole (see errors.py)."""

        def run() -> T:
            with self._writing() as (connection, watch):
                return work(connection, watch)

        return self._run(run, repeatable)

    def _write(self, *steps: tuple[Any, Any], repeatable: bool = True) -> Any:
        """Run `(statement, params)` steps in one transaction; the last one's rows or rowcount."""

        def work(connection: Connection, _: watchdog.Deadline) -> Any:
            for statement, params in steps:
                result = connection.execute(statement, params or {})
            return list(result) if result.returns_rows else result.rowcount

        return self._transaction(work, repeatable)
