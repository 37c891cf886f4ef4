"""`gzip::URI`: values stored gzip-compressed (stdlib), whole values and streams alike.

What lands on the medium is a plain gzip file (`gunzip` reads it). `info().size` is the size of
the value as you put it, read from gzip's trailer (exact below 4 GiB, which the trailer counts
modulo). A read handle seeks by decompressing: forward from where it is, backward from the start.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from anystore import compression
from anystore.backend import BackendStat
from anystore.exceptions import SerializationError
from anystore.io import CHUNK_SIZE, WriteHandle
from anystore.layer import ValueLayer

# gzip.compress level: 6 is zlib's own default, a good balance of speed and size for caches.
LEVEL = compression.GZIP_LEVEL
_NOT_GZIP = (gzip.BadGzipFile, EOFError, zlib.error)


def _not_ours(key: str, error: Exception) -> SerializationError:
    return SerializationError(
        f"The value at {key!r} is not gzip data ({error}); it was written without the gzip "
        "layer: read it through the store without 'gzip::'"
    )


@contextmanager
def _decoding(key: str) -> Iterator[None]:
    try:
        yield
    except _NOT_GZIP as error:
        raise _not_ours(key, error) from error


def _original_size(handle: IO[bytes], key: str) -> int:
    """The uncompressed size from the gzip trailer, leaving `handle`'s position as it was."""
    position = handle.tell()
    try:
        handle.seek(-4, io.SEEK_END)
    except (OSError, ValueError) as error:  # shorter than a trailer
        raise _not_ours(key, error) from error
    trailer = handle.read(4)
    handle.seek(position)
    return int.from_bytes(trailer, "little")


class GzipReadHandle(gzip.GzipFile):
    """A gzip reader over the inner handle that also closes it and seeks from the end."""

    def __init__(self, raw: IO[bytes], key: str) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw
        self._key = key

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset, whence = _original_size(self._raw, self._key) + offset, io.SEEK_SET
        elif whence == io.SEEK_CUR:
            # GzipFile's tell() is seek(0, SEEK_CUR): ask the parent, not this override.
            offset, whence = super().seek(0, io.SEEK_CUR) + offset, io.SEEK_SET
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        with _decoding(self._key):
            return super().seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        with _decoding(self._key):
            return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        with _decoding(self._key):
            return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        with _decoding(self._key):
            return super().readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        with _decoding(self._key):
            return super().readline(size)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


class GzipLayer(ValueLayer):
    """Compresses values on the way in and decompresses them on the way out."""

    def encode(self, key: str, data: bytes) -> bytes:
        return gzip.compress(data, compresslevel=LEVEL, mtime=0)

    def decode(self, key: str, data: bytes) -> bytes:
        with _decoding(key):
            return gzip.decompress(data)

    def stat(self, key: str) -> BackendStat | None:
        stat = self.inner.stat(key)
        if stat is None:
            return None
        handle = self.inner.open_read(key)
        if handle is None:  # deleted since
            return None
        with handle:
            if handle.seekable():
                size = _original_size(handle, key)
            else:  # a backend without ranged reads: count while decompressing
                size = 0
                with GzipReadHandle(handle, key) as values:
                    while chunk := values.read(CHUNK_SIZE):
                        size += len(chunk)
        return dataclasses.replace(stat, size=size)

    def open_read(self, key: str) -> IO[bytes] | None:
        raw = self.inner.open_read(key)
        return None if raw is None else GzipReadHandle(raw, key)  # type: ignore[return-value]

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        # The shared gz writer is this layer's format: GzipFile, level 6, mtime 0.
        return compression.writer(self.inner.open_write(key, ttl), "gz")
