"""Database URLs: a store URI into a SQLAlchemy URL, and the query options it may carry.

`parse_uri` turns a store URI into a SQLAlchemy URL (our `table` and `prefix` removed) with a
default driver. A query option in the URL is either ours (`table`, `prefix`) or the driver's, and
an unknown one is an `InvalidOption`, never silently ignored (a typo in `table` would put the data
in another table). SQLite's options are few and fixed, so they are checked here; libpq and
PyMySQL take many, so there the driver's own complaint on connect is translated (engines.py).
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.util import asbool

from anystore.exceptions import InvalidOption, mask_uri
from anystore.keys import normalize_prefix
from anystore_sql.errors import unknown_options
from anystore_sql.schema import check_table_name

DEFAULT_TABLE = "anystore"
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
            parse_value(name, query[name], kind, where)
    uri = "uri" in query and parse_value("uri", query["uri"], bool, where)
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


def parse_value(name: str, value: Any, kind: type, where: str) -> Any:
    # As SQLAlchemy parses them (util.coerce_kw_type), so that a bad value fails here, by name.
    text = value[-1] if isinstance(value, tuple) else value
    try:
        return asbool(text) if kind is bool else kind(text)
    except (TypeError, ValueError):
        raise InvalidOption(
            f"Bad value {text!r} for option {name!r} in {where}: expected {kind.__name__}"
        ) from None


def sqlite_memory(database: str | None, query: dict[str, Any]) -> bool:
    """Whether the database lives in memory: `sqlite://`, or a SQLite URI filename such as
    `file::memory:` or `file:name?mode=memory` (uri=true); each connection of a pool would get
    an empty database of its own."""
    if database in (None, "", ":memory:"):
        return True
    # parse_uri checked `uri`; "file::memory:" is SQLite's own name for a memory database.
    if not parse_value("uri", query.get("uri", "false"), bool, "") or database is None:
        return False
    return database == "file::memory:" or query.get("mode") == "memory"
