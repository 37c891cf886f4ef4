"""`memory://[name][/prefix]`: a named, process-wide, thread-safe namespace of bytes.

Every store opened on the same name sees the same data (so two `get_store("memory://cache")`
calls share it); `memory://` alone is the namespace named "". This is not fsspec's global memory
filesystem: nothing here is visible to fsspec and vice versa.

Values sit in one flat dict (a get is one lookup). A folder index beside it (folder -> its keys
and subfolders) lets a listing visit only the folders below its prefix, copying one folder's names
at a time, instead of copying every key of the namespace per call. The index is built by the first
listing that needs it (one with a prefix, or on a child store) and kept from then on: until then a
write or delete of a key costs only the dict. Building it holds the namespace's lock for about
0.45 s per million keys; listing everything copies the key list once and needs no index.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from itertools import chain
from typing import IO

from anystore.backend import Backend, BackendStat
from anystore.io import WriteHandle
from anystore.keys import normalize_prefix

# An entry is a tuple (data, created, updated, expires): a tuple of bytes and floats is not tracked
# by the garbage collector, so a million keys add nothing to a collection's work.
_Entry = tuple[bytes, float, float, "float | None"]

# `anystore.backend.utc` without its call frame: `info()` makes up to three of these.
_fromtimestamp, _UTC = datetime.fromtimestamp, timezone.utc


class _Folder:
    __slots__ = ("keys", "subfolders")

    def __init__(self) -> None:
        self.keys: set[str] = set()  # full keys of the values directly in this folder
        self.subfolders: set[str] = set()  # full paths of the folders directly in it


class _Namespace:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.lock = threading.Lock()
        # Folder path ("" for the root) -> _Folder; changed only under `lock`, with `entries`.
        # None until a listing needs it (`index`).
        self.folders: dict[str, _Folder] | None = None
        # Lock name -> (token, expiry); apart from the entries so listings never see them.
        self.locks: dict[str, tuple[str, float]] = {}
        # Set by the first write with a TTL: until then no entry can be expired, and listings
        # skip the per-key expiry check (most of their time).
        self.expiring = False

    def index(self) -> dict[str, _Folder]:
        """The folder index, built from the entries the first time (under `lock`)."""
        folders = self.folders
        if folders is None:
            folders = self.folders = {"": _Folder()}
            for full in self.entries:
                self.add(folders, full)
        return folders

    def add(self, folders: dict[str, _Folder], full: str) -> None:
        """Index a new key (under `lock`)."""
        folder = full.rpartition("/")[0]
        node = folders.get(folder)
        if node is None:
            node = self.make(folders, folder)
        node.keys.add(full)

    def make(self, folders: dict[str, _Folder], folder: str) -> _Folder:
        """The index node of a new folder, linked into its parents (under `lock`)."""
        node = folders[folder] = _Folder()
        parent, _, _ = folder.rpartition("/")
        above = folders.get(parent)
        if above is None:
            above = self.make(folders, parent)
        above.subfolders.add(folder)
        return node

    def remove(self, full: str) -> _Entry | None:
        """Remove a key and its index entry, pruning emptied folders (under `lock`)."""
        entry = self.entries.pop(full, None)
        folders = self.folders
        if entry is None or folders is None:
            return entry
        folder = full.rpartition("/")[0]
        node = folders[folder]
        node.keys.discard(full)
        while not node.keys and folder and not node.subfolders:
            del folders[folder]
            parent = folder.rpartition("/")[0]
            node = folders[parent]
            node.subfolders.discard(folder)
            folder = parent
        return entry


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
        full = self._prefix + key
        entry = self._entries.get(full)
        if entry is not None and entry[3] is not None and entry[3] <= time.time():
            with self._lock:
                # Only drop it if nobody replaced it meanwhile.
                if self._entries.get(full) is entry:
                    self._namespace.remove(full)
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
        entries = self._entries
        namespace = self._namespace
        with self._lock:
            old = entries.get(full)
            if old is None:
                folders = namespace.folders
                if folders is not None:  # a new key joins the index, once there is one
                    namespace.add(folders, full)
                created = now
            elif old[3] is not None and old[3] <= now:
                created = now  # an expired entry counts as gone
            else:
                created = old[1]  # an overwrite keeps created_at
            if ttl:
                namespace.expiring = True
            entries[full] = (data, created, now, now + ttl if ttl else None)

    def delete(self, key: str) -> None:
        with self._lock:
            self._namespace.remove(self._prefix + key)

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._namespace.remove(self._prefix + key)
        if entry is None or (entry[3] is not None and entry[3] <= time.time()):
            return None
        return entry[0]

    def delete_many(self, keys: Iterable[str]) -> None:
        remove, prefix = self._namespace.remove, self._prefix
        with self._lock:
            for key in keys:
                remove(prefix + key)

    def stat(self, key: str) -> BackendStat | None:
        entry = self._live(key)
        if entry is None:
            return None
        data, created, updated, expires = entry
        updated_at = _fromtimestamp(updated, _UTC)
        # A value never overwritten has one time: one datetime instead of two.
        return BackendStat(
            len(data),
            updated_at if created == updated else _fromtimestamp(created, _UTC),
            updated_at,
            None,
            _fromtimestamp(expires, _UTC) if expires is not None else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        if not prefix and not self._prefix:
            # Everything: one copy of the key list (no index needed), taken lazily at the first
            # next() and then iterated in C, without a generator frame per key.
            return chain.from_iterable(map(self._everything, (None,)))
        return self._walk(prefix)

    def _everything(self, _: None) -> Iterator[str]:
        with self._lock:
            keys = list(self._entries)
        return self._live_keys(keys, 0) if self._namespace.expiring else iter(keys)

    def _live_keys(self, keys: list[str], start: int) -> Iterator[str]:
        entries, now = self._entries, time.time()
        for key in keys:
            entry = entries.get(key)
            if entry is not None and (entry[3] is None or entry[3] > now):
                yield key[start:]

    def _walk(self, prefix: str) -> Iterator[str]:
        entries = self._entries
        with self._lock:
            folders = self._namespace.index()
        start = len(self._prefix)
        if prefix:
            top = self._prefix + prefix
            entry = entries.get(top)
            if entry is not None and (entry[3] is None or entry[3] > time.time()):
                yield prefix
        else:
            top = self._prefix[:-1]
        # One folder at a time: its names are copied under the lock, so writers are never
        # blocked by a slow consumer, and a key that lives throughout is listed exactly once (a
        # key deleted while its folder is being yielded may still be, as on other media).
        pending = [top]
        while pending:
            with self._lock:
                node = folders.get(pending.pop())
                if node is None:
                    continue
                keys = list(node.keys)
                pending.extend(node.subfolders)
            if self._namespace.expiring:
                yield from self._live_keys(keys, start)
            elif start:
                for key in keys:
                    yield key[start:]
            else:
                yield from keys

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        # A BytesIO, not the default's temporary file (which moves to disk past its size):
        # the value ends in memory anyway, and getvalue() hands over its buffer without a copy.
        def commit(buffer: IO[bytes]) -> None:
            self.write(key, buffer.getvalue(), ttl)  # type: ignore[attr-defined]
            buffer.close()

        return WriteHandle(io.BytesIO(), commit, lambda buffer: buffer.close())

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
