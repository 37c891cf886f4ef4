"""Streaming a Redis string in chunks: APPEND to a temp key when writing, GETRANGE when reading.

Neither side holds more than one chunk (CHUNK_SIZE) of the value in memory.

* A read handle opens on the value's size and version token (`scripts.OPEN`) and checks both with
  every range (STRLEN, HGET, GETRANGE in one MULTI): it returns the version it opened on, or raises
  `ConcurrentModification` on the next read once that version was overwritten, deleted or expired.
* A write APPENDs to a temp key `<folder>/.~anystore-tmp~<hex>` and renews its expiry (the lease,
  TEMP_KEY_TTL_MS) in the same MULTI, so `lease - PTTL` is the time since the writer's last chunk:
  `cleanup` removes temp keys idle longer than its threshold, never a livelier write. Close
  RENAMEs the temp key over the value (`scripts.COMMIT`) if it still holds every byte written.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import IO, TYPE_CHECKING, Any, cast

import redis

from anystore.exceptions import ConcurrentModification
from anystore.io import CHUNK_SIZE, WriteHandle, open_ranged
from anystore.keys import RESERVED_PREFIX

if TYPE_CHECKING:
    from anystore_redis.backend import RedisBackend

META_PREFIX = RESERVED_PREFIX + "-meta~"
TEMP_PREFIX = RESERVED_PREFIX + "-tmp~"
# A streaming write's temp key expires on its own this long after its writer's last chunk.
TEMP_KEY_TTL_MS = 24 * 3600 * 1000
SCAN_COUNT = 1000
# Temp keys per cleanup script call: bounded so that one call never blocks the server long.
CLEANUP_BATCH = 200


def meta_key(full: str) -> str:
    """The metadata hash (timestamps, version token) that goes with the value at `full`."""
    head, sep, name = full.rpartition("/")
    return f"{head}{sep}{META_PREFIX}{name}"


def new_version() -> bytes:
    """A fresh version token: random, so a key deleted and rewritten never repeats one."""
    return os.urandom(8)


def escape_glob(text: str) -> str:
    """Make `text` match itself literally in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# -- reading ---------------------------------------------------------------------------------


def open_reader(backend: RedisBackend, full: str) -> IO[bytes] | None:
    """A seekable handle on the current version of `full`, or None if it is missing.

    Raises `ConcurrentModification` from a read once that version is gone.
    """
    keys = [full, meta_key(full)]
    opened = backend._script(backend._open, keys)
    if opened is None:
        return None
    size, version = int(opened[0]), bytes(opened[1])

    def read_range(start: int, length: int) -> bytes:
        # STRLEN, the version and the range in one MULTI: atomic, one round trip, and (unlike a
        # Lua script returning the range) without copying the bytes through the script engine.
        def run() -> list[Any]:
            pipe = backend.client.pipeline(transaction=True)
            pipe.strlen(full)
            pipe.hget(keys[1], "v")
            pipe.getrange(full, start, start + length - 1)
            return pipe.execute()

        now_size, now_version, data = backend._call(run)
        if now_size != size or (now_version or b"") != version:
            raise ConcurrentModification(
                f"The value at {full!r} in {backend.masked_uri} was overwritten, deleted or "
                "expired while this handle read it; open it again to read the current version"
            )
        return cast(bytes, data)  # the client leaves decode_responses off: replies are bytes

    return open_ranged(size, read_range)


# -- writing ---------------------------------------------------------------------------------


class AppendWriter:
    """Collects writes and APPENDs them to a temp key in chunks of CHUNK_SIZE."""

    def __init__(self, backend: RedisBackend, temp: str) -> None:
        self.backend = backend
        self.temp = temp
        self.buffer = bytearray()
        self.written = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.buffer:  # top up the pending chunk first
            room = CHUNK_SIZE - len(self.buffer)
            self.buffer += view[:room]
            view = view[room:]
            if len(self.buffer) < CHUNK_SIZE:
                return size
            self.flush()
        # Whole chunks go out straight from the caller's buffer, without a copy.
        while len(view) >= CHUNK_SIZE:
            self._append(view[:CHUNK_SIZE])
            view = view[CHUNK_SIZE:]
        if len(view):
            self.buffer += view
        return size

    def flush(self) -> None:
        if self.buffer:
            chunk = bytes(self.buffer)
            self.buffer.clear()
            self._append(chunk)

    def _append(self, chunk: bytes | memoryview) -> None:
        expected = self.written + len(chunk)

        def run() -> int:
            pipe = self.backend.client.pipeline(transaction=True)
            pipe.append(self.temp, chunk)
            pipe.pexpire(self.temp, TEMP_KEY_TTL_MS)  # renew the lease
            return int(pipe.execute()[0])

        if self.backend._call(run) != expected:
            # The temp key was removed (cleanup, expiry) and APPEND began a new one: drop it.
            self.backend._call(lambda: self.backend.client.delete(self.temp))
            raise self._lost()
        self.written = expected

    def _lost(self) -> ConcurrentModification:
        return ConcurrentModification(
            f"The temp key of this streaming write to {self.backend.masked_uri} was removed before "
            "it was closed (Store.cleanup() with a threshold below the write's idle time, or its "
            f"{TEMP_KEY_TTL_MS // 3_600_000} h expiry); nothing was published: write it again"
        )


def open_writer(backend: RedisBackend, full: str, ttl: float | None) -> WriteHandle:
    """A write handle whose bytes replace the value at `full` when it is closed cleanly."""
    head, sep, _ = full.rpartition("/")
    temp = f"{head}{sep}{TEMP_PREFIX}{uuid.uuid4().hex}"
    writer = AppendWriter(backend, temp)

    def commit(_: Any) -> None:
        writer.flush()
        keys = [temp, full, meta_key(full)]
        args = [writer.written, int(ttl * 1000) if ttl else 0, time.time(), new_version()]
        if not backend._script(backend._commit, keys, args):
            raise writer._lost()

    def abort(_: Any) -> None:
        writer.buffer.clear()
        try:
            backend.client.delete(temp)
        except redis.RedisError:  # the temp key expires, or cleanup() removes it
            pass

    return WriteHandle(writer, commit, abort)  # type: ignore[arg-type]


# -- crash leftovers -------------------------------------------------------------------------


def temp_keys(backend: RedisBackend) -> Iterator[str]:
    """Every streaming-write temp key below the store's prefix."""
    pattern = escape_glob(backend._prefix) + "*" + escape_glob(TEMP_PREFIX) + "*"
    cursor = 0
    while True:
        page = backend._call(partial(backend.client.scan, cursor, match=pattern, count=SCAN_COUNT))
        # The client leaves decode_responses off, so key names come back as bytes.
        cursor, names = cast("tuple[int, list[bytes]]", page)
        for raw in names:
            name = raw.decode("utf-8", "surrogateescape")
            if name.rpartition("/")[2].startswith(TEMP_PREFIX):
                yield name
        if cursor == 0:
            return


def cleanup(backend: RedisBackend, older_than: float) -> int:
    """Remove temp keys whose writer wrote nothing for `older_than` seconds; return the count."""
    args = [TEMP_KEY_TTL_MS, int(older_than * 1000)]

    def sweep(names: list[str]) -> int:
        return int(backend._script(backend._cleanup, names, args))

    removed, batch = 0, []
    for name in temp_keys(backend):
        batch.append(name)
        if len(batch) == CLEANUP_BATCH:
            removed += sweep(batch)
            batch = []
    if batch:
        removed += sweep(batch)
    return removed
