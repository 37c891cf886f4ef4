"""The hot paths on the driver itself: precompiled SQL on a held, pooled DBAPI connection.

SQLAlchemy's execution path (compile cache lookup, parameter processing, events, result
wrapping) and a pool checkout with its reset cost several times the driver's own work for a
primary-key lookup. So the single-statement operations (`get`, `exists` and `stat` of a small
value, the upsert of a small `put`, `delete`, a listing page) run their statement, compiled once
per table and dialect into the driver's SQL and paramstyle, on a DBAPI connection that the
engine's pool handed out and that stays checked out between operations (`Idle`, a few per
engine) in the driver's autocommit mode: one round trip, no ping, no ROLLBACK. A connection that
fails is invalidated (after a disconnect with the pool's older connections, as SQLAlchemy does),
and a disconnect is retried once on a fresh one through `errors.run`, so errors stay anystore's.
Chunked values, snapshots, batches and every other transaction keep the SQLAlchemy path
(sessions.py), as does an engine that logs or has cursor listeners.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from anystore_sql import errors, watchdog
from anystore_sql.settings import SqlSettings

T = TypeVar("T")
# Connections an engine's fast path keeps checked out between operations (more threads at once
# check out and return their own).
IDLE_MAX = 2


class Held:
    """A pooled connection checked out for the fast path, with its cursor and socket."""

    __slots__ = ("cursor", "driver", "fairy", "fd", "since")

    def __init__(self, fairy: PoolProxiedConnection, dialect: str) -> None:
        self.fairy = fairy
        driver: Any = fairy.driver_connection
        self.driver = driver
        self.since = time.monotonic()
        try:
            # Autocommit: a read is one round trip and leaves no transaction to roll back.
            if dialect == "postgresql":
                driver.autocommit = True
            elif dialect in ("mysql", "mariadb"):
                driver.autocommit(True)  # a round trip, once per checkout
            self.cursor: Any = driver.cursor()
        except BaseException:
            fairy.invalidate()  # not handed back in an unknown state
            raise
        # Only PostgreSQL needs the watchdog: PyMySQL has socket timeouts, SQLite no server.
        self.fd: int | None = self.driver.fileno() if dialect == "postgresql" else None


class Idle:
    """The connections one engine's fast path holds; `drain()` hands them back to the pool."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.held: list[Held] = []
        _all_idle.add(self)

    def take(self) -> Held:
        """An idle connection, else a new checkout from the pool (raises what the pool raises)."""
        try:
            return self.held.pop()
        except IndexError:
            return Held(self.engine.raw_connection(), self.dialect)

    def give(self, held: Held, recycle: float) -> None:
        """Keep `held` for the next operation, or return it to the pool."""
        if len(self.held) < IDLE_MAX and time.monotonic() - held.since < recycle:
            self.held.append(held)
        else:
            self._return(held)

    def drop(self, held: Held, error: BaseException | None) -> None:
        """Invalidate `held` (it failed); after a disconnect, the idle ones and the pool's too."""
        if error is not None:
            pool = self.engine.pool
            pool._invalidate(held.fairy, error, _checkin=False)
            while self.held:
                self.held.pop().fairy.invalidate()
        try:
            held.fairy.invalidate(error)
        except Exception:  # the connection is being thrown away either way
            pass

    def drain(self) -> None:
        """Return every idle connection to the pool (before a dispose, or to make room)."""
        while True:
            try:
                held = self.held.pop()
            except IndexError:
                return
            self._return(held)

    def make_room(self) -> None:
        """Return the idle connections if the pool has no free one left for another checkout."""
        pool = self.engine.pool
        if (
            self.held
            and isinstance(pool, QueuePool)
            and pool.checkedout() >= pool.size() + max(pool._max_overflow, 0)
        ):
            self.drain()

    def _return(self, held: Held) -> None:
        try:
            held.cursor.close()
            if self.dialect == "postgresql":
                held.driver.autocommit = False
            elif self.dialect in ("mysql", "mariadb"):
                held.driver.autocommit(False)
        except Exception:
            self.drop(held, None)
            return
        held.fairy.close()


