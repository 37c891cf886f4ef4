"""Locks as files, for the local backend: an exclusive create, and a compare-and-delete.

A lock file is written whole to a temp file and hard-linked to its name: `link` fails if the name
exists, so of two racing processes exactly one creates it, and nobody ever reads half a lock.
The file holds the token and the expiry. Removing a lock (release, or breaking an expired one)
happens under `flock` on the lock file itself, after checking that the name still points to the
locked file: every removal is then serialised with every other, and a new lock cannot appear
while the old one exists, so read-compare-unlink is atomic. Every name is used through the
descriptor of its checked folder (`confine.Folder`), and a lock file is never opened through a
symlink.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from anystore.backends.confine import O_NOFOLLOW, Folder
from anystore.exceptions import InvalidKey, NotSupported

try:
    import fcntl
except ImportError:  # Windows: no flock, so no safe removal; the local backend says so.
    fcntl = None  # type: ignore[assignment]

AVAILABLE = fcntl is not None


def content(key: str, token: str, ttl: float) -> bytes:
    """What a lock file holds: its key (for people looking), token and expiry."""
    return orjson.dumps({"key": key, "token": token, "expires": time.time() + ttl})


def create(folder: Folder, temp: str, name: str) -> bool:
    """Give the complete file `temp` the name `name` unless a live lock has it; drop `temp`.

    Both are names in `folder`. An expired lock in the way is removed first. Returns whether
    `name` is now ours.
    """
    try:
        for attempt in (1, 2):
            try:
                folder.link(temp, name)
                return True
            except FileExistsError:
                if attempt == 2 or not _remove_expired(folder, name):
                    return False
            except OSError as error:
                if error.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise NotSupported(
                        f"The filesystem holding {folder.path} cannot make hard links, which "
                        "local locks need for an atomic create; keep locks on another filesystem"
                    ) from error
                raise
        return False
    finally:
        try:
            folder.unlink(temp)
        except FileNotFoundError:
            pass


def remove(folder: Folder, name: str, token: str) -> bool:
    """Delete the lock `name` in `folder` if it holds `token` and has not expired; return whether
    it did. An expired lock of ours is deleted too (it is in nobody's way), but counts as lost.
    """
    with _locked(folder, name) as held:
        if held is None or held.get("token") != token:
            return False
        folder.unlink(name)
        return _expires(held) > time.time()


def break_expired(folder: Folder, name: str) -> bool:
    """Delete the lock `name` in `folder` if its holder's ttl has passed; True if this call did."""
    with _locked(folder, name) as held:
        if held is None or _expires(held) > time.time():
            return False
        folder.unlink(name)
        return True


def _remove_expired(folder: Folder, name: str) -> bool:
    """Delete the lock `name` if it has expired; True if the name is free now."""
    with _locked(folder, name) as held:
        if held is None:
            return True
        if _expires(held) > time.time():
            return False
        folder.unlink(name)
        return True


def _expires(held: dict[str, Any]) -> float:
    expires = held.get("expires")
    # A file that is not one of ours (or damaged) must not block forever: it counts as expired.
    return float(expires) if isinstance(expires, (int, float)) else 0.0


@contextmanager
def _locked(folder: Folder, name: str) -> Iterator[dict[str, Any] | None]:
    """Hold `flock` on the lock file `name` and yield its content (None if it is gone)."""
    try:
        fd = folder.open(name, os.O_RDONLY | O_NOFOLLOW)
    except FileNotFoundError:
        yield None
        return
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise InvalidKey(
            f"The lock file {folder.key(name)!r} below {folder.path} is a symlink, which no "
            "lock of anystore's is; remove it"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        opened = os.fstat(fd)
        try:
            current: os.stat_result | None = folder.lstat(name)
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
