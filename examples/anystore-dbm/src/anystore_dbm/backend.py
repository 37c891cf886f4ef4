"""`dbm:///path/to/file.db`: values in a dbm file, each behind a header with its two times."""

from __future__ import annotations

import dbm
import os
import struct
import threading
import time
from collections.abc import Iterator
from typing import cast

from anystore.backend import Backend, BackendStat, utc

# created_at and updated_at as two doubles before the value's bytes.
_TIMES = struct.Struct(">dd")


class DbmBackend(Backend):
    """One dbm file per store; a lock because dbm handles are not thread-safe."""

    keeps_created_at = True

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        path = uri.partition("://")[2]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.db = dbm.open(path, "c")
        self.lock = threading.Lock()

    def _get(self, key: str) -> bytes | None:
        with self.lock:
            return self.db.get(key.encode())

    def read(self, key: str) -> bytes | None:
        stored = self._get(key)
        return None if stored is None else stored[_TIMES.size :]

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        now = time.time()
        with self.lock:
            old = self.db.get(key.encode())
            created = _TIMES.unpack_from(old)[0] if old is not None else now
            self.db[key.encode()] = _TIMES.pack(created, now) + data

    def delete(self, key: str) -> None:
        with self.lock:
            if key.encode() in self.db:
                del self.db[key.encode()]

    def stat(self, key: str) -> BackendStat | None:
        stored = self._get(key)
        if stored is None:
            return None
        created, updated = _TIMES.unpack_from(stored)
        return BackendStat(len(stored) - _TIMES.size, utc(created), utc(updated))

    def list_keys(self, prefix: str) -> Iterator[str]:
        with self.lock:
            # keys(), not iteration: gnu dbm objects cannot be iterated. Every dbm module returns
            # keys as bytes; the stub's str | bytes covers what keys may be passed in as.
            keys = [key.decode() for key in cast("list[bytes]", self.db.keys())]
        return (key for key in keys if key.startswith(prefix))

    def close(self) -> None:
        with self.lock:
            self.db.close()