_all_idle: weakref.WeakSet[Idle] = weakref.WeakSet()
_inherited: list[Held] = []


def _after_fork() -> None:
    # The parent's connections are not the child's to use or to close: keep them referenced (a
    # collected checkout would be reset over the parent's socket) and start afresh.
    for idle in list(_all_idle):
        _inherited.extend(idle.held)
        idle.held = []


os.register_at_fork(after_in_child=_after_fork)


class Statement:
    """One statement as the driver's SQL, with its parameters in the driver's order."""

    __slots__ = ("binary_keys", "defaults", "pick", "sql")

    def __init__(
        self,
        sql: str,
        names: tuple[str, ...] | None,
        binary_keys: tuple[str, ...] = (),
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.sql = sql
        # Values bound in the statement itself (a LIMIT), added to every call's.
        self.defaults = defaults or None
        # qmark/format drivers take a tuple in this order; pyformat ones the dict itself.
        self.pick: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
        if names is not None:
            self.pick = itemgetter(*names) if len(names) > 1 else lambda p: (p[names[0]],)
        # The parameters that are keys, on MySQL/MariaDB: VARBINARY, bound as bytes (as
        # schema.KeyType does).
        self.binary_keys = binary_keys

    def args(self, params: dict[str, Any]) -> Any:
        if self.defaults is not None:
            params = {**self.defaults, **params}
        if self.binary_keys:
            params = dict(params)
            for name in self.binary_keys:
                if name in params:
                    params[name] = params[name].encode()
        pick = self.pick
        return params if pick is None else pick(params)


class FastPath:
    """Runs statements on a held connection (see the module doc); errors as errors.run's."""

    def __init__(
        self, idle: Idle, settings: SqlSettings, masked_uri: str, lock: threading.RLock | None
    ) -> None:
        self.idle = idle
        self.settings = settings
        self.masked_uri = masked_uri
        self.dialect: Dialect = idle.engine.dialect
        self._driver_error: type[Exception] = self.dialect.loaded_dbapi.Error
        self._lock = lock
        self._echo = settings.echo
        self._recycle = float(settings.pool_recycle)
        self._direct = lock is None and self.dialect.name != "postgresql"

    def compile(self, statement: Any, keys: tuple[str, ...] = ("k",)) -> Statement:
        """`statement` (SQLAlchemy Core) as this dialect's driver SQL; `keys` name the
        parameters that hold keys."""
        compiled = statement.compile(dialect=self.dialect)
        names = tuple(compiled.positiontup) if self.dialect.positional else None
        defaults = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        return Statement(compiled.string, names, self._key_params(keys), defaults)

    def _key_params(self, keys: tuple[str, ...]) -> tuple[str, ...]:
        return keys if self.dialect.name in ("mysql", "mariadb") else ()

    def text(self, sql: str, names: tuple[str, ...]) -> Statement:
        """Driver SQL written out, its parameters `%(name)s` (rendered in the paramstyle)."""
        if self.dialect.positional:
            mark = "?" if self.dialect.paramstyle == "qmark" else "%s"
            for name in names:
                sql = sql.replace(f"%({name})s", mark, 1)
            return Statement(sql, names, self._key_params(("k",)))
        return Statement(sql, None, self._key_params(("k",)))

    def quote(self, name: str) -> str:
        """A table name quoted as this dialect needs it."""
        return str(self.dialect.identifier_preparer.quote(name))

    def usable(self) -> bool:
        """False for an engine that logs (`echo`) or has cursor listeners: so that they see
        every statement, such an engine takes the SQLAlchemy path."""
        return not (self._echo or self.idle.engine.dispatch.before_cursor_execute)

    def rows(self, statement: Statement, params: dict[str, Any]) -> list[Any]:
        """The rows of `statement`, read in autocommit."""
        calls = [(statement.sql, statement.args(params))]
        try:
            rows: list[Any] = self._attempt(calls, True, None, "")
        except Exception as error:  # handed to errors.run, which retries or translates it
            rows = self._recover(error, lambda: self._attempt(calls, True, None, ""))
        return rows

    def run(
        self,
        steps: tuple[tuple[Statement, dict[str, Any]], ...],
        begin: str | None = None,
        commit: str = "COMMIT",
    ) -> Any:
        """Run `steps`, in autocommit, or between `begin` and `commit` when `begin` is given;
        return the last one's row count. Anystore errors (see errors.py)."""
        calls = [(statement.sql, statement.args(params)) for statement, params in steps]
        try:
            return self._attempt(calls, False, begin, commit)
        except Exception as error:
            return self._recover(error, lambda: self._attempt(calls, False, begin, commit))

    def _attempt(
        self, calls: list[tuple[str, Any]], fetch: bool, begin: str | None, commit: str
    ) -> Any:
        if self._direct:  # no lock to take, no deadline to arm: the common SQLite case
            return self._on_held(calls, fetch, begin, commit, False)
        with self._serialized():
            return self._on_held(calls, fetch, begin, commit, True)

    def _on_held(
        self, calls: list[tuple[str, Any]], fetch: bool, begin: str | None, commit: str, timed: bool
    ) -> Any:
        """Run the statements on a held connection (under the operation deadline if `timed`),
        keep it for the next operation, or discard it when they failed."""
        held = self._take()
        try:
            if timed:
                with self._deadline(held):
                    result = self._execute(held, calls, fetch, begin, commit)
            else:
                result = self._execute(held, calls, fetch, begin, commit)
        except BaseException as error:
            self._discard(held, error)
            raise
        self.idle.give(held, self._recycle)
        return result

    def _execute(
        self,
        held: Held,
        calls: list[tuple[str, Any]],
        fetch: bool,
        begin: str | None,
        commit: str,
    ) -> Any:
        cursor = held.cursor
        try:
            if begin is not None:
                cursor.execute(begin)
            for sql, args in calls:
                cursor.execute(sql, args)
            # fetchall: SQLite ends the statement (and its read snapshot) at once.
            result = cursor.fetchall() if fetch else cursor.rowcount
            if begin is not None:
                cursor.execute(commit)
            return result
        except self._driver_error as error:
            sql, args = calls[-1]
            raise errors.from_driver(self.dialect, error, sql, args, held.driver, cursor) from None

    def _discard(self, held: Held, error: BaseException) -> None:
        # Whatever failed (a transaction may be open), this connection is thrown away; after a
        # disconnect or a stall, the others of its generation too.
        invalidated = isinstance(error, watchdog.Stalled) or getattr(
            error, "connection_invalidated", False
        )
        self.idle.drop(held, error if invalidated else None)

    def _take(self) -> Held:
        try:
            return self.idle.take()
        except self._driver_error as error:
            raise errors.from_driver(self.dialect, error, None, None) from None

    def _deadline(self, held: Held) -> AbstractContextManager[Any]:
        if held.fd is None:
            return nullcontext()
        return watchdog.deadline(held.fd, self.settings.operation_timeout)

    def _serialized(self) -> AbstractContextManager[Any]:
        return nullcontext() if self._lock is None else self._lock

    def _recover(self, error: BaseException, again: Callable[[], T]) -> T:
        # errors.run decides as on the SQLAlchemy path: a disconnect once more on a fresh
        # connection, contention with backoff, everything else translated.
        pending = [error]

        def action() -> T:
            if pending:
                raise pending.pop()
            return again()

        return errors.run(
            action,
            self.masked_uri,
            retries=self.settings.deadlock_retries,
            timeout=self.settings.operation_timeout,
        )
