"""The tables an SQL store keeps its values in, per dialect, and the checks around them.

The value table, one row per key: `key` (primary key, compared byte by byte so that prefix range
scans are literal), `value`, `created_at`, `updated_at` and `expires_at` (seconds since the
epoch, UTC; `expires_at` indexed for purges), and `size`. A value of up to `INLINE_MAX` bytes
is kept inline in `value` with `size` NULL. A larger one is kept in the chunk table
(`<table>_chunks`, primary key `key, seq`, `CHUNK_BYTES` per row but the last), its row holding
`size` and, in `value`, the version token its chunk rows carry, so that a reader can tell
whether the chunks it reads still belong to the version it opened.

Migration: a table made before chunking (no `size` column, every value inline) gets the column
added on first open (a nullable column: no rewrite); its rows keep reading as inline values.
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

from anystore.exceptions import AnystoreError, InvalidOption

# The columns of the value table, before (LEGACY) and since chunking.
LEGACY_COLUMNS = {"key", "value", "created_at", "updated_at", "expires_at"}
COLUMNS = LEGACY_COLUMNS | {"size"}
CHUNK_COLUMNS = {"key", "seq", "token", "data", "created_at"}
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_IDENTIFIER_MAX = 63  # PostgreSQL's limit (MySQL's is 64)

# Bytes per chunk row, and the largest value kept inline in its row. Part of the stored format:
# chunk `seq` holds the bytes [seq * CHUNK_BYTES, (seq + 1) * CHUNK_BYTES) of its value. 1 MiB
# rows stay far below MariaDB's default max_allowed_packet (16 MiB) and match the 1 MiB ranges
# a read handle asks for.
CHUNK_BYTES = 1024 * 1024
INLINE_MAX = CHUNK_BYTES

# The longest key (UTF-8 bytes) each dialect keeps in its primary-key indexes. MySQL/MariaDB:
# InnoDB indexes at most 3072 bytes and the chunk table's key (key, seq) spends 4 on seq.
KEY_LIMITS = {"postgresql": 2000, "mysql": 3068, "mariadb": 3068, "sqlite": 4096}
_MYSQL_KEY_COLUMN = 3072  # the value table's VARBINARY, as created before chunking too


class KeyType(TypeDecorator[str]):
    """Keys compared as bytes on every dialect.

    PostgreSQL: text with the "C" collation; SQLite: text (binary collation by default);
    MySQL/MariaDB: VARBINARY, because their `_bin` collations ignore trailing spaces.
    """

    impl = String
    cache_ok = True

    def __init__(self, mysql_length: int = _MYSQL_KEY_COLUMN) -> None:
        super().__init__()
        self.mysql_length = mysql_length

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(self.mysql_length))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(String(collation="C"))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is not None and dialect.name in ("mysql", "mariadb"):
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value).decode("utf-8")
        return value


def check_table_name(name: str) -> str:
    """Return `name` if it is a plain SQL identifier, else raise `InvalidOption`."""
    if not _TABLE_NAME.match(name):
        raise InvalidOption(
            f"Invalid table name {name!r}: use letters, digits and '_' (not first), at most 63 "
            "characters"
        )
    return name


def chunk_table_name(name: str) -> str:
    """`<name>_chunks`, shortened with a hash of `name` where that would be too long."""
    chunks = f"{name}_chunks"
    if len(chunks) <= _IDENTIFIER_MAX:
        return chunks
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: _IDENTIFIER_MAX - 16]}_{digest}_chunks"


def _binary() -> Any:
    return LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def _token() -> Any:
    return LargeBinary().with_variant(mysql.VARBINARY(16), "mysql", "mariadb")


def make_tables(name: str) -> tuple[Table, Table]:
    """The value table called `name` and its chunk table."""
    metadata = MetaData()
    table = Table(
        name,
        metadata,
        Column("key", KeyType(), primary_key=True),
        Column("value", _binary(), nullable=False),
        Column("created_at", Float(53), nullable=False),
        Column("updated_at", Float(53), nullable=False),
        Column("expires_at", Float(53), nullable=True),
        Column("size", BigInteger(), nullable=True),
    )
    Index(f"ix_{name}_expires_at", table.c.expires_at)
    chunks = Table(
        chunk_table_name(name),
        metadata,
        Column("key", KeyType(KEY_LIMITS["mysql"]), primary_key=True),
        Column("seq", Integer(), primary_key=True, autoincrement=False),
        Column("token", _token(), nullable=False),
        Column("data", _binary(), nullable=False),
        Column("created_at", Float(53), nullable=False),
    )
    return table, chunks


def ensure_tables(engine: Engine, table: Table, chunks: Table) -> None:
    """Create the tables if missing, add `size` to a table made before chunking; refuse a table
    that is not ours (`AnystoreError` saying what to do)."""
    inspector = inspect(engine)
    if inspector.has_table(table.name):
        found = {column["name"] for column in inspector.get_columns(table.name)}
        if found == LEGACY_COLUMNS:
            _migrate(engine, table)
        elif found != COLUMNS:
            raise AnystoreError(
                f"Table {table.name!r} exists but is not an anystore table of this version "
                f"(columns {sorted(found)}, expected {sorted(COLUMNS)}). Use another ?table=, or "
                "migrate it."
            )
    if inspector.has_table(chunks.name):
        found = {column["name"] for column in inspector.get_columns(chunks.name)}
        if found != CHUNK_COLUMNS:
            raise AnystoreError(
                f"Table {chunks.name!r} (the chunks of {table.name!r}) is not an anystore chunk "
                f"table (columns {sorted(found)}). Drop or rename it, or use another ?table=."
            )
    _create_missing(engine, table, chunks)
    if engine.dialect.name == "postgresql":
        # Uncompressed out-of-line storage: substr() fetches just the range it reads, and
        # writes do not spend time trying to compress every chunk. (Idempotent, so a process that
        # lost the race to create the tables may run it too.)
        with engine.begin() as connection:
            for name, column in ((table.name, "value"), (chunks.name, "data")):
                connection.exec_driver_sql(
                    f'ALTER TABLE "{name}" ALTER COLUMN {column} SET STORAGE EXTERNAL'
                )


def _create_missing(engine: Engine, table: Table, chunks: Table, attempts: int = 5) -> None:
    """Create whichever of the two tables is missing, while other processes may do the same.

    A process that loses the race for the first table fails on it; the winner may not have made
    the second one yet, so the loser tries again (create_all checks first, so each round creates
    only what is still missing) rather than concluding from a half-made schema.
    """
    for attempt in range(attempts):
        try:
            table.metadata.create_all(engine, tables=[table, chunks])
            return
        except Exception:
            inspector = inspect(engine)
            if inspector.has_table(table.name) and inspector.has_table(chunks.name):
                return
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _migrate(engine: Engine, table: Table) -> None:
    statement = f"ALTER TABLE {table.name} ADD COLUMN size BIGINT NULL"
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except Exception as error:
        found = {column["name"] for column in inspect(engine).get_columns(table.name)}
        if "size" in found:
            return  # another process migrated it first
        raise AnystoreError(
            f"Table {table.name!r} was made by an older anystore-sql (one row per value, no "
            f"'size' column) and adding the column failed ({type(error).__name__}). Run "
            f"`{statement}` as the table's owner, then open the store again."
        ) from None
