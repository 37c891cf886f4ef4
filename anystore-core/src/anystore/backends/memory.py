"""`memory://[name][/prefix]`: a named, process-wide, thread-safe namespace of bytes.

Every store opened on the same name sees the same data (so two `get_store("memory://cache")`
calls share it); `memory://` alone is the namespace named "". This is not fsspec's global memory
filesystem: nothing here is visible to fsspec and vice versa.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from anystore.backend import Backend, BackendStat, utc
from anystore.keys import normalize_prefix

# An entry is a tuple (data, created, updated, expires): a tuple of bytes and floats is not tracked
# by the garbage collector, so a million keys add nothing to a collection's work.
_Entry = tuple[bytes, float, float, "float | None"]


class _Namespace:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.lock = threading.Lock()
        # Lock name -> (token, expiry); apart from the entries so listings never see them.
        self.locks: dict[str, tuple[str, float]] = {}


_namespaces: dict[str, _Namespace] = {}
_namespaces_lock = threading.Lock()


def _namespace(name: str) -> _Namespace:
    with _namespaces_lock:
        namespace = _namespaces.get(name)
        if namespace is None:
            namespace = _namespaces[name] = _Namespace()
        return namespace


class MemoryBackend(Backend):
    """Keeps values in a dict shared by every store on the same namespace name."""

    supports_ttl = True  # the medium expires keys itself
    atomic_pop = True
    keeps_created_at = True
    supports_locks = True

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        rest = uri.partition("://")[2]
        name, _, path = rest.partition("/")
        self._namespace = _namespace(name)
        self._entries = self._namespace.entries
        self._lock = self._namespace.lock
        prefix = normalize_prefix(path)
        self._prefix = prefix + "/" if prefix else ""

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(self._prefix + key)
        if entry is not None and entry[3] is not None and entry[3] <= time.time():
            with self._lock:
                # Only drop it if nobody replaced it meanwhile.
                if self._entries.get(self._prefix + key) is entry:
                    del self._entries[self._prefix + key]
            return None
        return entry

    def read(self, key: str) -> bytes | None:
        entry = self._entries.get(self._prefix + key)
        if entry is None or (entry[3] is not None and entry[3] <= time.time()):
            return None
        return entry[0]

    def exists(self, key: str) -> bool:
        return self._live(key) is not None

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        now = time.time()
        full = self._prefix + key
        with self._lock:
            old = self._entries.get(full)
            # An overwrite keeps created_at; an expired entry counts as gone.
            created = now if old is None or (old[3] is not None and old[3] <= now) else old[1]
            self._entries[full] = (data, created, now, now + ttl if ttl else None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(self._prefix + key, None)

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.pop(self._prefix + key, None)
        if entry is None or (entry[3] is not None and entry[3] <= time.time()):
            return None
        return entry[0]

    def delete_many(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(self._prefix + key, None)

    def stat(self, key: str) -> BackendStat | None:
        entry = self._live(key)
        if entry is None:
            return None
        data, created, updated, expires = entry
        return BackendStat(
            size=len(data),
            created_at=utc(created),
            updated_at=utc(updated),
            expires_at=utc(expires) if expires is not None else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self._prefix + prefix
        # Snapshot the key list so that writers are never blocked by a slow consumer.
        with self._lock:
            keys = list(self._entries)
        now = time.time()
        start = len(self._prefix)
        for key in keys:
            if prefix and not (key == base or key.startswith(base + "/")):
                continue
            if not key.startswith(self._prefix):
                continue
            entry = self._entries.get(key)
            if entry is None or (entry[3] is not None and entry[3] <= now):
                continue
            yield key[start:]

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        locks = self._namespace.locks
        now = time.time()
        with self._lock:
            held = locks.get(self._prefix + name)
            if held is not None and held[1] > now:
                return False
            locks[self._prefix + name] = (token, now + ttl)
            return True

    def release_lock(self, name: str, token: str) -> bool:
        locks = self._namespace.locks
        with self._lock:
            held = locks.get(self._prefix + name)
            if held is None or held[0] != token:
                return False
            del locks[self._prefix + name]
            # Released after its expiry: nobody took it meanwhile, but the holder ran unprotected.
            return held[1] > time.time()
