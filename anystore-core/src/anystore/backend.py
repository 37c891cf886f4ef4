"""`Backend`: the small class a plugin writes to move bytes to and from a medium.

A backend implements five primitives (`read`, `write`, `delete`, `stat`, `list_keys`) and may
override the derived methods below them to go faster (batch calls, a native atomic `pop`, streaming
handles). `Store` does everything else (keys, serialization, options, filters) the same way for
every backend, so a backend never parses values and only ever sees normalised, store-relative keys.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO

from anystore.io import WriteHandle, spooled_write_handle


def utc(timestamp: float) -> datetime:
    """A timezone-aware UTC datetime from seconds since the epoch (what `BackendStat` holds)."""
    return datetime.fromtimestamp(timestamp, timezone.utc)


# Slotted, not frozen: a frozen dataclass sets each field through object.__setattr__, which made
# building one (once per info/exists call on most backends) cost 0.56 us instead of 0.13.
@dataclass(slots=True)
class BackendStat:
    """What a backend knows about a stored value (times are timezone-aware UTC). Treat it as
    immutable: derive a changed copy with `dataclasses.replace`."""

    size: int
    created_at: datetime
    updated_at: datetime
    mimetype: str | None = None
    expires_at: datetime | None = None


class Backend:
    """Base class of every backend; subclasses set `scheme`-independent behaviour only.

    Capabilities (`supports_ttl`, `read_only`, `atomic_pop`, `keeps_created_at`,
    `supports_locks`, `max_key_bytes`, `max_segment_bytes`) are attributes with class defaults:
    a subclass declares them once, and an instance (a layer, a probe) may change its own.

    Contract for implementers:

    * Keys are normalised and relative to the store's root; map them onto the medium yourself
      (a folder, a Redis prefix, a table and prefix) and never touch anything outside the root.
    * A backend whose medium expires keys itself sets `supports_ttl = True`; its `write(...,
      ttl=)` must then make the key invisible to every read and listing once `ttl` seconds have
      passed. Otherwise `Store` emulates TTLs (`anystore.expiry`) and `write` never gets one.
    * A missing key is `None` from `read`/`stat`/`pop`/`open_read`, never an exception.
    * Map client errors to `anystore.exceptions` (`BackendUnavailable`, `ReadOnly`, ...).
    """

    supports_ttl: bool = False
    read_only: bool = False
    # True where `pop` is atomic on the medium itself. Otherwise `Store.pop` serialises pops of
    # one key within the process (threads), which is all it can promise.
    atomic_pop: bool = False
    # True where an overwrite keeps the first write's created_at; False where the medium keeps no
    # creation time, and `stat` reports created_at equal to updated_at.
    keeps_created_at: bool = False
    # True where `acquire_lock`/`release_lock` are implemented atomically (see there).
    supports_locks: bool = False
    # Key limits of the medium, in UTF-8 bytes (None: no limit). `Store` refuses a longer key, or
    # a key with a longer segment, with `InvalidKey` before the backend is touched.
    max_key_bytes: int | None = None
    max_segment_bytes: int | None = None

    @staticmethod
    def split_uri(uri: str) -> tuple[str, str]:
        """Split the URI of one value into (store URI, key), for `anystore.smart`.

        The default splits off the last path segment: `s3://bucket/a/b.json` is the key `b.json`
        of `s3://bucket/a`, a query string stays with the store (`redis://h/0/a/b?x=1`), and a
        `prefix=` query parameter holds the key instead where there is one (`sqlite:///f.db?
        prefix=a/b` is `b` in `?prefix=a`). A plain path (no `://`) is split literally. Override
        it (a staticmethod or classmethod) where a URI's path means something else. Raises
        `InvalidKey` for a URI that names no value.
        """
        from urllib.parse import quote, unquote

        from anystore.exceptions import InvalidKey

        if "://" not in uri:
            head, sep, key = uri.rpartition("/")
            if key:
                return (head or "/") if sep else ".", key
            raise InvalidKey(f"{uri!r} names a folder, not a value: add the key's name")
        scheme, _, rest = uri.partition("://")
        path, mark, query = rest.partition("?")
        params = query.split("&") if mark else []
        for index, param in enumerate(params):
            if param.startswith("prefix="):
                head, _, key = unquote(param[len("prefix=") :]).strip("/").rpartition("/")
                if not key:
                    break
                if head:
                    params[index] = "prefix=" + quote(head, safe="/")
                else:
                    del params[index]
                return f"{scheme}://{path}" + ("?" + "&".join(params) if params else ""), key
        head, sep, key = path.rpartition("/")
        if not sep or not key:
            raise InvalidKey(f"{uri!r} names a store, not a value in it: add the key's name")
        return f"{scheme}://{head}{mark}{query}", key

    def __init__(self, uri: str) -> None:
        # Subclasses take their own options as keyword arguments; an unknown one is a TypeError,
        # which get_store() reports as InvalidOption.
        self.uri = uri

    # -- primitives: every backend implements these ------------------------------------------

    def read(self, key: str) -> bytes | None:
        """Return the stored bytes, or None if the key is missing or expired."""
        raise NotImplementedError

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        """Store `data` at `key` atomically (readers see the old or the new value, never a mix)."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""
        raise NotImplementedError

    def stat(self, key: str) -> BackendStat | None:
        """Return size and times of `key`, or None if it is missing or expired."""
        raise NotImplementedError

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Yield, lazily, the live keys that start with the string `prefix` ("" for all).

        Order is unspecified. Yielding more is fine: `Store` keeps only `prefix` itself and the
        keys below it (whole segments) and hides reserved `.~anystore` names, so a medium that
        can only match string prefixes (`LIKE 'a%'`, `SCAN a*`) needs no filtering of its own.
        """
        raise NotImplementedError

    # -- derived: override to go faster ------------------------------------------------------

    def exists(self, key: str) -> bool:
        """Tell whether `key` holds a live value."""
        return self.stat(key) is not None

    def pop(self, key: str) -> bytes | None:
        """Read and delete `key`; override with a native atomic form where the medium has one."""
        data = self.read(key)
        if data is not None:
            self.delete(key)
        return data

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        """Yield `(key, data)` for the keys that exist; missing ones are left out."""
        for key in keys:
            data = self.read(key)
            if data is not None:
                yield key, data

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        """Write every `(key, data)` pair."""
        for key, data in items:
            self.write(key, data, ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key; missing ones are ignored."""
        for key in keys:
            self.delete(key)

    def open_read(self, key: str) -> IO[bytes] | None:
        """Return a seekable binary handle at the start of the value, or None if missing.

        The handle must serve one version of the value from its first byte to its last: a
        snapshot, or `ConcurrentModification` on the next read once that version is gone (never
        bytes of two versions, never a short read). The default reads the whole value; override
        to stream in bounded memory, with `anystore.io.open_ranged` where the medium reads ranges.
        """
        data = self.read(key)
        return None if data is None else io.BytesIO(data)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        """Return a handle whose bytes become the value of `key` on a clean close.

        The default spools to a temporary file and calls `write` with the whole value; override
        to stream to the medium.
        """
        return spooled_write_handle(lambda spool: self.write(key, spool.read(), ttl))

    # -- locks: only for media that can create a name atomically ---------------------------

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        """Create the lock `name` holding `token` unless a live lock of that name exists.

        Return True if this call created it. It must be atomic against every other process
        using the medium (of two racing calls exactly one wins), and the lock must count as gone
        `ttl` seconds later, so that a crashed holder cannot block others forever. `name` is a
        normalised key; keep locks apart from values (a reserved `.~anystore` name or a separate
        table) so that they never show up in listings. Set `supports_locks = True` when done;
        a backend that cannot do this atomically leaves it False and `Store.lock` says so.
        """
        raise NotImplementedError

    def release_lock(self, name: str, token: str) -> bool:
        """Remove the lock `name` if it still holds `token` (atomically: compare and delete).

        Return False when it no longer does (it expired and maybe someone else holds it now).
        """
        raise NotImplementedError

    def cleanup(self, older_than: float) -> int:
        """Remove what crashed writers left behind more than `older_than` seconds ago.

        Temp files, incomplete uploads, temp keys: never a value, never a write in progress that
        is younger than `older_than`. Return how many orphans were removed. The default has none.
        """
        return 0

    def close(self) -> None:
        """Release connections or handles; the default has none."""
