"""`zstd::URI`: values stored as Zstandard frames (`pip install "anystore-core[zstd]"`).

Every frame carries the value's size in its header (streamed writes are spooled first so the
size is known), so `info().size` is the size you put, read from the first bytes. What lands on the
medium is a plain `.zst` frame (`zstd -d` reads it). A read handle seeks by decompressing:
forward from where it is, backward from the start.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from anystore.backend import Backend, BackendStat
from anystore.exceptions import NotSupported, SerializationError
from anystore.io import CHUNK_SIZE, SPOOL_MAX_MEMORY, WriteHandle
from anystore.layer import ValueLayer

# zstd's own default level: fast, and already smaller than gzip's level 6.
LEVEL = 3
# The longest frame header (magic, descriptor, window, dictionary id, content size).
FRAME_HEADER_MAX = 18


@contextmanager
def _decoding(key: str, zstd: Any) -> Iterator[None]:
    try:
        yield
    except zstd.ZstdError as error:
        raise SerializationError(
            f"The value at {key!r} is not Zstandard data ({error}); it was written without the "
            "zstd layer: read it through the store without 'zstd::'"
        ) from error


class ZstdReader(io.RawIOBase):
    """Decompresses the inner handle as it is read; a backward seek starts again at byte 0."""

    def __init__(self, raw: IO[bytes], key: str, size: int, zstd: Any) -> None:
        super().__init__()
        self._raw, self._key, self._size, self._zstd = raw, key, size, zstd
        self._open()

    def _open(self) -> None:
        self._raw.seek(0)
        self._stream = self._zstd.ZstdDecompressor().stream_reader(self._raw, closefd=False)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        with _decoding(self._key, self._zstd):
            count = int(self._stream.readinto(buffer))
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target < self._position:
            self._open()
        while self._position < target:
            skipped = self.read(min(CHUNK_SIZE, target - self._position))
            if not skipped:  # past the end, as files allow
                self._position = target
        return self._position

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


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
        with _decoding(key, self.zstd):
            return bytes(self.zstd.ZstdDecompressor().decompressobj().decompress(data))

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
        reader = ZstdReader(raw, key, self._size(raw, key), self.zstd)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

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
