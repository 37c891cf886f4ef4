"""`redis://[user:password@]host[:port][/db][/key/prefix]`: values as plain Redis strings.

A value lives at `<prefix>/<key>` as a Redis string, so other Redis tools can read it. Its
timestamps and version token live beside it in a small hash, `<folder>/.~anystore-meta~<name>`
(fields `c` created, `u` updated, `v` version), written in the same Lua call as the value, so `get`
stays one GET. A read handle checks the version per range (`streams.py`). TTLs are native (PX on
the value, PEXPIRE on the hash). Listings SCAN with `TYPE string`, so the server never sends the
hashes (Redis 6.0+; older servers send them and they are skipped by name). Nothing outside
the prefix is ever read, listed or deleted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any, TypeVar, cast

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from anystore.backend import Backend, BackendStat
from anystore.clients import Translated
from anystore.exceptions import AnystoreError, mask_uri
from anystore.io import WriteHandle
from anystore.keys import RESERVED_PREFIX, is_reserved, lock_name
from anystore.settings import load_settings
from anystore_redis import scripts, streams
from anystore_redis.connection import parse_uri, pool, translate
from anystore_redis.settings import RedisSettings
from anystore_redis.streams import escape_glob, meta_key, new_version

__all__ = ["RedisBackend", "parse_uri"]

SCAN_COUNT = 1000
# Keys per DEL / MGET command in batch calls.
BATCH = 1000
# Values per script call in put_many: bounded so that one call never blocks the server long.
PUT_BATCH = 500

T = TypeVar("T")


def _utc(value: bytes | None, fallback: float) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return datetime.fromtimestamp(fallback, timezone.utc)


class RedisBackend(Backend):
    """Moves bytes to and from one Redis database, below an optional key prefix.

    Options (keywords of `get_store()`, else `ANYSTORE_REDIS_*`): `socket_connect_timeout`,
    `socket_timeout`, `max_connections`, `health_check_interval`, and for `rediss://`
    `ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`.
    """

    supports_ttl = True  # the medium expires keys itself
    atomic_pop = True
    keeps_created_at = True
    supports_locks = True

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        settings = load_settings(RedisSettings, options)
        self.masked_uri = mask_uri(uri)
        self._url, prefix = parse_uri(uri)
        self._prefix = prefix + "/" if prefix else ""
        self._options: dict[str, Any] = {
            "socket_connect_timeout": settings.socket_connect_timeout,
            "socket_timeout": settings.socket_timeout,
            "max_connections": settings.max_connections,
            "health_check_interval": settings.health_check_interval,
        }
        if self._url.startswith("rediss://"):
            self._options.update(
                ssl_cert_reqs=settings.ssl_cert_reqs,
                ssl_ca_certs=settings.ssl_ca_certs,
                ssl_certfile=settings.ssl_certfile,
                ssl_keyfile=settings.ssl_keyfile,
            )
        # decode_responses stays off: every reply is bytes, never str (hence the casts below,
        # which narrow redis-py's `bytes | str` replies).
        self.client = redis.Redis(connection_pool=pool(self._url, self._options, self.masked_uri))
        self._put = self.client.register_script(scripts.PUT)
        self._commit = self.client.register_script(scripts.COMMIT)
        self._open = self.client.register_script(scripts.OPEN)
        self._cleanup = self.client.register_script(scripts.CLEANUP)
        self._release = self.client.register_script(scripts.RELEASE)
        self._stat = self.client.register_script(scripts.STAT)
        # SCAN ... TYPE string (Redis 6.0+) leaves the metadata hashes on the server; set to False
        # on a server that refuses the option, which then sends them and they are skipped here.
        self._scan_strings = True
        # redis-py's errors as anystore's, unchained (a connection error's text is safe, but its
        # cause may carry the URL with its password).
        self.errors = Translated(self._translate, chain=False)

    # -- helpers -----------------------------------------------------------------------------

    def _translate(self, error: Exception) -> AnystoreError | None:
        if isinstance(error, redis.RedisError):
            return translate(error, self._url, self._options, self.masked_uri)
        return None

    def _call(self, action: Callable[[], T]) -> T:
        """Run `action` inside `self.errors` (for the stream handles' named steps)."""
        with self.errors:
            return action()

    def _script(self, script: Script, keys: list[str], args: list[Any] | None = None) -> Any:
        """Run a registered Lua script by EVALSHA, loading it first if the server lacks it.

        Calling `evalsha` directly skips redis-py's `Script.__call__` bookkeeping: ~9 us of a
        ~130 us put.
        """

        def run() -> Any:
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *(args or ()))
            except NoScriptError:
                return script(keys=keys, args=args)  # loads it, then runs it

        return self._call(run)

    # -- primitives --------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        with self.errors:
            return cast("bytes | None", self.client.get(self._prefix + key))

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        full = self._prefix + key
        args = [time.time(), int(ttl * 1000) if ttl else 0, new_version(), data]
        self._script(self._put, [full, meta_key(full)], args)

    def delete(self, key: str) -> None:
        full = self._prefix + key
        with self.errors:
            self.client.delete(full, meta_key(full))

    def stat(self, key: str) -> BackendStat | None:
        full = self._prefix + key
        found = self._script(self._stat, [full, meta_key(full)])
        if found is None:
            return None
        size, created, updated, pttl = found
        now = time.time()
        expires = (
            datetime.fromtimestamp(now + pttl / 1000, timezone.utc) if pttl and pttl > 0 else None
        )
        return BackendStat(
            size=size,
            created_at=_utc(created or updated, now),
            updated_at=_utc(updated, now),
            expires_at=expires,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self._prefix + prefix
        start = len(self._prefix.encode("utf-8", "surrogateescape"))
        if prefix:
            with self.errors:
                exact = self.client.exists(base)
            if exact:
                yield prefix
            pattern = escape_glob(base) + "/*"
        else:
            pattern = escape_glob(self._prefix) + "*"
        cursor = 0
        while True:
            with self.errors:
                cursor, keys = self._scan_page(cursor, pattern)
            for raw in keys:
                # Only the part below the prefix is decoded: the prefix is known.
                name = raw[start:].decode("utf-8", "surrogateescape")
                if RESERVED_PREFIX in name and is_reserved(name):
                    continue  # metadata hashes (old servers), streaming temp keys, locks
                yield name
            if cursor == 0:
                return

    def _scan_page(self, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
        """One SCAN page of string keys matching `pattern` (all types on a pre-6.0 server)."""
        if self._scan_strings:
            try:
                page = self.client.scan(cursor, match=pattern, count=SCAN_COUNT, _type="string")
                return cast("tuple[int, list[bytes]]", page)
            except redis.ResponseError as error:
                # Redis before 6.0 answers "ERR syntax error" to the TYPE option.
                if cursor or "syntax" not in str(error).lower():
                    raise
                self._scan_strings = False
        page = self.client.scan(cursor, match=pattern, count=SCAN_COUNT)
        return cast("tuple[int, list[bytes]]", page)

    # -- derived, native ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        with self.errors:
            return bool(self.client.exists(self._prefix + key))

    def pop(self, key: str) -> bytes | None:
        full = self._prefix + key

        with self.errors:
            pipe = self.client.pipeline(transaction=True)
            pipe.getdel(full)
            pipe.delete(meta_key(full))
            value: bytes | None = pipe.execute()[0]
        return value

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        with self.errors:
            values = cast("list[bytes | None]", self.client.mget([self._prefix + k for k in keys]))
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                yield key, value

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        px = int(ttl * 1000) if ttl else 0
        now = time.time()
        for start in range(0, len(items), PUT_BATCH):
            keys: list[str] = []
            args: list[Any] = [now, px, new_version()]
            for key, data in items[start : start + PUT_BATCH]:
                full = self._prefix + key
                keys += (full, meta_key(full))
                args.append(data)
            self._script(self._put, keys, args)

    def delete_many(self, keys: Iterable[str]) -> None:
        names: list[str] = []
        for key in keys:
            full = self._prefix + key
            names += (full, meta_key(full))
        if not names:
            return

        with self.errors:
            # One round trip: every UNLINK (value and metadata hash per key) in one pipeline.
            pipe = self.client.pipeline(transaction=False)
            for i in range(0, len(names), BATCH * 2):
                pipe.unlink(*names[i : i + BATCH * 2])
            pipe.execute()

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        full = self._prefix + lock_name(name)
        px = max(int(ttl * 1000), 1)
        with self.errors:
            return bool(self.client.set(full, token, nx=True, px=px))

    def release_lock(self, name: str, token: str) -> bool:
        full = self._prefix + lock_name(name)
        return bool(self._script(self._release, [full], [token]))

    def open_read(self, key: str) -> IO[bytes] | None:
        return streams.open_reader(self, self._prefix + key)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        return streams.open_writer(self, self._prefix + key, ttl)

    def cleanup(self, older_than: float) -> int:
        """Remove streaming-write temp keys whose writer wrote nothing for `older_than` seconds."""
        return streams.cleanup(self, older_than)

    def close(self) -> None:
        # The pool is shared with other stores on the same server; it is closed with the process.
        pass
