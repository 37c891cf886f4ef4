"""TTL emulation for backends whose medium has no expiry of its own (`supports_ttl = False`).

`Store` wraps such a backend in `EmulatedExpiry`, so that `ttl=` works the same everywhere. A
value written with a TTL is stored in an envelope: a magic header, its expiry (8 bytes), then the
bytes as they were. A value without TTL is stored exactly as it is, unless it happens to start
with the magic header itself, in which case it gets an envelope that never expires, so reading it
back is exact. Expired values are invisible to every read and listing, and stay on the medium
until they are overwritten or deleted: deleting on read could remove a value another process has
just rewritten.

The cost falls on the backends that lack expiry: `stat`, `exists` and each listed key read the
envelope's header. A backend with native expiry declares `supports_ttl = True` and pays nothing.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import struct
import time
from collections.abc import Iterator
from typing import IO, Any

from anystore.backend import Backend, BackendStat, utc
from anystore.io import CHUNK_SIZE, WriteHandle, open_ranged, spooled_write_handle
from anystore.layer import Layer

MAGIC = b"\x00\xa7anystore-expiry\x00"
_EXPIRY = struct.Struct(">d")
HEADER = len(MAGIC) + _EXPIRY.size


def envelope(data: bytes, expires: float) -> bytes:
    """`data` behind a header that says it expires at `expires` (seconds since the epoch)."""
    return MAGIC + _EXPIRY.pack(expires) + data


def expiry_of(head: bytes) -> float | None:
    """The expiry in a value's first `HEADER` bytes, or None if it has no envelope."""
    if len(head) < HEADER or not head.startswith(MAGIC):
        return None
    return float(_EXPIRY.unpack_from(head, len(MAGIC))[0])


class EmulatedExpiry(Layer):
    """Gives a backend without native expiry the TTL behaviour of the contract."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.supports_ttl = True

    # -- whole values ----------------------------------------------------------------------

    @staticmethod
    def _pack(data: bytes, ttl: float | None) -> bytes:
        if ttl:
            return envelope(data, time.time() + ttl)
        return envelope(data, math.inf) if data.startswith(MAGIC) else data

    @staticmethod
    def _unpack(data: bytes) -> bytes | None:
        expires = expiry_of(data[:HEADER])
        if expires is None:
            return data
        return data[HEADER:] if expires > time.time() else None

    def read(self, key: str) -> bytes | None:
        data = self.inner.read(key)
        return None if data is None else self._unpack(data)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        self.inner.write(key, self._pack(data, ttl))

    def pop(self, key: str) -> bytes | None:
        data = self.inner.pop(key)
        return None if data is None else self._unpack(data)

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        for key, data in self.inner.read_many(keys):
            value = self._unpack(data)
            if value is not None:
                yield key, value

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        self.inner.write_many([(key, self._pack(data, ttl)) for key, data in items])

    # -- what needs the header ---------------------------------------------------------------

    def _expiry(self, key: str) -> tuple[bool, float | None]:
        """(exists, expiry) of `key` from its first bytes."""
        handle = self.inner.open_read(key)
        if handle is None:
            return False, None
        with handle:
            return True, expiry_of(handle.read(HEADER))

    def stat(self, key: str) -> BackendStat | None:
        stat = self.inner.stat(key)
        if stat is None or stat.size < HEADER:
            return stat
        handle = self.inner.open_read(key)
        if handle is None:  # deleted since
            return None
        with handle:  # header and size from one version (the times may be a later one's)
            expires = expiry_of(handle.read(HEADER))
            size = handle.seek(0, 2)
        if expires is None:
            return dataclasses.replace(stat, size=size)
        if expires <= time.time():
            return None
        return dataclasses.replace(
            stat,
            size=size - HEADER,
            expires_at=utc(expires) if math.isfinite(expires) else None,
        )

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def list_keys(self, prefix: str) -> Iterator[str]:
        now = time.time()
        for key in self.inner.list_keys(prefix):
            found, expires = self._expiry(key)
            if found and (expires is None or expires > now):
                yield key

    # -- streams -----------------------------------------------------------------------------

    def open_read(self, key: str) -> IO[bytes] | None:
        handle = self.inner.open_read(key)
        if handle is None:
            return None
        expires = expiry_of(handle.read(HEADER))
        if expires is None:
            handle.seek(0)
            return handle
        if expires <= time.time():
            handle.close()
            return None
        size = handle.seek(0, 2) - HEADER

        def read_range(start: int, length: int) -> bytes:
            handle.seek(HEADER + start)
            return handle.read(length)

        return open_ranged(size, read_range, handle.close)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        if ttl:
            # Spooled, so that the expiry counts from the close, as on backends with expiry.
            def publish(spool: IO[bytes]) -> None:
                with self.inner.open_write(key) as out:
                    out.write(MAGIC + _EXPIRY.pack(time.time() + ttl))
                    shutil.copyfileobj(spool, out, CHUNK_SIZE)

            return spooled_write_handle(publish)
        inner = self.inner.open_write(key)
        head = _HeadCheck(inner)
        return WriteHandle(head, head.commit, lambda _: inner.discard())  # type: ignore[arg-type]


class _HeadCheck:
    """Passes writes through, holding back the first bytes until it knows whether the value
    starts with the magic header (then it gets a never-expiring envelope, to read back exact)."""

    def __init__(self, inner: WriteHandle) -> None:
        self.inner = inner
        self.held: bytearray | None = bytearray()

    def _release(self) -> None:
        if self.held is not None:
            if self.held.startswith(MAGIC):
                self.inner.write(MAGIC + _EXPIRY.pack(math.inf))
            self.inner.write(bytes(self.held))
            self.held = None

    def write(self, data: Any) -> int:
        if self.held is None:
            return self.inner.write(data)
        self.held += data
        if len(self.held) >= len(MAGIC):
            self._release()
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def commit(self, _: object) -> None:
        self._release()
        self.inner.close()
