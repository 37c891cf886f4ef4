"""`zstd::URI`: values stored as Zstandard frames (`pip install "anystore-core[zstd]"`).

Every frame carries the value's size in its header (streamed writes are spooled first so the
size is known), so `info().size` is the size you put, read from the first bytes. What lands on the
medium is a plain `.zst` frame (`zstd -d` reads it). A read handle seeks by decompressing:
forward from where it is, backward from the start.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from anystore import compression
from anystore.backend import Backend, BackendStat
from anystore.exceptions import NotSupported, SerializationError
from anystore.io import CHUNK_SIZE, SPOOL_MAX_MEMORY, WriteHandle
from anystore.layer import ValueLayer

# zstd's own default level: fast, and already smaller than gzip's level 6.
LEVEL = 3
# The longest frame header (magic, descriptor, window, dictionary id, content size).
FRAME_HEADER_MAX = 18


_HINT = "it was written without the zstd layer: read it through the store without 'zstd::'"


@contextmanager
def _decoding(key: str, zstd: Any) -> Iterator[None]:
    try:
        yield
    except zstd.ZstdError as error:
        raise SerializationError(
            f"The value at {key!r} is not Zstandard data ({error}); it was written without the "
            "zstd layer: read it through the store without 'zstd::'"
        ) from error


class ZstdLayer(ValueLayer):
    """Compresses values with Zstandard on the way in, decompresses them on the way out."""

    def __init__(self, inner: Backend) -> None:
        try:
            import zstandard
        except ImportError:
            raise NotSupported(
                'The zstd:: layer needs the zstandard package: pip install "anystore-core[zstd]"'
            ) from None
        super().__init__(inner)
        self.zstd = zstandard

    def encode(self, key: str, data: bytes) -> bytes:
        return bytes(self.zstd.ZstdCompressor(level=LEVEL).compress(data))

    def decode(self, key: str, data: bytes) -> bytes:
        parts = []
        with _decoding(key, self.zstd):
            while True:  # frame after frame, as `zstd -d` reads them
                frame = self.zstd.ZstdDecompressor().decompressobj()
                parts.append(frame.decompress(data))
                if not frame.eof:
                    raise self.zstd.ZstdError("the data ends inside a frame (cut short?)")
                data = frame.unused_data
                if not data:
                    return b"".join(parts)

    def _size(self, handle: IO[bytes], key: str) -> int:
        """The value's size from its frame header (counted by decompressing if it has none)."""
        with _decoding(key, self.zstd):
            size = int(self.zstd.frame_content_size(handle.read(FRAME_HEADER_MAX)))
        handle.seek(0)
        if size >= 0:
            return size
        reader = self.zstd.ZstdDecompressor().stream_reader(handle, closefd=False)
        with _decoding(key, self.zstd):
            while chunk := reader.read(CHUNK_SIZE):
                size = max(size, 0) + len(chunk)
        handle.seek(0)
        return max(size, 0)

    def stat(self, key: str) -> BackendStat | None:
        stat = self.inner.stat(key)
        handle = None if stat is None else self.inner.open_read(key)
        if stat is None or handle is None:
            return None
        with handle:
            return dataclasses.replace(stat, size=self._size(handle, key))

    def open_read(self, key: str) -> IO[bytes] | None:
        raw = self.inner.open_read(key)
        if raw is None:
            return None
        return compression.reader(raw, "zst", key, self._size(raw, key), hint=_HINT)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)

        def commit(target: IO[bytes]) -> None:
            # Spooled first, so that the frame header can carry the size.
            size = target.tell()
            target.seek(0)
            inner = self.inner.open_write(key, ttl)
            with inner:
                compressor = self.zstd.ZstdCompressor(level=LEVEL)
                compressor.copy_stream(target, inner, size=size, write_size=CHUNK_SIZE)
            target.close()

        return WriteHandle(spool, commit, lambda target: target.close())
