"""`Lock`: a named, expiring lock kept in a store, shared by every process that opens the store.

    with store.lock("reports/2026", ttl=60, timeout=10):
        ...  # only one holder at a time, across threads, processes and machines

A lock is a name the backend creates atomically (exclusive create on files, SET NX on Redis, an
INSERT on SQL, a conditional PUT on S3) holding a random token, with an expiry so that a crashed
holder blocks the others for at most `ttl` seconds. Releasing deletes the name only if it still
holds the token. Locks live apart from the store's values and never show up in listings.
"""

from __future__ import annotations

import random
import secrets
import time
from types import TracebackType
from typing import TYPE_CHECKING

from anystore.exceptions import InvalidOption, LockError, NotSupported
from anystore.options import check_ttl

if TYPE_CHECKING:
    from anystore.store import Store

# Waiting polls the backend: first quickly (a short critical section is the common case), then
# backing off so that many waiters do not hammer a server.
FIRST_POLL = 0.01
MAX_POLL = 0.5


class Lock:
    """A lock on one name in one store; get one from `Store.lock()`.

    Not re-entrant: a second `acquire` by the same holder waits like anybody else.
    """

    def __init__(
        self, store: Store, key: str, *, ttl: float = 60.0, timeout: float | None = None
    ) -> None:
        if ttl is None:
            raise InvalidOption("A lock needs a ttl (seconds), so that a crashed holder lets go")
        check_ttl(ttl)
        if timeout is not None and timeout < 0:
            raise InvalidOption(f"Invalid lock timeout {timeout!r}: use None (wait) or >= 0")
        if not store.backend.supports_locks:
            raise NotSupported(
                f"The {type(store.backend).__name__} backend of {store.uri} cannot create a key "
                "atomically, so it cannot lock across processes; keep locks in a store that can "
                "(local files, memory, Redis, SQL, S3)."
            )
        self.store = store
        self.key = key
        self.ttl = ttl
        self.timeout = timeout
        self._token: str | None = None
        self._acquired_at = 0.0

    def __repr__(self) -> str:
        state = "held" if self.held else "free"
        return f"<Lock {self.key!r} on {self.store.uri} ({state})>"

    @property
    def held(self) -> bool:
        """True between a successful `acquire` and `release` (even if the ttl has passed)."""
        return self._token is not None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock, waiting up to `timeout` seconds (default: the lock's own; None: wait).

        Return False if `blocking=False` and someone else holds it. Raises `LockError` when the
        timeout passes, and `LockError` if this Lock object already holds it.
        """
        if self._token is not None:
            raise LockError(f"Lock {self.key!r} on {self.store.uri} is already held by this Lock")
        if timeout is None:
            timeout = self.timeout
        token = secrets.token_hex(16)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = FIRST_POLL
        while True:
            started = time.monotonic()
            if self.store.backend.acquire_lock(self.key, token, self.ttl):
                self._token = token
                self._acquired_at = started
                return True
            if not blocking:
                return False
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise LockError(
                    f"Could not acquire lock {self.key!r} on {self.store.uri} within {timeout} s: "
                    "another holder has it (a crashed holder's lock lapses after the ttl it was "
                    "taken with). Pass a longer timeout= or wait for the holder."
                )
            # Jitter keeps waiters that started together from polling in lockstep.
            sleep = pause * random.uniform(0.5, 1.0)
            if deadline is not None:
                sleep = min(sleep, max(deadline - now, 0.0))
            time.sleep(sleep)
            pause = min(pause * 2, MAX_POLL)

    def release(self) -> None:
        """Give the lock up.

        Raises `LockError` if it is not held, or if it expired before this call (someone else may
        have held it meanwhile: give it a longer ttl).
        """
        token = self._token
        if token is None:
            raise LockError(f"Lock {self.key!r} on {self.store.uri} is not held")
        self._token = None
        if not self.store.backend.release_lock(self.key, token):
            held_for = time.monotonic() - self._acquired_at
            raise LockError(
                f"Lock {self.key!r} on {self.store.uri} expired before it was released (held "
                f"{held_for:.1f} s, ttl={self.ttl} s), so another holder may have entered "
                "meanwhile; pass a longer ttl= to store.lock()."
            )

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.release()
            return
        # Leave the body's own exception in charge; a lapsed lock matters less than it.
        try:
            self.release()
        except LockError:
            pass
