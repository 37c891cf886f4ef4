"""A deadline per PostgreSQL round trip, so that a stalled server cannot block a caller forever.

psycopg has no client-side read timeout, and neither TCP keepalives nor `tcp_user_timeout` see a
server process that is stopped (SIGSTOP) or wedged: its kernel still acknowledges every packet.
So each operation arms a deadline for its connection's socket; one daemon thread shuts down the
socket of a connection whose deadline passes, which makes the blocked call fail at once with a
"server closed the connection" error (mapped to `BackendUnavailable`). MySQL/MariaDB need none of
this: PyMySQL has socket-level `read_timeout`/`write_timeout`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Condition()
# token -> (deadline on the monotonic clock, socket fd)
_deadlines: dict[int, tuple[float, int]] = {}
_fired: set[int] = set()
_thread: threading.Thread | None = None


def _after_fork() -> None:
    # The thread does not survive a fork, and the lock may have been held by it: start afresh.
    global _lock, _thread
    _lock = threading.Condition()
    _thread = None
    _deadlines.clear()
    _fired.clear()


os.register_at_fork(after_in_child=_after_fork)


def _run() -> None:
    with _lock:
        while True:
            if not _deadlines:
                _lock.wait()
                continue
            now = time.monotonic()
            token, (deadline, fd) = min(_deadlines.items(), key=lambda item: item[1][0])
            if deadline > now:
                _lock.wait(deadline - now)
                continue
            del _deadlines[token]
            _fired.add(token)
            _shut(fd)


def _shut(fd: int) -> None:
    try:
        # A duplicate of the descriptor: shutting it down ends the connection for every user of
        # the socket, and closing the duplicate leaves the original descriptor to its owner.
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


class Stalled(Exception):
    """The server did not answer within the deadline; the connection was shut down."""


class Deadline:
    """A running deadline; `renew()` starts its time again (before each chunk of a long write)."""

    def __init__(self, token: int, fd: int | None, seconds: float) -> None:
        self.token = token
        self.fd = fd
        self.seconds = seconds

    def renew(self) -> None:
        if self.fd is not None:
            with _lock:
                if self.token in _deadlines:
                    _deadlines[self.token] = (time.monotonic() + self.seconds, self.fd)


@contextmanager
def deadline(fd: int | None, seconds: float) -> Iterator[Deadline]:
    """Shut down socket `fd` if the block is still running `seconds` after its (re)start.

    An error raised in the block after the deadline fired becomes `Stalled`. `fd` None: no
    deadline (a driver with its own socket timeouts, or SQLite).
    """
    global _thread
    watch = Deadline(id(object()), fd, seconds)
    if fd is None:
        yield watch
        return
    token = watch.token = id(watch)
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="anystore-sql-watchdog", daemon=True)
            _thread.start()
        _deadlines[token] = (time.monotonic() + seconds, fd)
        _lock.notify()
    try:
        yield watch
    except Exception as error:
        if _done(token):
            raise Stalled(f"no answer within {seconds:g} s") from error
        raise
    finally:
        _done(token)  # idempotent; also on GeneratorExit and KeyboardInterrupt


def _done(token: int) -> bool:
    """Disarm `token`; tell whether it had fired."""
    with _lock:
        _deadlines.pop(token, None)
        if token in _fired:
            _fired.discard(token)
            return True
        return False
