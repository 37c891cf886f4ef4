"""Settings of the SQL backend (prefix `ANYSTORE_SQL_`); `get_store()` keywords win."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SqlSettings(BaseSettings):
    """Engine options, shared by every store on the same database URL and options."""

    model_config = SettingsConfigDict(env_prefix="ANYSTORE_SQL_", extra="ignore")

    pool_size: int = Field(5, description="Connections kept open (SQLite: files only).")
    max_overflow: int = Field(10, description="Extra connections under load (SQLite: files).")
    pool_timeout: float = Field(30.0, description="Seconds to wait for a free connection.")
    pool_recycle: int = Field(3600, description="Seconds after which a connection is renewed.")
    connect_timeout: int = Field(
        5, ge=1, description="Seconds to wait for the server (PostgreSQL, MySQL) on connect."
    )
    operation_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds one statement (or commit) may wait for the server's answer "
        "(PostgreSQL, MySQL) before the store gives up with BackendUnavailable.",
    )
    deadlock_retries: int = Field(
        5,
        ge=0,
        description="Times a transaction is retried after a deadlock or serialization "
        "failure before ConcurrentModification is raised.",
    )
    busy_timeout: int = Field(30_000, description="SQLite: milliseconds to wait for a lock.")
    echo: bool = Field(False, description="Log every SQL statement (SQLAlchemy's echo).")
