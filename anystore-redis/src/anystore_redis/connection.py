"""Store URIs to redis-py connection pools, and redis-py's errors to anystore's.

A bad URI fails with `InvalidOption` when the store is opened; what only the server can tell (a
db index it does not have, refused credentials) fails on first use. Every message names the URI
with its password masked.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from anystore.clients import ClientCache
from anystore.exceptions import (
    AnystoreError,
    BackendUnavailable,
    InvalidOption,
    ReadOnly,
    mask_uri,
)
from anystore.keys import normalize_prefix

_POOLS: ClientCache[redis.ConnectionPool] = ClientCache()

# Server replies that mean "not now" rather than "never": the server is busy, loading, out of
# memory. Retrying later can succeed.
_TRANSIENT = ("LOADING", "BUSY", "OOM", "MISCONF", "MASTERDOWN", "TRYAGAIN")


def parse_uri(uri: str) -> tuple[str, str]:
    """Split a store URI into the redis-py connection URL and the key prefix.

    `redis://host:6379/2/some/prefix` -> (`redis://host:6379/2`, `some/prefix`); a first path
    segment that is not a number is part of the prefix (db 0). `?prefix=` works on every form
    (and is the only way on `unix://`). Raises `InvalidOption` for a malformed port or db.
    """
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError as error:
        raise InvalidOption(
            f"Malformed Redis URI {mask_uri(uri)}: {error}; the port must be a number from 1 to "
            "65535 (redis://host:6379/0)"
        ) from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra_prefix = query.pop("prefix", "")
    if parts.scheme == "unix":
        path, segments = parts.path, []
        if not query.get("db", "0").isdigit():
            raise InvalidOption(
                f"Malformed Redis URI {mask_uri(uri)}: db={query['db']!r} is not a db index "
                "(a number, such as ?db=0)"
            )
    else:
        segments = [s for s in parts.path.split("/") if s]
        db = segments.pop(0) if segments and segments[0].isdigit() else "0"
        path = f"/{db}"
    prefix = normalize_prefix("/".join([*segments, extra_prefix]))
    # Built by hand: urlunsplit drops the '//' of 'unix:///path' (no host).
    rest = urlencode(query)
    url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{rest}" if rest else "")
    return url, prefix


def db_index(url: str) -> int:
    """The db index of a connection URL from `parse_uri`."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return int(dict(parse_qsl(parts.query)).get("db", "0"))
    return int(parts.path.strip("/") or 0)


def _with_db0(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query, keep_blank_values=True), db="0")
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    return f"{parts.scheme}://{parts.netloc}/0" + (f"?{parts.query}" if parts.query else "")


def pool(url: str, options: dict[str, Any], masked_uri: str) -> redis.ConnectionPool:
    """One pool per server URL and options, shared by every store on it (thread-safe; a forked
    child makes its own).

    Raises `InvalidOption` for a query parameter redis-py cannot use (`?socket_timeout=abc`).
    """

    def make() -> redis.ConnectionPool:
        try:
            return redis.ConnectionPool.from_url(url, **options)
        except (ValueError, TypeError) as error:
            raise InvalidOption(f"Bad option in Redis URI {masked_uri}: {error}") from None

    return _POOLS.get((url, tuple(sorted(options.items()))), make)


def _database_count(url: str, options: dict[str, Any]) -> int | None:
    """How many databases the server has (CONFIG GET databases on db 0), or None if it won't say."""
    # The same options (timeouts, TLS), one attempt: this runs only to word an error message.
    probe = redis.Redis.from_url(_with_db0(url), retry=Retry(NoBackoff(), 0), **options)
    try:
        # redis-py decodes CONFIG GET replies to str; its stub also allows a nil reply.
        return int(cast(str, probe.config_get("databases")["databases"]))
    except (redis.RedisError, KeyError, ValueError):
        return None  # CONFIG is often disabled on managed servers
    finally:
        probe.close()


def translate(
    error: redis.RedisError, url: str, options: dict[str, Any], masked_uri: str
) -> AnystoreError:
    """The anystore error that says what `error`, raised by redis-py, means for this store."""
    text = str(error)
    # redis-py strips a known error code off the message and keeps it as `status_code`.
    code = getattr(error, "status_code", None) or text.partition(" ")[0]
    if isinstance(error, AuthenticationError) or code in ("NOAUTH", "WRONGPASS"):
        return BackendUnavailable(f"Redis at {masked_uri} refused the credentials: {text}")
    if isinstance(error, (RedisConnectionError, RedisTimeoutError)):
        return BackendUnavailable(f"Cannot reach Redis at {masked_uri}: {text}")
    if "DB index" in text:
        db, count = db_index(url), _database_count(url, options)
        has = f"it has {count} (0 to {count - 1})" if count else "it has fewer"
        return InvalidOption(
            f"Redis at {masked_uri} has no database {db}: {has}; choose a db index the server "
            "has in the URI (redis://host:port/<db>), or raise its `databases` setting"
        )
    if code == "WRONGTYPE":
        return AnystoreError(
            f"A key in {masked_uri} holds a Redis value that is not a string (written by another "
            f"tool?); anystore reads and writes strings only: {text}"
        )
    if code in _TRANSIENT:
        return BackendUnavailable(f"Redis at {masked_uri} cannot serve this now: {code} {text}")
    if code == "READONLY":
        return ReadOnly(f"Redis at {masked_uri} is a read-only replica: {text}")
    if code == "NOPERM":
        return AnystoreError(
            f"Redis at {masked_uri} denies this user a command anystore needs: {text}; grant it "
            "the string, hash, keyspace, scripting and transaction commands (+@all ~<prefix>*)"
        )
    return AnystoreError(f"Redis at {masked_uri} failed: {type(error).__name__}: {text}")
