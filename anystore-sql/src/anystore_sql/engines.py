"""Database URLs and the engines behind them.

`parse_uri` turns a store URI into a SQLAlchemy URL (our `table` and `prefix` removed) with a
default driver; `acquire` hands out one engine per URL and settings, shared by the stores on it
and disposed when the last of them closes (an in-memory SQLite database lives with the process
instead: disposing it would drop its data). Engines get the pool settings, the timeouts (libpq
`connect_timeout`, keepalives and `tcp_user_timeout`; PyMySQL `connect_timeout`, `read_timeout`,
`write_timeout`), READ COMMITTED writes on MySQL/MariaDB (no gap locks, fewer deadlocks), and on
SQLite the pragmas that let several processes write one file (WAL, `BEGIN IMMEDIATE`).

A query option in the URL is either ours (`table`, `prefix`) or the driver's, and an unknown one
is an `InvalidOption`, never silently ignored (a typo in `table` would put the data in another
table). SQLite's options are few and fixed, so they are checked in `parse_uri`; libpq and PyMySQL
take many, so there the driver's own complaint on connect is translated (errors.bad_option). A
driver option in the URL wins over the value the settings would give it (`timeout` on SQLite,
`connect_timeout` and friends on PostgreSQL and MySQL).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import asbool

from anystore.clients import ClientCache
from anystore.exceptions import BackendNotFound, InvalidOption, mask_uri
from anystore.keys import normalize_prefix
from anystore_sql.errors import bad_option, unknown_options
from anystore_sql.fastpath import Idle
from anystore_sql.schema import check_table_name
from anystore_sql.settings import SqlSettings

DEFAULT_TABLE = "anystore"
# PyMySQL refuses to send a packet over its own limit (16 MiB by default); the server's
# max_allowed_packet is the limit that counts, so the client's is set out of the way.
MYSQL_CLIENT_PACKET = 1024 * 1024 * 1024

# Execution options that mark a connection about to write (SQLite takes the lock up front) or
# about to read a snapshot (SQLite opens a read transaction).
WRITE_OPTION = "anystore_write"
SNAPSHOT_OPTION = "anystore_snapshot"

# The URL's query options that anystore takes out before the rest goes to the driver.
OWN_OPTIONS = ("table", "prefix")
# SQLAlchemy itself reads `plugin` (engine plugins) from any URL.
SQLALCHEMY_OPTIONS = ("plugin",)
# What SQLAlchemy's pysqlite dialect passes from the URL to sqlite3.connect (create_connect_args)
# and what then takes effect, with the type it is parsed as: `timeout` becomes the busy timeout.
SQLITE_OPTIONS: dict[str, type] = {
    "uri": bool,
    "timeout": float,
    "detect_types": int,
    "cached_statements": int,
}
# The two other pysqlite options anystore overrides on every connection, and why.
SQLITE_FIXED = {
    "check_same_thread": "connections are shared between threads",
    "isolation_level": "anystore opens the transactions itself (BEGIN IMMEDIATE to write)",
}
# With uri=true the other options go into SQLite's URI filename: the ones SQLite reads
# (https://sqlite.org/uri.html); a custom `vfs` may read more, so with one anything goes.
SQLITE_URI_OPTIONS = ("mode", "cache", "vfs", "immutable", "nolock", "psow", "modeof")
# SQLCipher's pragmas (SQLAlchemy's pysqlcipher dialect runs them on connect).
SQLCIPHER_OPTIONS = ("kdf_iter", "cipher", "cipher_page_size", "cipher_use_hmac")

DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
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


def parse_uri(uri: str) -> tuple[str, str, str]:
    """Split a store URI into (SQLAlchemy URL, table, prefix); our query options are removed.

    `postgres://` becomes `postgresql://`; a bare dialect gets its default driver (psycopg for
    PostgreSQL, PyMySQL for MySQL/MariaDB). Raises `InvalidOption` for a malformed URL (a port
    that is not a number, a bad table name, an option SQLite would ignore), with any password
    masked.
    """
    try:
        url = make_url(uri)
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"port {url.port} is out of range")
    except (ArgumentError, ValueError) as error:
        reason = mask_uri(str(error).replace(uri, mask_uri(uri)))
        raise InvalidOption(
            f"Bad database URL {mask_uri(uri)}: {reason}. Use "
            "dialect[+driver]://user:password@host:port/database (the port a number)."
        ) from None
    query = dict(url.query)
    table = check_table_name(str(query.pop("table", DEFAULT_TABLE)))
    prefix = normalize_prefix(str(query.pop("prefix", "")) or None)
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "sqlite":
        _check_sqlite_options(driver, query, mask_uri(uri))
        if url.database and os.path.isdir(url.database):
            # SQLite would say "unable to open database file", which reads as an outage.
            raise InvalidOption(
                f"{mask_uri(uri)} names the folder {url.database}, not a database file: name "
                f"the file (sqlite:///{os.path.join(url.database, 'store.db')}); smart_read and "
                "smart_write split a SQLite URI at its last '/', so give them the key as "
                "?prefix= instead"
            )
    driver = driver or DEFAULT_DRIVERS.get(backend, "")
    url = url.set(drivername=f"{backend}+{driver}" if driver else backend, query=query)
    return url.render_as_string(hide_password=False), table, prefix


def _check_sqlite_options(driver: str, query: dict[str, Any], where: str) -> None:
    """Raise `InvalidOption` for a query option of a SQLite URL that would be ignored."""
    if driver not in ("", "pysqlite", "pysqlcipher"):
        return  # another driver: its own options, unknown here
    driver_options = list(SQLITE_OPTIONS)
    if driver == "pysqlcipher":
        driver_options += SQLCIPHER_OPTIONS
    for name, kind in SQLITE_OPTIONS.items():
        if name in query:
            _parse_value(name, query[name], kind, where)
    uri = "uri" in query and _parse_value("uri", query["uri"], bool, where)
    if uri and "vfs" in query:
        return
    uri_options = list(SQLITE_URI_OPTIONS) if uri else []
    names = list(OWN_OPTIONS) + driver_options + uri_options + list(SQLALCHEMY_OPTIONS)
    valid = (
        f"valid options are {', '.join(OWN_OPTIONS)} (anystore's), "
        f"{', '.join(driver_options)} (the {driver or 'pysqlite'} driver's), "
        + (f"{', '.join(uri_options)} (SQLite's, with uri=true), " if uri else "")
        + f"{', '.join(SQLALCHEMY_OPTIONS)} (SQLAlchemy's)"
        + ("" if uri else f"; with uri=true also SQLite's {', '.join(SQLITE_URI_OPTIONS)}")
    )
    for name in query:
        if name in SQLITE_FIXED:
            raise InvalidOption(
                f"Option {name!r} in {where} cannot be set: {SQLITE_FIXED[name]}; {valid}"
            )
    unknown = [name for name in query if name not in names]
    if unknown:
        raise InvalidOption(f"{unknown_options(unknown, names, where)}; {valid}")


def _parse_value(name: str, value: Any, kind: type, where: str) -> Any:
    # As SQLAlchemy parses them (util.coerce_kw_type), so that a bad value fails here, by name.
    text = value[-1] if isinstance(value, tuple) else value
    try:
        return asbool(text) if kind is bool else kind(text)
    except (TypeError, ValueError):
        raise InvalidOption(
            f"Bad value {text!r} for option {name!r} in {where}: expected {kind.__name__}"
        ) from None


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
    memory = backend == "sqlite" and _sqlite_memory(parsed.database, dict(parsed.query))
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
            seconds = _parse_value("timeout", parsed.query["timeout"], float, mask_uri(url))
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


def _sqlite_memory(database: str | None, query: dict[str, Any]) -> bool:
    """Whether the database lives in memory: `sqlite://`, or a SQLite URI filename such as
    `file::memory:` or `file:name?mode=memory` (uri=true); each connection of a pool would get
    an empty database of its own."""
    if database in (None, "", ":memory:"):
        return True
    # parse_uri checked `uri`; "file::memory:" is SQLite's own name for a memory database.
    if not _parse_value("uri", query.get("uri", "false"), bool, "") or database is None:
        return False
    return database == "file::memory:" or query.get("mode") == "memory"


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
