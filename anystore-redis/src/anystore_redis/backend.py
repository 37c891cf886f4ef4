"""`redis://[user:password@]host[:port][/db][/key/prefix]`: values as plain Redis strings.

A value lives at `<prefix>/<key>` as a Redis string, so other Redis tools can read it. Its
timestamps live beside it in a small hash, `<folder>/.~anystore-meta~<name>` (fields `c` created,
`u` updated), written in the same MULTI/EXEC as the value, so `get` stays one GET and `info` one
round trip. TTLs are native (PX on the value, PEXPIRE on the hash). Nothing outside the prefix is
ever read, listed or deleted.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anystore.backend import Backend, BackendStat
from anystore.exceptions import AnystoreError, BackendUnavailable, mask_uri
from anystore.io import CHUNK_SIZE, WriteHandle
from anystore.keys import RESERVED_PREFIX, is_reserved, lock_name, normalize_prefix
from anystore.settings import load_settings
from anystore_redis.settings import RedisSettings
from anystore_redis.streams import AppendWriter, RangeReader

META_PREFIX = RESERVED_PREFIX + "-meta~"
TEMP_PREFIX = RESERVED_PREFIX + "-tmp~"
SCAN_COUNT = 1000
# Keys per DEL / MGET command in batch calls.
BATCH = 1000

T = TypeVar("T")

# Puts go through one Lua script: each value with its timestamps (and expiry) in one atomic
# command, and a whole batch in one call, so a put costs about what a plain SET costs.
# KEYS: value1, meta1, value2, meta2, ... ARGV: now, ttl in ms ("0": none), data1, data2, ...
PUT_SCRIPT = """
local now, ttl = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local data = ARGV[2 + (i + 1) / 2]
  if ttl > 0 then
    redis.call('SET', KEYS[i], data, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], data)
  end
  redis.call('HSETNX', KEYS[i + 1], 'c', now)
  redis.call('HSET', KEYS[i + 1], 'u', now)
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  else
    redis.call('PERSIST', KEYS[i + 1])
  end
