"""The writes that differ per dialect: upserts, written out once here as SQLAlchemy Core.

PostgreSQL and SQLite spell an upsert `INSERT ... ON CONFLICT (key) DO UPDATE`; MySQL and
MariaDB spell it `INSERT ... ON DUPLICATE KEY UPDATE`, applying the assignments in order, so
anything that reads an old column must come before the assignment that changes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, bindparam, case


def _insert(table: Table, dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        from sqlalchemy.dialects.mysql import insert  # type: ignore[assignment]
    return insert(table).values(
        key=bindparam("k"),
        value=bindparam("v"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
        expires_at=bindparam("exp"),
        size=bindparam("sz"),
    )


def _expired(table: Table, now: Any) -> Any:
    return and_(table.c.expires_at.is_not(None), table.c.expires_at <= now)


def _kept_created(table: Table, now: Any) -> Any:
    """created_at survives an overwrite, unless the old row had already expired."""
    return case((_expired(table, now), now), else_=table.c.created_at)


def upsert(table: Table, dialect: str) -> Any:
    """Write a row; an overwrite keeps created_at unless the old row had expired.

    Parameters: k, v, now, exp, sz (NULL for an inline value; see schema.py).
    """
    statement = _insert(table, dialect)
    if dialect in ("mysql", "mariadb"):
        new = statement.inserted
        return statement.on_duplicate_key_update(
            [
                ("created_at", _kept_created(table, new.updated_at)),
                ("value", new.value),
                ("updated_at", new.updated_at),
                ("expires_at", new.expires_at),
                ("size", new.size),
            ]
        )
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "created_at": _kept_created(table, new.updated_at),
            "value": new.value,
            "updated_at": new.updated_at,
            "expires_at": new.expires_at,
            "size": new.size,
        },
    )


def take_lock(table: Table, dialect: str) -> Any:
    """Insert a lock row, or take over the row of an expired lock; leave a live one alone.

    One statement, so the row lock the database takes makes it atomic. Whether it succeeded is
    read back afterwards in the same transaction (MySQL's row count cannot tell). Parameters:
    k, v (the token), now, exp, sz (NULL).
    """
    statement = _insert(table, dialect)
    if dialect in ("mysql", "mariadb"):
        new = statement.inserted
        expired = _expired(table, new.updated_at)
        # expires_at last: every earlier assignment still reads the old expiry.
        return statement.on_duplicate_key_update(
            [
                (column, case((expired, getattr(new, column)), else_=table.c[column]))
                for column in ("value", "size", "created_at", "updated_at", "expires_at")
            ]
        )
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={
            "value": new.value,
            "size": new.size,
            "created_at": new.created_at,
            "updated_at": new.updated_at,
            "expires_at": new.expires_at,
        },
        where=_expired(table, new.updated_at),
    )
