"""Streaming a Redis string in chunks: APPEND to a temp key when writing, GETRANGE when reading.

Neither side ever holds more than one chunk (CHUNK_SIZE) of the value in memory.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from anystore.io import CHUNK_SIZE

if TYPE_CHECKING:
    from anystore_redis.backend import RedisBackend

# A streaming write's temp key expires on its own if its writer dies before closing it.
TEMP_KEY_TTL_MS = 24 * 3600 * 1000


class AppendWriter:
    """Collects writes and APPENDs them to a temp key in chunks of CHUNK_SIZE."""

    def __init__(self, backend: RedisBackend, temp: str) -> None:
        self.backend = backend
        self.temp = temp
        self.buffer = bytearray()
        self.written = 0

    def write(self, data: Any) -> int:
        self.buffer += data
        if len(self.buffer) >= CHUNK_SIZE:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self.buffer:
            return
        chunk = bytes(self.buffer)
        self.buffer.clear()
        first = self.written == 0

        def run() -> None:
            pipe = self.backend.client.pipeline(transaction=False)
            pipe.append(self.temp, chunk)
            if first:
                pipe.pexpire(self.temp, TEMP_KEY_TTL_MS)
            pipe.execute()

        self.backend._call(run)
        self.written += len(chunk)


class RangeReader(io.RawIOBase):
    """Reads a Redis string with GETRANGE, one chunk at a time."""

    def __init__(self, backend: RedisBackend, full: str) -> None:
        self.backend = backend
        self.full = full
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        if size == 0:
            return 0
        start, end = self.position, self.position + size - 1
        data = self.backend._call(lambda: self.backend.client.getrange(self.full, start, end))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
