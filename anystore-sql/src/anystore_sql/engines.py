"""Database URLs and engines: one SQLAlchemy engine per database URL, shared by its stores.

`parse_uri` takes our two query options (`table`, `prefix`) off a store URI and picks a default
driver; `shared_engine` creates each engine once per process, with the pool settings, and on
SQLite the pragmas that let several processes write one file (WAL, `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from anystore.exceptions import BackendNotFound, InvalidOption, mask_uri
from anystore.keys import normalize_prefix
from anystore_sql.schema import check_table_name
from anystore_sql.settings import SqlSettings

DEFAULT_TABLE = "anystore"
# PyMySQL refuses to send a packet over its own limit (16 MiB by default); the server's
# max_allowed_packet is the limit that counts, so the client's is set out of the way.
MYSQL_CLIENT_PACKET = 1024 * 1024 * 1024

# Execution option that marks a connection that is about to write (SQLite takes the lock early).
WRITE_OPTION = "anystore_write"

DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
EXTRAS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}

_engines: dict[tuple[str, tuple[tuple[str, Any], ...]], Engine] = {}
_engines_lock = threading.Lock()


def parse_uri(uri: str) -> tuple[str, str, str]:
    """Split a store URI into (SQLAlchemy URL, table, prefix); our query options are removed.

    `postgres://` becomes `postgresql://`; a bare dialect gets its default driver (psycopg for
    PostgreSQL, PyMySQL for MySQL/MariaDB).
    """
    url = make_url(uri)
    query = dict(url.query)
    table = check_table_name(str(query.pop("table", DEFAULT_TABLE)))
    prefix = normalize_prefix(str(query.pop("prefix", "")) or None)
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    driver = driver or DEFAULT_DRIVERS.get(backend, "")
    url = url.set(drivername=f"{backend}+{driver}" if driver else backend, query=query)
    return url.render_as_string(hide_password=False), table, prefix


def shared_engine(url: str, settings: SqlSettings) -> Engine:
    """The one engine for `url` and these settings, created on first use."""
    options = settings.model_dump()
    key = (url, tuple(sorted(options.items())))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _create_engine(url, settings)
        return engine


def _create_engine(url: str, settings: SqlSettings) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": settings.echo, "pool_pre_ping": True}
    if backend == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        kwargs["connect_args"] = {
            "check_same_thread": False,
            "timeout": settings.busy_timeout / 1000,
        }
        if memory:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database for all threads
    else:
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
            connect_args={"connect_timeout": settings.connect_timeout},
        )
        if backend in ("mysql", "mariadb"):
            kwargs["connect_args"]["max_allowed_packet"] = MYSQL_CLIENT_PACKET
    try:
        engine = create_engine(url, **kwargs)
    except (ImportError, NoSuchModuleError) as error:
        extra = EXTRAS.get(backend)
        hint = f'pip install "anystore-sql[{extra}]"' if extra else "install its driver"
        raise BackendNotFound(
            f"The database driver for {mask_uri(url)} is missing ({error}): {hint}"
        ) from None
    except ArgumentError as error:
        raise InvalidOption(f"Bad database URL {mask_uri(url)}: {error}") from None
    if backend == "sqlite":
        _sqlite_pragmas(engine, settings, memory)
    return engine


def _sqlite_pragmas(engine: Engine, settings: SqlSettings, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event open transactions, so writers can take the lock up
        # front (BEGIN IMMEDIATE) instead of failing to upgrade a read lock under contention.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.busy_timeout)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        # Reads run in the driver's autocommit mode (no BEGIN at all); writers lock up front.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
