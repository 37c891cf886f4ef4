"""Database errors in anystore's terms, and the bounded retries around a transaction.

A deadlock or serialization failure (PostgreSQL 40P01/40001, MySQL/MariaDB 1213/1020) rolls the
whole transaction back, so the transaction is run again, up to `deadlock_retries` times with a
small jittered backoff, then `ConcurrentModification`: contention, not an outage. A pooled
connection that turns out dead (the server restarted) is replaced and the operation run once
more, where doing it twice is harmless. Everything else that is the server's or the network's
fault is `BackendUnavailable`, with the password masked. A connect that the driver refuses for an
option of the URL (unknown, or a bad value) is `InvalidOption`: bad input, not an outage.
"""

from __future__ import annotations

import difflib
import random
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from anystore.clients import Translated
from anystore.exceptions import (
    AnystoreError,
    BackendUnavailable,
    ConcurrentModification,
    InvalidOption,
    mask_uri,
)
from anystore_sql.watchdog import Stalled

T = TypeVar("T")

_RETRY_STATES = {"40P01", "40001"}  # deadlock_detected, serialization_failure
_RETRY_CODES = {1213, 1020}  # ER_LOCK_DEADLOCK, ER_CHECKREAD (record changed since last read)
# Seconds of the first backoff; doubled per attempt, with jitter.
BACKOFF = 0.005
# How the drivers name an option they do not know: libpq (psycopg 3, psycopg2) and a Python
# driver's connect() (PyMySQL, pg8000: "got an unexpected keyword argument 'tabel'").
_UNKNOWN_OPTION = re.compile(
    r"invalid connection option \"(?P<libpq>[^\"]+)\"|unexpected keyword argument '(?P<kw>[^']+)'"
)
# ... and a value of one they cannot use: psycopg's "bad value for connect_timeout: 'abc'",
# libpq's 'invalid sslmode value: "x"' and 'invalid integer value "x" for connection option'.
_BAD_VALUE = re.compile(r"bad value for |invalid [\w ]*value\b|for connection option ")


def from_driver(
    dialect: Dialect,
    error: Exception,
    sql: str | None,
    params: Any,
    connection: Any = None,
    cursor: Any = None,
) -> StatementError:
    """A driver's error wrapped as SQLAlchemy wraps it (a lost connection marked as one), for
    the code that calls the driver directly: `run` then retries or translates it as any other."""
    check: Any = dialect.is_disconnect
    return DBAPIError.instance(
        sql,
        params,
        error,
        dialect.loaded_dbapi.Error,
        connection_invalidated=bool(check(error, connection, cursor)),
        dialect=dialect,
    )


def _contention(error: DBAPIError) -> bool:
    orig = error.orig
    if getattr(orig, "sqlstate", None) in _RETRY_STATES:
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in _RETRY_CODES


def _reason(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return mask_uri(text.splitlines()[0] if text else type(error).__name__)


def unknown_options(unknown: list[str], known: list[str], where: str) -> str:
    """'Unknown option(s) ... in URI', with their close matches among `known` (a typo's fix)."""
    listed = ", ".join(repr(name) for name in unknown)
    close = [match for name in unknown for match in difflib.get_close_matches(name, known, 1)]
    hint = f" (did you mean {', '.join(repr(name) for name in close)}?)" if close else ""
    return f"Unknown option{'s' if len(unknown) > 1 else ''} {listed} in {where}{hint}"


def bad_option(
    error: BaseException, where: str, driver: str, own: tuple[str, ...], hints: tuple[str, ...]
) -> InvalidOption | None:
    """The `InvalidOption` for a driver's refusal to connect with the URL's options (`where`,
    masked), naming the option; None for any other error on connect (the server's, the
    network's: translated as usual). `own` are anystore's options; `own` and `hints` (driver
    options anystore sets) are the candidates for a "did you mean"."""
    reason = _reason(error)
    found = _UNKNOWN_OPTION.search(reason)
    if found:
        name = found["libpq"] or found["kw"]
        return InvalidOption(
            f"{unknown_options([name], [*own, *hints], where)}: anystore's own options are "
            f"{', '.join(own)}, the others go to the {driver} driver, which does not know it"
        )
    # A TypeError from connect() itself is an argument it cannot take (PyMySQL compares a
    # string timeout with a number); only a driver's own wording marks a bad value among its
    # errors, as its others (a refused login, an unknown database) are not about options.
    if isinstance(error, TypeError) or _BAD_VALUE.search(reason):
        return InvalidOption(f"Bad connection option in {where}: {reason}")
    return None


def translate(error: Exception, where: str, retries: int, timeout: float) -> AnystoreError | None:
    """The anystore error for a database error on `where` (the masked URI); None: not ours."""
    if isinstance(error, Stalled):
        return BackendUnavailable(
            f"Database {where} is unavailable: {error} (operation_timeout={timeout:g}); "
            "the server is stalled or overloaded"
        )
    if isinstance(error, PoolTimeout):
        return BackendUnavailable(
            f"No free connection to {where} ({error}). Close read handles you no longer "
            "need, or raise pool_size / max_overflow / pool_timeout."
        )
    if not isinstance(error, DBAPIError):
        return None
    reason = _reason(error)
    if _contention(error):
        return ConcurrentModification(
            f"A write to {where} kept colliding with other writers ({reason}) after "
            f"{retries} retries; try again"
        )
    if "max_allowed_packet" in reason:
        return AnystoreError(
            f"A value is too large for {where}: {reason}. Values written by this version are "
            "chunked (1 MiB rows); this one was sent whole: raise the server's "
            "max_allowed_packet to read it."
        )
    # A lost connection (a disconnect the driver reports as a programming error, too).
    if isinstance(error, (OperationalError, InterfaceError)) or error.connection_invalidated:
        return BackendUnavailable(f"Database {where} is unavailable: {reason}")
    return AnystoreError(f"Database error on {where}: {reason}")


def run(
    action: Callable[[], T],
    where: str,
    *,
    retries: int,
    timeout: float,
    repeatable: bool = True,
) -> T:
    """Run `action` (one transaction), retrying contention; raise anystore errors.

    `where` is the masked URI for messages; `repeatable` False for an action that must not run
    twice after a lost connection (its first run may have committed: pop, release).
    """
    attempt = 0
    reconnected = False
    # Unchained: a driver's message may hold the URL with its password.
    with Translated(partial(translate, where=where, retries=retries, timeout=timeout), chain=False):
        while True:
            try:
                return action()
            except DBAPIError as error:
                if _contention(error):
                    if attempt >= retries:
                        raise
                    time.sleep(BACKOFF * (2**attempt) * (0.5 + random.random()))
                    attempt += 1
                elif (
                    error.connection_invalidated
                    and repeatable
                    and not reconnected
                    and "timed out" not in _reason(error)
                ):
                    reconnected = True  # a stale pooled connection: once more on a new one
                else:
                    raise
