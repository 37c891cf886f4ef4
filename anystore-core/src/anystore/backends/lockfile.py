"""Locks as files, for the local backend: an exclusive create, and a compare-and-delete.

A lock file is written whole to a temp file and hard-linked to its name: `link` fails if the name
exists, so of two racing processes exactly one creates it, and nobody ever reads half a lock.
The file holds the token and the expiry. Removing a lock (release, or breaking an expired one)
happens under `flock` on the lock file itself, after checking that the name still points to the
locked file: every removal is then serialised with every other, and a new lock cannot appear
while the old one exists, so read-compare-unlink is atomic.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from anystore.exceptions import NotSupported

try:
    import fcntl
except ImportError:  # Windows: no flock, so no safe removal; the local backend says so.
    fcntl = None  # type: ignore[assignment]

AVAILABLE = fcntl is not None


def content(key: str, token: str, ttl: float) -> bytes:
    """What a lock file holds: its key (for people looking), token and expiry."""
    return orjson.dumps({"key": key, "token": token, "expires": time.time() + ttl})


def create(temp: str, path: str) -> bool:
    """Give the complete file `temp` the name `path` unless a live lock has it; drop `temp`.

    An expired lock in the way is removed first. Returns whether `path` is now ours.
    """
    try:
        for attempt in (1, 2):
            try:
                os.link(temp, path)
                return True
            except FileExistsError:
                if attempt == 2 or not _remove_expired(path):
                    return False
            except OSError as error:
                if error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise NotSupported(
                        f"The filesystem holding {path} cannot make hard links, which local "
                        "locks need for an atomic create; keep locks on another filesystem"
                    ) from error
                raise
        return False
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def remove(path: str, token: str) -> bool:
    """Delete the lock at `path` if it holds `token` and has not expired; return whether it did.

    An expired lock of ours is deleted too (it is in nobody's way), but counts as lost.
    """
    with _locked(path) as held:
        if held is None or held.get("token") != token:
            return False
        os.unlink(path)
        return _expires(held) > time.time()


def _remove_expired(path: str) -> bool:
    """Delete the lock at `path` if it has expired; True if the name is free now."""
    with _locked(path) as held:
        if held is None:
            return True
        if _expires(held) > time.time():
            return False
        os.unlink(path)
        return True


def _expires(held: dict[str, Any]) -> float:
    expires = held.get("expires")
    # A file that is not one of ours (or damaged) must not block forever: it counts as expired.
    return float(expires) if isinstance(expires, (int, float)) else 0.0


@contextmanager
def _locked(path: str) -> Iterator[dict[str, Any] | None]:
    """Hold `flock` on the lock file at `path` and yield its content (None if it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        opened = os.fstat(fd)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
            # Removed (and maybe re-created) by someone else while this process waited.
            yield None
            return
        try:
            held = orjson.loads(os.read(fd, opened.st_size + 1))
        except orjson.JSONDecodeError:
            held = {}
        yield held if isinstance(held, dict) else {}
    finally:
        os.close(fd)
