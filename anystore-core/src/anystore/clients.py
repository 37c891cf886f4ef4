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
from typing import Generic, TypeVar

from anystore.exceptions import AnystoreError

T = TypeVar("T")


class ClientCache(Generic[T]):
    """Thread-safe clients by identity (everything that makes two connections different).

    `get` shares a client for the life of the process (a pool that is never closed); `acquire`
    and `release` count the users of one that is closed when the last of them is done.
    """

    def __init__(self) -> None:
        # Re-entrant: a backend's finalizer (weakref.finalize -> release) can be run by garbage
        # collection in the middle of `acquire` on the same thread, which then already holds the
        # lock; a plain Lock would wait for itself forever. Each step leaves the maps consistent,
        # so a nested release is safe.
        self._lock = threading.RLock()
        self._clients: dict[Hashable, T] = {}
        self._users: dict[Hashable, int] = {}
        self._pid = os.getpid()

    def _client(self, identity: Hashable, make: Callable[[], T]) -> T:
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._clients, self._users, self._pid = {}, {}, os.getpid()
        client = self._clients.get(identity)
        if client is None:
            client = self._clients[identity] = make()
        return client

    def get(self, identity: Hashable, make: Callable[[], T]) -> T:
        """The client for `identity`, made by `make()` the first time (once per process)."""
        with self._lock:
            return self._client(identity, make)

    def acquire(self, identity: Hashable, make: Callable[[], T]) -> T:
        """Like `get`, counting one more user of the client: give it back with `release`."""
        with self._lock:
            client = self._client(identity, make)
            self._users[identity] = self._users.get(identity, 0) + 1
            return client

    def release(self, identity: Hashable, client: T) -> bool:
        """One user of `client` less; True when it was the last and the cache forgot it.

        The caller closes the client on True. False too for a client this cache does not hold
        (made before a fork, or forgotten): closing it would close its sockets for their owner.
        """
        with self._lock:
            if self._pid != os.getpid() or self._clients.get(identity) is not client:
                return False
            self._users[identity] = left = self._users.get(identity, 1) - 1
            if left > 0:
                return False
            del self._clients[identity], self._users[identity]
            return True

    def pop(self, identity: Hashable) -> T | None:
        """Forget the client for `identity` and return it (to close it), if there was one."""
        with self._lock:
            self._users.pop(identity, None)
            return self._clients.pop(identity, None)

    def __len__(self) -> int:
        return len(self._clients)


class Translated:
    """A reusable context manager that maps a client's exceptions to anystore's.

    `translate(error)` returns the `AnystoreError` to raise instead, or None to let the error
    through unchanged. Errors that already are anystore's pass as they are. The replacement is
    chained to the original (`__cause__`); `chain=False` hides it, for a client whose messages
    may carry credentials.
    """

    def __init__(
        self, translate: Callable[[Exception], AnystoreError | None], *, chain: bool = True
    ) -> None:
        self.translate = translate
        self.chain = chain

    def __enter__(self) -> Translated:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is None or isinstance(error, AnystoreError) or not isinstance(error, Exception):
            return
        replacement = self.translate(error)
        if replacement is not None:
            raise replacement from (error if self.chain else None)
