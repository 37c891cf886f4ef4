"""`Layer`: a Backend that wraps another one (middleware), chosen in a URI as `name::inner-uri`.

`gzip::redis://host/0/x` is the Redis backend wrapped in the gzip layer; layers stack, outermost
first (`readonly::gzip::s3://bucket`). A layer forwards every call to `self.inner` and overrides
only what it changes: a compressing layer transforms bytes in `read`/`write` and the handles of
`open_read`/`open_write`, so streams, `copy` and `stream` go through it too. Its capabilities are
the inner backend's, per instance, unless the layer changes them (`readonly` sets `read_only`).

A third-party layer registers itself with the `anystore_register_layers` hook (see hookspecs).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

from anystore.backend import Backend, BackendStat
from anystore.io import WriteHandle

# The capabilities a layer takes over from the backend it wraps (instance attributes, so that a
# layer can change one honestly without touching the inner backend's class).
CAPABILITIES = (
    "supports_ttl",
    "read_only",
    "atomic_pop",
    "keeps_created_at",
    "supports_locks",
    "max_key_bytes",
    "max_segment_bytes",
)


class Layer(Backend):
    """Forwards every Backend call to `inner`; subclass it and override what the layer changes."""

    def __init__(self, inner: Backend) -> None:
        # A minimal backend may skip Backend.__init__ and have no `uri` of its own.
        super().__init__(getattr(inner, "uri", ""))
        self.inner = inner
        for name in CAPABILITIES:
            setattr(self, name, getattr(inner, name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.inner!r}>"

    # -- primitives ----------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        return self.inner.read(key)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        self.inner.write(key, data, ttl)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def stat(self, key: str) -> BackendStat | None:
        return self.inner.stat(key)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)

    # -- derived -------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def pop(self, key: str) -> bytes | None:
        return self.inner.pop(key)

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        return self.inner.read_many(keys)

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        self.inner.write_many(items, ttl)

    def delete_many(self, keys: Iterable[str]) -> None:
        self.inner.delete_many(keys)

    def open_read(self, key: str) -> IO[bytes] | None:
        return self.inner.open_read(key)

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        return self.inner.open_write(key, ttl)

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        return self.inner.acquire_lock(name, token, ttl)

    def release_lock(self, name: str, token: str) -> bool:
        return self.inner.release_lock(name, token)

    def cleanup(self, older_than: float) -> int:
        return self.inner.cleanup(older_than)

    def close(self) -> None:
        self.inner.close()


class ValueLayer(Layer):
    """A layer that transforms whole values: implement `encode`/`decode`, and the stream forms.

    `read`, `write`, `pop`, `read_many` and `write_many` apply `encode`/`decode`; `stat` and
    the handles are left to the subclass, which knows how sizes and streams look on the medium.
    """

    def encode(self, key: str, data: bytes) -> bytes:
        """The bytes to store for `data`."""
        raise NotImplementedError

    def decode(self, key: str, data: bytes) -> bytes:
        """The value for stored bytes; raise `SerializationError` when they are not ours."""
        raise NotImplementedError

    def read(self, key: str) -> bytes | None:
        data = self.inner.read(key)
        return None if data is None else self.decode(key, data)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        self.inner.write(key, self.encode(key, data), ttl)

    def pop(self, key: str) -> bytes | None:
        data = self.inner.pop(key)
        return None if data is None else self.decode(key, data)

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        for key, data in self.inner.read_many(keys):
            yield key, self.decode(key, data)

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        self.inner.write_many([(key, self.encode(key, data)) for key, data in items], ttl)
