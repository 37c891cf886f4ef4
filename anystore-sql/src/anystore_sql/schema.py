"""The table an SQL store keeps its values in, per dialect, and the checks around it.

One row per key: `key` (primary key, compared byte by byte so that prefix range scans are
literal), `value` (a binary large object), `created_at`, `updated_at` and `expires_at` (seconds
since the epoch, UTC; `expires_at` indexed for purges).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Column, Float, Index, LargeBinary, MetaData, String, Table, inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

from anystore.exceptions import AnystoreError, InvalidKey, InvalidOption

COLUMNS = ("key", "value", "created_at", "updated_at", "expires_at")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# The longest key (UTF-8 bytes) each dialect can keep in its primary-key index.
KEY_LIMITS = {"postgresql": 2000, "mysql": 3072, "mariadb": 3072, "sqlite": 4096}


class KeyType(TypeDecorator[str]):
    """Keys compared as bytes on every dialect.

    PostgreSQL: text with the "C" collation; SQLite: text (binary collation by default);
    MySQL/MariaDB: VARBINARY, because their `_bin` collations ignore trailing spaces.
    """

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(KEY_LIMITS["mysql"]))
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


def make_table(name: str) -> Table:
    """The anystore table definition called `name`."""
    value_type = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
    table = Table(
        name,
        MetaData(),
        Column("key", KeyType(), primary_key=True),
        Column("value", value_type, nullable=False),
        Column("created_at", Float(53), nullable=False),
        Column("updated_at", Float(53), nullable=False),
        Column("expires_at", Float(53), nullable=True),
    )
    Index(f"ix_{name}_expires_at", table.c.expires_at)
    return table


def ensure_table(engine: Engine, table: Table) -> None:
    """Create `table` if it is missing; refuse an existing table that is not ours."""
    inspector = inspect(engine)
    if inspector.has_table(table.name):
        found = {column["name"] for column in inspector.get_columns(table.name)}
        if found != set(COLUMNS):
            raise AnystoreError(
                f"Table {table.name!r} exists but is not an anystore table of this version "
                f"(columns {sorted(found)}, expected {list(COLUMNS)}). Use another ?table=, or "
                "migrate it."
            )
        return
    try:
        table.metadata.create_all(engine, tables=[table])
        if engine.dialect.name == "postgresql":
            # Uncompressed out-of-line storage lets substr() fetch just the chunk it reads,
            # instead of decompressing the whole value for every chunk of a streamed read.
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ALTER COLUMN value SET STORAGE EXTERNAL'
                )
    except Exception:
        # Another process may have created it at the same moment.
        if not inspect(engine).has_table(table.name):
            raise


def check_key_length(key: str, dialect: str) -> None:
    """Raise `InvalidKey` if `key` is longer than the dialect's primary-key index allows."""
    limit = KEY_LIMITS.get(dialect, 2000)
    if len(key) * 4 > limit and len(key.encode("utf-8")) > limit:
        raise InvalidKey(
            f"Invalid key {key[:40]!r}...: {len(key.encode('utf-8'))} bytes, but {dialect} "
            f"stores keys of at most {limit} bytes (UTF-8)"
        )