end
"""
# Compare-and-delete for releasing a lock: only the holder's token may remove it.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Values per script call in put_many: bounded so that one call never blocks the server long.
PUT_BATCH = 500

_pools: dict[tuple[str, tuple[tuple[str, Any], ...]], redis.ConnectionPool] = {}
_pools_lock = threading.Lock()


def parse_uri(uri: str) -> tuple[str, str]:
    """Split a store URI into the redis-py connection URL and the key prefix.

    `redis://host:6379/2/some/prefix` -> (`redis://host:6379/2`, `some/prefix`); a first path
    segment that is not a number is part of the prefix (db 0). `?prefix=` works on every form
    (and is the only way on `unix://`).
    """
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    extra_prefix = query.pop("prefix", "")
    if parts.scheme == "unix":
        path, segments = parts.path, []
    else:
        segments = [s for s in parts.path.split("/") if s]
        db = segments.pop(0) if segments and segments[0].isdigit() else "0"
        path = f"/{db}"
    prefix = normalize_prefix("/".join([*segments, extra_prefix]))
    # Built by hand: urlunsplit drops the '//' of 'unix:///path' (no host).
    rest = urlencode(query)
    url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{rest}" if rest else "")
    return url, prefix


def _pool(url: str, options: dict[str, Any]) -> redis.ConnectionPool:
    """One pool per server URL and options, shared by every store on it (thread-safe)."""
    key = (url, tuple(sorted(options.items())))
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = redis.ConnectionPool.from_url(url, **options)
        return pool


def _meta_key(full_key: str) -> str:
    head, sep, name = full_key.rpartition("/")
    return f"{head}{sep}{META_PREFIX}{name}"


def _escape_glob(text: str) -> str:
    """Make `text` match itself literally in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


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

    atomic_pop = True
    keeps_created_at = True
    supports_locks = True

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        settings = load_settings(RedisSettings, options)
        url, prefix = parse_uri(uri)
        self.masked_uri = mask_uri(uri)
        self._prefix = prefix + "/" if prefix else ""
        connection: dict[str, Any] = {
            "socket_connect_timeout": settings.socket_connect_timeout,
            "socket_timeout": settings.socket_timeout,
            "max_connections": settings.max_connections,
            "health_check_interval": settings.health_check_interval,
        }
        if url.startswith("rediss://"):
            connection.update(
                ssl_cert_reqs=settings.ssl_cert_reqs,
                ssl_ca_certs=settings.ssl_ca_certs,
                ssl_certfile=settings.ssl_certfile,
                ssl_keyfile=settings.ssl_keyfile,
            )
        self.client = redis.Redis(connection_pool=_pool(url, connection))
        self._put = self.client.register_script(PUT_SCRIPT)
        self._release = self.client.register_script(RELEASE_SCRIPT)

    # -- helpers -----------------------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """Run `action`, translating redis-py's errors into anystore's."""
        try:
            return action()
        except AuthenticationError as error:
            raise BackendUnavailable(
                f"Redis at {self.masked_uri} refused the credentials: {error}"
            ) from None
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise BackendUnavailable(f"Cannot reach Redis at {self.masked_uri}: {error}") from None
        except ResponseError as error:
            if "WRONGTYPE" in str(error):
                raise AnystoreError(
                    f"A key in {self.masked_uri} holds a Redis value that is not a string (written "
                    f"by another tool?); anystore reads and writes strings only: {error}"
                ) from None
            raise

    def _full(self, key: str) -> str:
        return self._prefix + key

    def _stamp(self, pipe: Any, full: str, ttl: float | None, now: float) -> None:
        """Queue the metadata updates (and expiry) that go with writing `full`."""
        meta = _meta_key(full)
        pipe.hsetnx(meta, "c", now)
        pipe.hset(meta, "u", now)
        if ttl:
            pipe.pexpire(meta, int(ttl * 1000))
        else:
            pipe.persist(meta)

    # -- primitives --------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        return self._call(lambda: self.client.get(self._prefix + key))

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        full = self._prefix + key
        args = [time.time(), int(ttl * 1000) if ttl else 0, data]
        self._call(lambda: self._put(keys=[full, _meta_key(full)], args=args))

    def delete(self, key: str) -> None:
        full = self._prefix + key
        self._call(lambda: self.client.delete(full, _meta_key(full)))

    def stat(self, key: str) -> BackendStat | None:
        full = self._prefix + key

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.exists(full)
            pipe.strlen(full)
            pipe.hmget(_meta_key(full), "c", "u")
            pipe.pttl(full)
            return pipe.execute()

        found, size, (created, updated), pttl = self._call(run)
        if not found:
            return None
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
        start = len(self._prefix)
        if prefix:
            if self._call(lambda: self.client.exists(base)):
                yield prefix
            pattern = _escape_glob(base) + "/*"
        else:
            pattern = _escape_glob(self._prefix) + "*"
        cursor = 0
        while True:
            cursor, keys = self._call(
                lambda c=cursor: self.client.scan(c, match=pattern, count=SCAN_COUNT)
            )
            for raw in keys:
                full = raw.decode("utf-8", "surrogateescape")
                if is_reserved(full):
                    continue
                yield full[start:]
            if cursor == 0:
                return

    # -- derived, native ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return bool(self._call(lambda: self.client.exists(self._prefix + key)))

    def pop(self, key: str) -> bytes | None:
        full = self._prefix + key

        def run() -> bytes | None:
            pipe = self.client.pipeline(transaction=True)
            pipe.getdel(full)
            pipe.delete(_meta_key(full))
            return pipe.execute()[0]

        return self._call(run)

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        values = self._call(lambda: self.client.mget([self._prefix + k for k in keys]))
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                yield key, value

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        px = int(ttl * 1000) if ttl else 0
        now = time.time()
        for start in range(0, len(items), PUT_BATCH):
            keys: list[str] = []
            args: list[Any] = [now, px]
            for key, data in items[start : start + PUT_BATCH]:
                full = self._prefix + key
                keys += (full, _meta_key(full))
                args.append(data)
            self._call(lambda keys=keys, args=args: self._put(keys=keys, args=args))

    def delete_many(self, keys: Iterable[str]) -> None:
        names: list[str] = []
        for key in keys:
            full = self._prefix + key
            names += (full, _meta_key(full))
        for i in range(0, len(names), BATCH * 2):
            chunk = names[i : i + BATCH * 2]
            self._call(lambda chunk=chunk: self.client.delete(*chunk))

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        full = self._prefix + lock_name(name)
        px = max(int(ttl * 1000), 1)
        return bool(self._call(lambda: self.client.set(full, token, nx=True, px=px)))

    def release_lock(self, name: str, token: str) -> bool:
        full = self._prefix + lock_name(name)
        return bool(self._call(lambda: self._release(keys=[full], args=[token])))

    def open_read(self, key: str) -> IO[bytes] | None:
        full = self._prefix + key
        if not self._call(lambda: self.client.exists(full)):
            return None
        return io.BufferedReader(RangeReader(self, full), buffer_size=CHUNK_SIZE)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        full = self._prefix + key
        head, sep, _ = full.rpartition("/")
        temp = f"{head}{sep}{TEMP_PREFIX}{uuid.uuid4().hex}"
        return WriteHandle(
            AppendWriter(self, temp), self._commit(full, temp, ttl), self._abort(temp)
        )

    def _commit(self, full: str, temp: str, ttl: float | None) -> Callable[[Any], None]:
        def commit(writer: AppendWriter) -> None:
            writer.flush()

            def run() -> None:
                pipe = self.client.pipeline(transaction=True)
                if writer.written:
                    pipe.rename(temp, full)
                    if ttl:
                        pipe.pexpire(full, int(ttl * 1000))
                    else:
                        pipe.persist(full)  # the temp key's safety expiry must not stay
                else:
                    pipe.set(full, b"", px=int(ttl * 1000) if ttl else None)
                self._stamp(pipe, full, ttl, time.time())
                pipe.execute()

            self._call(run)

        return commit

    def _abort(self, temp: str) -> Callable[[Any], None]:
        def abort(writer: AppendWriter) -> None:
            writer.buffer.clear()
            try:
                self.client.delete(temp)
            except redis.RedisError:
                pass  # the temp key expires on its own

        return abort

    def close(self) -> None:
        # The pool is shared with other stores on the same server; it is closed with the process.
        pass
