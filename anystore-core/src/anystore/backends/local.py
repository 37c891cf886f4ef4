"""Local files: plain paths, `file://path`, and the embedded default `.anystore`.

A key is a file below the root folder; its segments are folders. Writes go to a temp file in the
target's own folder and are renamed into place, so no reader ever sees half a value and a crash
leaves the old value. Listing walks only the folders below the requested prefix, lazily.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mode
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO

from anystore.backend import Backend, BackendStat
from anystore.backends import lockfile, sidecar
from anystore.exceptions import InvalidKey, ReadOnly
from anystore.io import WriteHandle
from anystore.keys import RESERVED_PREFIX, lock_name

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_OPEN_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)
# A value written with a TTL gets the owner-execute bit as a hint, so that reads look for the TTL
# sidecar only then (one fstat on the open file instead of a failed lookup on every read). A file
# that someone else made executable just costs that lookup.
TTL_HINT = stat_mode.S_IXUSR


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)


class LocalBackend(Backend):
    """Stores each value as a file below a root folder (created on first write).

    Options: `fsync=True` flushes every write to disk before it is renamed into place (durable
    across power loss, much slower).
    """

    atomic_pop = True
    supports_locks = lockfile.AVAILABLE

    def __init__(self, uri: str, fsync: bool = False) -> None:
        super().__init__(uri)
        path = uri.partition("://")[2] if "://" in uri else uri
        self.root = os.path.abspath(os.path.expanduser(path or "."))
        self.fsync = fsync

    # -- paths -------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        # Keys are normalised '/'-separated paths, so on POSIX they are already relative paths.
        if os.sep == "/":
            return f"{self.root}/{key}"
        return os.path.join(self.root, *key.split("/"))

    def _sidecar(self, path: str) -> str:
        head, name = os.path.split(path)
        return os.path.join(head, sidecar.sidecar_name(name))

    def _expiry(self, path: str) -> float | None:
        """The expiry in `path`'s TTL sidecar, or None if it has none."""
        try:
            with open(self._sidecar(path), "rb") as handle:
                return sidecar.expires_at(handle.read())
        except FileNotFoundError:
            return None

    def _expired(self, path: str, expiry: float | None = None) -> bool:
        """True if `path` has a TTL that has passed (and then removes both files).

        Pass `expiry` when it was already read, so the sidecar is not read twice."""
        if expiry is None:
            expiry = self._expiry(path)
        if expiry is None or expiry > time.time():
            return False
        self._remove(path)
        return True

    def _remove(self, path: str) -> None:
        for target in (path, self._sidecar(path)):
            try:
                os.unlink(target)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                pass

    # -- primitives --------------------------------------------------------------------------

    def _open_live(self, path: str) -> tuple[int, os.stat_result] | None:
        """Open a value file for reading: (fd, its stat), or None if missing, a folder, expired."""
        try:
            fd = os.open(path, _OPEN_READ)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        result = os.fstat(fd)
        if stat_mode.S_ISREG(result.st_mode) and not (
            result.st_mode & TTL_HINT and self._expired(path)
        ):
            return fd, result
        os.close(fd)
        return None

    def read(self, key: str) -> bytes | None:
        opened = self._open_live(self._path(key))
        if opened is None:
            return None
        fd, result = opened
        try:
            # Ask for one byte more than the size, to notice a file that grew meanwhile.
            data = os.read(fd, result.st_size + 1)
            if len(data) <= result.st_size:
                return data
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        path = self._path(key)
        temp, fd = self._open_temp(key, path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            self._publish(key, temp, path, ttl)
        except BaseException:
            _unlink_quietly(temp)
            raise

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._remove(path)
        self._prune(os.path.dirname(path))

    def _prune(self, folder: str) -> None:
        """Remove folders left empty by a delete, up to (not including) the root."""
        while len(folder) > len(self.root) and folder.startswith(self.root):
            try:
                os.rmdir(folder)
            except OSError:
                return
            folder = os.path.dirname(folder)

    def _stat_live(self, path: str) -> tuple[os.stat_result, float | None] | None:
        """(stat, expiry) of a live value file, or None if missing, a folder or expired."""
        try:
            result = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(result.st_mode):
            return None
        expires = self._expiry(path) if result.st_mode & TTL_HINT else None
        if expires is not None and self._expired(path, expires):
            return None
        return result, expires

    def stat(self, key: str) -> BackendStat | None:
        live = self._stat_live(self._path(key))
        if live is None:
            return None
        result, expires = live
        return BackendStat(
            size=result.st_size,
            # A rename replaces the file, so the filesystem cannot keep the first write's time.
            created_at=_utc(result.st_mtime),
            updated_at=_utc(result.st_mtime),
            expires_at=_utc(expires) if expires is not None else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = self._path(prefix) if prefix else self.root
        if prefix and os.path.isfile(start):
            if not self._expired(start):
                yield prefix
            return
        stack = [(start, prefix + "/" if prefix else "")]
        while stack:
            folder, key_prefix = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            files: list[str] = []
            subfolders: list[tuple[str, str]] = []
            ttl_names: set[str] | None = None
            for entry in entries:
                name = entry.name
                if name[0] == "." and name.startswith(RESERVED_PREFIX):
                    if name.startswith(sidecar.TTL_PREFIX):
                        ttl_names = ttl_names or set()
                        ttl_names.add(name[len(sidecar.TTL_PREFIX) :])
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append((entry.path, f"{key_prefix}{name}/"))
                else:
                    files.append(name)
            for name in files:
                if ttl_names and name in ttl_names and self._expired(f"{folder}/{name}"):
                    continue
                yield key_prefix + name
            stack.extend(reversed(subfolders))

    # -- derived, faster ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._stat_live(self._path(key)) is not None

    def pop(self, key: str) -> bytes | None:
        path = self._path(key)
        if self._expired(path):
            return None
        # Renaming first makes pop atomic: of two concurrent pops, only one gets the file.
        head = os.path.dirname(path)
        taken = os.path.join(head, sidecar.temp_name())
        try:
            os.rename(path, taken)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            with open(taken, "rb") as handle:
                return handle.read()
        finally:
            _unlink_quietly(taken)
            _unlink_quietly(self._sidecar(path))

    def open_read(self, key: str) -> IO[bytes] | None:
        opened = self._open_live(self._path(key))
        return None if opened is None else os.fdopen(opened[0], "rb")

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        path = self._path(key)
        temp, fd = self._open_temp(key, path)
        handle = os.fdopen(fd, "wb")

        def commit(target: IO[bytes]) -> None:
            target.flush()
            if self.fsync:
                os.fsync(target.fileno())
            target.close()
            self._publish(key, temp, path, ttl)

        def abort(target: IO[bytes]) -> None:
            target.close()
            _unlink_quietly(temp)

        return WriteHandle(handle, commit, abort)

    # -- locks -------------------------------------------------------------------------------

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        path = self._path(lock_name(name))
        temp, fd = self._open_temp(name, path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(lockfile.content(name, token, ttl))
        return lockfile.create(temp, path)

    def release_lock(self, name: str, token: str) -> bool:
        path = self._path(lock_name(name))
        released = lockfile.remove(path, token)
        self._prune(os.path.dirname(path))
        return released

    # -- writing helpers ---------------------------------------------------------------------

    def _open_temp(self, key: str, path: str) -> tuple[str, int]:
        """Create an exclusive temp file beside `path` (making folders as needed)."""
        head = os.path.dirname(path)
        temp = os.path.join(head, sidecar.temp_name())
        try:
            try:
                return temp, os.open(temp, _OPEN_NEW, 0o666)
            except FileNotFoundError:
                os.makedirs(head, exist_ok=True)
                return temp, os.open(temp, _OPEN_NEW, 0o666)
        except (NotADirectoryError, FileExistsError) as error:
            raise InvalidKey(
                f"Invalid key {key!r}: a part of it is already a value in {self.root}; on local "
                "files a key cannot be both a value and a folder of other keys"
            ) from error
        except PermissionError as error:
            raise ReadOnly(f"Cannot write {key!r} below {self.root}: {error}") from error
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                raise InvalidKey(f"Invalid key {key!r}: too long for this filesystem") from error
            raise

    def _publish(self, key: str, temp: str, path: str, ttl: float | None) -> None:
        side = self._sidecar(path)
        if ttl:
            with open(side, "wb") as handle:
                handle.write(sidecar.expiry_text(ttl))
            os.chmod(temp, os.stat(temp).st_mode | TTL_HINT)
        else:
            _unlink_quietly(side)
        try:
            os.replace(temp, path)
            return
        except IsADirectoryError as error:
            conflict = error
        try:
            # An empty folder (left by another tool) may give way to the value.
            os.rmdir(path)
            os.replace(temp, path)
        except OSError:
            raise InvalidKey(
                f"Invalid key {key!r}: it is a folder of other keys in {self.root}; on local "
                "files a key cannot be both a value and a folder"
            ) from conflict


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
