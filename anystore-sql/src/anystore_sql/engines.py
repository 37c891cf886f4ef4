"""The engines behind database URLs.

`acquire` hands out one engine per URL and settings, shared by the stores on it
and disposed when the last of them closes (an in-memory SQLite database lives with the process
instead: disposing it would drop its data). Engines get the pool settings, the timeouts (libpq
`connect_timeout`, keepalives and `tcp_user_timeout`; PyMySQL `connect_timeout`, `read_timeout`,
`write_timeout`), READ COMMITTED writes on MySQL/MariaDB (no gap locks, fewer deadlocks), and on
SQLite the pragmas that let several processes write one file (WAL, `BEGIN IMMEDIATE`). A driver
option in the URL wins over the value the settings would give it (`timeout` on SQLite,
`connect_timeout` and friends on PostgreSQL and MySQL); the driver's complaint about one it does
not know is an `InvalidOption` (errors.bad_option). The URL itself is `urls.py`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from anystore.clients import ClientCache
from anystore.exceptions import BackendNotFound, InvalidOption, mask_uri
from anystore_sql.errors import bad_option
from anystore_sql.fastpath import Idle
from anystore_sql.settings import SqlSettings
from anystore_sql.urls import DEFAULT_DRIVERS, OWN_OPTIONS, parse_value, sqlite_memory

# PyMySQL refuses to send a packet over its own limit (16 MiB by default); the server's
# max_allowed_packet is the limit that counts, so the client's is set out of the way.
MYSQL_CLIENT_PACKET = 1024 * 1024 * 1024

# Execution options that mark a connection about to write (SQLite takes the lock up front) or
# about to read a snapshot (SQLite opens a read transaction).
WRITE_OPTION = "anystore_write"
SNAPSHOT_OPTION = "anystore_snapshot"

# What to pip install for each SQLAlchemy driver name: an extra only fixes its own driver
# (`[postgresql]` is psycopg 3, so `postgresql+psycopg2://` needs psycopg2 itself).
DRIVER_PACKAGES = {
    "psycopg": '"psycopg[binary]" (the anystore-sql[postgresql] extra)',
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
    "pymysql": "PyMySQL (the anystore-sql[mysql] extra)",
    "mysqldb": "mysqlclient",
    "mysqlconnector": "mysql-connector-python",
    "mariadbconnector": "mariadb",
}


@dataclass
class SharedEngine:
    """An engine and what the stores on it share: which tables are checked."""

    key: tuple[Any, ...]
    engine: Engine
    memory: bool  # an in-memory SQLite database: one connection, no snapshots
    wal: list[bool] = field(default_factory=lambda: [True])  # SQLite file in WAL mode?
    checked_tables: set[str] = field(default_factory=set)
    idle: Idle = field(init=False)  # the connections the fast path holds (fastpath.py)

    def __post_init__(self) -> None:
        self.idle = Idle(self.engine)


# Fresh engines in a forked child: the parent's pooled connections are not the child's to use.
_engines: ClientCache[SharedEngine] = ClientCache()


def acquire(url: str, settings: SqlSettings) -> SharedEngine:
    """The shared engine for `url` and these settings (created on first use); `release` it."""
    key = (url, tuple(sorted(settings.model_dump().items())))
    return _engines.acquire(key, lambda: _create(key, url, settings))


def release(shared: SharedEngine) -> None:
    """One store less on `shared`; the last one disposes the engine (files and connections)."""
    if not shared.memory and _engines.release(shared.key, shared):
        shared.idle.drain()
        shared.engine.dispose()


def _create(key: tuple[Any, ...], url: str, settings: SqlSettings) -> SharedEngine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    # No pre-ping per checkout: a dead pooled connection shows as a disconnect error, which the
    # backend retries once on a fresh connection (see backend._guard).
    kwargs: dict[str, Any] = {"echo": settings.echo, "pool_pre_ping": False}
    memory = backend == "sqlite" and sqlite_memory(parsed.database, dict(parsed.query))
    pool = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
    }
    busy_ms = settings.busy_timeout
    if backend == "sqlite":
        # A URL's `timeout` (seconds, as sqlite3.connect takes it; parse_uri checked it) is the
        # busy timeout of its engine.
        if "timeout" in parsed.query:
            seconds = parse_value("timeout", parsed.query["timeout"], float, mask_uri(url))
            busy_ms = int(seconds * 1000)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_ms / 1000}
        if memory:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database for all threads
        else:
            kwargs.update(pool)
    else:
        kwargs.update(pool)
        # SQLAlchemy lets connect_args win over the URL's options: these are only defaults.
        defaults = _network_args(backend, settings)
        kwargs["connect_args"] = {k: v for k, v in defaults.items() if k not in parsed.query}
        if backend in ("mysql", "mariadb"):
            kwargs["isolation_level"] = "READ COMMITTED"
    try:
        engine = create_engine(url, **kwargs)
    except (ImportError, NoSuchModuleError) as error:
        package = DRIVER_PACKAGES.get(parsed.get_driver_name())
        default = DRIVER_PACKAGES.get(DEFAULT_DRIVERS.get(backend, ""))
        hint = f"pip install {package}" if package else "install its driver"
        if not package and default:
            hint += f", or leave the driver out of the URL for the default: pip install {default}"
        raise BackendNotFound(
            f"The database driver for {mask_uri(url)} is missing ({error}): {hint}"
        ) from None
    except (ArgumentError, TypeError, ValueError) as error:
        # Also a query option's value that SQLAlchemy cannot parse (connect_timeout=abc).
        reason = mask_uri(str(error).replace(url, mask_uri(url)))
        raise InvalidOption(f"Bad database URL {mask_uri(url)}: {reason}") from None
    shared = SharedEngine(key, engine, memory)
    if backend == "sqlite":
        _sqlite_pragmas(shared, busy_ms)
    else:
        _translate_bad_options(engine, mask_uri(url), tuple(defaults))
    return shared


def _translate_bad_options(engine: Engine, where: str, hints: tuple[str, ...]) -> None:
    """Make the driver's complaint about an option of the URL (an unknown libpq option, an
    unexpected PyMySQL keyword, a bad value) an `InvalidOption`, wherever the engine connects.

    This wraps the engine's own dialect's `connect` rather than listening to `do_connect`: a
    `do_connect` listener that connects ends the chain, so a user's listener (a token put into
    the parameters) would no longer run. The pool calls `dialect.connect` after the listeners.
    """
    dialect: Any = engine.dialect
    connect = dialect.connect

    def checked(*cargs: Any, **cparams: Any) -> Any:
        try:
            return connect(*cargs, **cparams)
        except Exception as error:
            replacement = bad_option(error, where, dialect.driver, OWN_OPTIONS, hints)
            if replacement is None:
                raise
            raise replacement from None  # unchained: the driver's text may hold the password

    dialect.connect = checked  # this engine's dialect instance only


def _network_args(backend: str, settings: SqlSettings) -> dict[str, Any]:
    timeout = settings.operation_timeout
    if backend == "postgresql":
        # Keepalives and tcp_user_timeout catch a dead peer or a lost network; a stalled server
        # process is caught by the watchdog (see watchdog.py).
        return {
            "connect_timeout": settings.connect_timeout,
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(timeout / 2)),
            "keepalives_interval": max(1, math.ceil(timeout / 6)),
            "keepalives_count": 3,
            "tcp_user_timeout": int(timeout * 1000),
        }
    return {
        "connect_timeout": settings.connect_timeout,
        "read_timeout": timeout,
        "write_timeout": timeout,
        "max_allowed_packet": MYSQL_CLIENT_PACKET,
    }


def _sqlite_pragmas(shared: SharedEngine, busy_ms: int) -> None:
    engine = shared.engine

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open transactions, so writers can take the lock up
        # front (BEGIN IMMEDIATE) instead of failing to upgrade a read lock under contention.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not shared.memory:
            try:
                mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
            except Exception:  # a read-only file cannot switch; it reads as it is
                mode = cursor.execute("PRAGMA journal_mode").fetchone()
            # Without WAL (a read-only file, a file system that cannot share memory maps), a
            # reader holding a snapshot would block writers: read handles check versions.
            shared.wal[0] = bool(mode) and str(mode[0]).lower() == "wal"
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        # Reads run in the driver's autocommit mode (no BEGIN at all); writers lock up front;
        # a snapshot reader opens a read transaction (its snapshot starts at its first SELECT).
        options = connection.get_execution_options()
        if options.get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif options.get(SNAPSHOT_OPTION):
            connection.exec_driver_sql("BEGIN")
