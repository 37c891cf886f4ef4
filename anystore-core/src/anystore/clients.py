"""Helpers for plugin authors: one client per connection identity, and one error seam.

`ClientCache` keeps one client (a pool, an engine, an S3 client) per connection identity, so that
a thousand stores on one server share one pool, and a forked child never uses a client created in
its parent (it gets fresh ones). `Translated` is the one place a backend turns its client's errors
into `anystore.exceptions`: wrap client calls in `with self.errors:`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Generic, TypeVar

from anystore.exceptions import AnystoreError

T = TypeVar("T")


class ClientCache(Generic[T]):
    """Thread-safe clients by identity (everything that makes two connections different)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Hashable, T] = {}
        self._pid = os.getpid()

    def get(self, identity: Hashable, make: Callable[[], T]) -> T:
        """The client for `identity`, made by `make()` the first time (once per process)."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
                self._clients, self._pid = {}, os.getpid()
            client = self._clients.get(identity)
            if client is None:
                client = self._clients[identity] = make()
            return client

    def pop(self, identity: Hashable) -> T | None:
        """Forget the client for `identity` and return it (to close it), if there was one."""
        with self._lock:
            return self._clients.pop(identity, None)

    def __len__(self) -> int:
        return len(self._clients)


class Translated:
    """A reusable context manager that maps a client's exceptions to anystore's.

    `translate(error)` returns the `AnystoreError` to raise instead (chained to the original),
    or None to let the error through unchanged. Errors that already are anystore's pass as they
    are.
    """

    def __init__(self, translate: Callable[[Exception], AnystoreError | None]) -> None:
        self.translate = translate

    def __enter__(self) -> Translated:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or isinstance(error, AnystoreError) or not isinstance(error, Exception):
            return
        replacement = self.translate(error)
        if replacement is not None:
            raise replacement from error
