"""The entry-point module of anystore-sql: tiny on purpose, it imports no SQLAlchemy;
`anystore_sql.backend` is imported only when an SQL store is opened."""

from __future__ import annotations

from anystore import hookimpl
from anystore.hookspecs import RegisterBackend


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Serve SQLite, PostgreSQL and MySQL/MariaDB URLs (with or without `+driver`)."""
    register(
        ["sqlite", "postgresql", "postgres", "mysql", "mariadb"],
        "anystore_sql.backend:SqlBackend",
    )
