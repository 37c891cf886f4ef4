"""Local files: plain paths, `file://path`, and the embedded default `.anystore`.

A key is a file below the root folder; its segments are folders. Writes go to a temp file in the
target's own folder and are renamed into place, so no reader ever sees half a value and a crash
leaves the old value (plus the temp file, which `cleanup` removes). Every path is resolved beneath
the root (`confine`): a symlink that leads outside it is refused, unless the store was opened with
`follow_symlinks=True`. Listing walks only the folders below the requested prefix, lazily.
"""

from __future__ import annotations

import errno
import os
import random
import stat as stat_mode
import time
from collections.abc import Iterator
from functools import partial
from typing import IO

from anystore.backend import Backend, BackendStat, utc
from anystore.backends import lockfile, sidecar
from anystore.backends.confine import O_DIRECTORY, O_NOFOLLOW, Folder, Root, Vanished
from anystore.clients import Translated
from anystore.exceptions import AnystoreError, ConcurrentModification, InvalidKey, ReadOnly
from anystore.io import WriteHandle
from anystore.keys import LOCK_PREFIX, RESERVED_PREFIX, join, lock_name

_BINARY = getattr(os, "O_BINARY", 0)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | _BINARY
# O_NONBLOCK: a FIFO planted at a key must not hang the reader (it is not a value anyway).
_OPEN_READ = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | _BINARY
_OPEN_SIDECAR = os.O_RDONLY | O_NOFOLLOW | _BINARY
_WRITE_SIDECAR = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_NOFOLLOW | _BINARY
_OPEN_LISTING = os.O_RDONLY | O_DIRECTORY
# Lookups that fail like this find no value (missing, a value where a folder would be, a folder
# opened for writing, a symlink loop, a name the filesystem cannot hold).
_NO_VALUE = frozenset((errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG))
# A value written with a TTL gets the owner-execute bit as a hint, so that reads look for the TTL
# sidecar only then (one fstat on the open file instead of a failed lookup on every read). A file
# that someone else made executable just costs that lookup.
TTL_HINT = stat_mode.S_IXUSR
# How often a write makes its folder again when concurrent deletes keep pruning it.
FOLDER_ATTEMPTS = 50
# Folders whose last seen name a store remembers, to skip pruning attempts (see `_still_used`).
_NAMES_KEPT = 4096
# Room kept in the path limit for the longest reserved name beside a key (a temp file's name).
_RESERVED_NAME_BYTES = 64


def _split(key: str) -> tuple[str, str]:
    head, _, name = key.rpartition("/")
    return head, name


def _filesystem_limits(path: str) -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) of the filesystem that holds (or will hold) `path`."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    limits = []
    for name, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(int(os.pathconf(path, name)) or default)
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def _read_all(fd: int, size: int) -> bytes:
    """The bytes of an open file of `size` bytes, read on to its end."""
    # One byte more than the size: exactly the size back means the end was reached. Anything
    # else (a file that grew; a read capped short, as Linux caps one read at 2 GiB and network
    # filesystems may at less) reads on to the end.
    data = os.read(fd, size + 1)
    if len(data) == size:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LocalBackend(Backend):
    """Stores each value as a file below a root folder (created on first write).

    Options: `fsync=True` flushes every write to disk before it is renamed into place (durable
    across power loss, much slower). `follow_symlinks=True` follows symlinks wherever they lead,
    outside the root too; by default a key whose path leaves the root through a symlink is
    refused with `InvalidKey`, and listings do not show or enter such links.

    Key limits: a segment may have `max_segment_bytes` (the filesystem's NAME_MAX, usually 255,
    less the 16 bytes of the lock name's prefix: 239) and a key `max_key_bytes` UTF-8 bytes (the
    filesystem's PATH_MAX less the root's path and room for a temp file's name).
    """

    supports_ttl = True  # TTL sidecars beside the values
    atomic_pop = True
    supports_locks = lockfile.AVAILABLE

    def __init__(self, uri: str, fsync: bool = False, follow_symlinks: bool = False) -> None:
        super().__init__(uri)
        path = uri.partition("://")[2] if "://" in uri else uri
        self._root = Root(os.path.abspath(os.path.expanduser(path or ".")), follow_symlinks)
        self.root = self._root.path
        self.fsync = fsync
        self.follow_symlinks = follow_symlinks
        name_max, path_max = _filesystem_limits(self.root)
        # A TTL sidecar and a lock file sit beside the value with a prefix on its name; the lock
        # prefix is the longer one, and both names must still fit the filesystem.
        self.max_segment_bytes = name_max - len(LOCK_PREFIX)
        self.max_key_bytes = path_max - 1 - len(os.fsencode(self.root)) - 1 - _RESERVED_NAME_BYTES
        # Folder -> a name last written or listed in it: a hint only, checked before it is used.
        self._names: dict[str, str] = {}

    def close(self) -> None:
        self._root.close()

    # -- TTL sidecars ------------------------------------------------------------------------

    def _expiry(self, key: str) -> float | None:
        """The expiry in `key`'s TTL sidecar, or None if it has none."""
        try:
            fd = self._root.open(sidecar.beside(key), _OPEN_SIDECAR)
        except OSError:
            return None
        try:
            return sidecar.expires_at(os.read(fd, 64))
        finally:
            os.close(fd)

    def _expired(self, key: str, seen: os.stat_result | None = None) -> bool:
        """True if `key` has a TTL that has passed (and then removes it, if it is still `seen`)."""
        expiry = self._expiry(key)
        if expiry is None or expiry > time.time():
            return False
        self._remove(key, seen)
        return True

    def _remove(self, key: str, seen: os.stat_result | None = None) -> None:
        """Remove an expired value and its sidecar; with `seen`, only if the file is still that
        one (a concurrent rewrite is left alone)."""
        head, name = _split(key)
        folder = self._root.existing_folder(head, outside=True)
        if folder is None:
            return
        with folder:
            if seen is not None:
                try:
                    now = folder.lstat(name)
                except OSError:
                    return
                if (now.st_ino, now.st_dev) != (seen.st_ino, seen.st_dev):
                    return
            folder.unlink_quietly(name)
            folder.unlink_quietly(sidecar.sidecar_name(name))

    # -- primitives --------------------------------------------------------------------------

    def _open_live(self, key: str) -> tuple[int, os.stat_result] | None:
        """Open a value file for reading: (fd, its stat), or None if missing, a folder, expired."""
        fd = self._root.lookup(key, _OPEN_READ)
        if fd < 0:
            if -fd in _NO_VALUE:
                return None
            raise OSError(-fd, os.strerror(-fd), self._root.full(key))
        try:
            result = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if stat_mode.S_ISREG(result.st_mode) and not (
            result.st_mode & TTL_HINT and self._expired(key, result)
        ):
            return fd, result
        os.close(fd)
        return None

    def read(self, key: str) -> bytes | None:
        opened = self._open_live(key)
        if opened is None:
            return None
        fd, result = opened
        try:
            return _read_all(fd, result.st_size)
        finally:
            os.close(fd)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        head, name = _split(key)
        folder, temp, fd = self._open_temp(key, head)
        try:
            try:
                _write_all(fd, data)
                self._seal(folder, temp, fd, ttl)
            finally:
                os.close(fd)
            self._publish(key, folder, temp, name, ttl)
        except BaseException:
            folder.unlink_quietly(temp)
            raise
        finally:
            folder.close()

    def delete(self, key: str) -> None:
        head, name = _split(key)
        try:
            folder = self._root.folder(head)
        except OSError:
            return
        try:
            with folder:
                if not self._unlink_value(folder, name) or not head:
                    return
                if self._still_used(folder, head, name):
                    return
            # The folder may be empty now: prune it (rmdir refuses one that is not).
            self._prune(head, remember=True)
        except OSError:
            pass

    def _still_used(self, folder: Folder, head: str, name: str) -> bool:
        """Tell whether a name this store last saw in `folder` (other than `name`) is still there.

        A failed rmdir right after an unlink in the same folder costs several times the unlink
        on ext4, so a delete tries to prune only when it cannot see that the folder still holds
        something; one lookup of a known name (a dentry-cache hit) proves that it does."""
        other = self._names.get(head)
        if other is not None and other != name:
            try:
                folder.lstat(other)
                return True
            except OSError:
                pass
        self._names.pop(head, None)
        return False

    def _saw(self, head: str, name: str) -> None:
        """Remember `name` as a name in the folder `head` (for `_still_used`)."""
        names = self._names
        if len(names) >= _NAMES_KEPT and head not in names:
            names.clear()  # bounded; a forgotten folder only costs its deletes an rmdir
        names[head] = name

    def _unlink_value(self, folder: Folder, name: str) -> bool:
        """Remove the value `name` in `folder` (and its TTL sidecar); True if there was one."""
        try:
            current = folder.lstat(name)
        except OSError:
            return False
        if stat_mode.S_ISDIR(current.st_mode):
            return False  # a folder is not a value: nothing below it is touched
        if stat_mode.S_ISLNK(current.st_mode):
            self._root.check_link(folder.key(name))
        try:
            folder.unlink(name)
        except (FileNotFoundError, IsADirectoryError):
            return False
        if current.st_mode & TTL_HINT or stat_mode.S_ISLNK(current.st_mode):
            # Only a value written with a TTL has a sidecar that reads consult; another one
            # left behind is an orphan that `cleanup` removes.
            folder.unlink_quietly(sidecar.sidecar_name(name))
        return True

    def _prune(self, head: str, remember: bool = False) -> None:
        """Remove folders left empty by a delete, up to (not including) the root; `remember`:
        if the first is not empty, remember a name in it (for `_still_used`)."""
        while head:
            parent, _, name = head.rpartition("/")
            folder = self._root.existing_folder(parent, outside=True)
            if folder is None:
                return
            with folder:
                try:
                    folder.rmdir(name)
                except OSError as error:
                    if remember and error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        self._remember_one(head)
                    return
            head, remember = parent, False

    def _remember_one(self, head: str) -> None:
        """Remember a name in the folder `head`, picked at random so that no order of deletes
        keeps hitting it (each miss costs a failed rmdir and this listing again)."""
        try:
            fd = self._root.open(head, _OPEN_LISTING)
        except (OSError, InvalidKey):
            return
        try:
            with os.scandir(fd) as entries:
                names = [entry.name for entry in entries]
        finally:
            os.close(fd)
        if names:
            self._saw(head, random.choice(names))

    def _stat_live(self, key: str) -> tuple[os.stat_result, float | None] | None:
        """(stat, expiry) of a live value file, or None if missing, a folder or expired."""
        result = self._root.stat_or_none(key)
        if result is None or not stat_mode.S_ISREG(result.st_mode):
            return None
        expires = self._expiry(key) if result.st_mode & TTL_HINT else None
        if expires is not None and expires <= time.time():
            self._remove(key, result)
            return None
        return result, expires

    def stat(self, key: str) -> BackendStat | None:
        live = self._stat_live(key)
        if live is None:
            return None
        result, expires = live
        # A rename replaces the file, so the filesystem cannot keep the first write's time: one
        # datetime for both (positional: a third faster than keywords on this dataclass).
        updated_at = utc(result.st_mtime)
        return BackendStat(
            result.st_size,
            updated_at,
            updated_at,
            None,
            utc(expires) if expires is not None else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        if prefix:
            try:
                result = self._root.stat(prefix)
            except (OSError, InvalidKey):
                return
            if stat_mode.S_ISREG(result.st_mode):
                if not (result.st_mode & TTL_HINT and self._expired(prefix, result)):
                    yield prefix
                return
        # Each folder comes with the folders above it (only tracked when following symlinks,
        # so that a symlink back up ends the walk there).
        stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(prefix, frozenset())]
        while stack:
            folder, above = stack.pop()
            listed = self._list_folder(folder, above)
            if listed is None:
                continue
            files, subfolders, ttl_names, above = listed
            key_prefix = folder + "/" if folder else ""
            if files and folder and folder not in self._names:
                self._saw(folder, files[-1])  # never over a name that a write just made
            for name in files:
                if ttl_names and name in ttl_names and self._expired(key_prefix + name):
                    continue
                yield key_prefix + name
            stack.extend((key_prefix + name, above) for name in reversed(subfolders))

    def _list_folder(
        self, folder: str, above: frozenset[tuple[int, int]]
    ) -> tuple[list[str], list[str], set[str], frozenset[tuple[int, int]]] | None:
        """(value names, subfolder names, names with a TTL sidecar, the folders above its
        subfolders) of `folder`, or None.

        A symlink is listed when it leads to a value inside the root; a symlinked folder is
        entered only when following symlinks, and never when it is one of the folders above."""
        try:
            fd = self._root.open(folder, _OPEN_LISTING)
        except (OSError, InvalidKey):
            return None
        files: list[str] = []
        subfolders: list[str] = []
        ttl_names: set[str] = set()
        try:
            if self.follow_symlinks:
                result = os.fstat(fd)
                if (result.st_dev, result.st_ino) in above:
                    return None
                above = above | {(result.st_dev, result.st_ino)}
            links: list[str] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == "." and name.startswith(RESERVED_PREFIX):
                        if name.startswith(sidecar.TTL_PREFIX):
                            ttl_names.add(name[len(sidecar.TTL_PREFIX) :])
                    elif entry.is_symlink():
                        links.append(name)
                    elif entry.is_dir(follow_symlinks=False):
                        subfolders.append(name)
                    elif entry.is_file(follow_symlinks=False):
                        files.append(name)  # not a FIFO, socket or device: reads skip those
            for name in links:
                try:
                    result = self._root.stat(join(folder, name))
                except (OSError, InvalidKey):
                    continue  # dangling, a loop, or outside the root
                if stat_mode.S_ISREG(result.st_mode):
                    files.append(name)
                elif stat_mode.S_ISDIR(result.st_mode) and self.follow_symlinks:
                    subfolders.append(name)
        finally:
            os.close(fd)
        return files, subfolders, ttl_names, above

    # -- derived, faster ---------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self._stat_live(key) is not None

    def pop(self, key: str) -> bytes | None:
        head, name = _split(key)
        folder = self._root.existing_folder(head)
        if folder is None:
            return None
        with folder:
            try:
                current = folder.lstat(name)
            except OSError:
                return None
            link = stat_mode.S_ISLNK(current.st_mode)
            if link:
                self._root.check_link(folder.key(name))
            elif not stat_mode.S_ISREG(current.st_mode):
                return None  # a folder is not a value: nothing below it is touched
            elif current.st_mode & TTL_HINT and self._expired(key, current):
                return None
            # Renaming first makes pop atomic: of two concurrent pops, only one gets the file.
            taken = sidecar.temp_name()
            try:
                folder.rename(name, taken)
            except FileNotFoundError:
                return None  # another pop (or a delete) got there first
            except PermissionError as error:
                raise ReadOnly(f"Cannot pop {key!r} below {self.root}: {error}") from error
            try:
                data = self._take(folder, taken, name, link)
            finally:
                folder.unlink_quietly(taken)
            if data is not None and current.st_mode & TTL_HINT:
                folder.unlink_quietly(sidecar.sidecar_name(name))
        if data is not None:
            self._prune(head)
        return data

    def _take(self, folder: Folder, taken: str, name: str, link: bool) -> bytes | None:
        """Read the file a pop renamed to `taken`; put back a folder that raced into its name."""
        if link:  # the link was checked; what it points to now is checked again as it opens
            fd = self._root.open(folder.key(taken), _OPEN_READ)
        else:
            fd = folder.open(taken, _OPEN_READ | O_NOFOLLOW)
        try:
            result = os.fstat(fd)
            if stat_mode.S_ISDIR(result.st_mode):
                # Between the check and the rename a folder of keys took the name: give it back.
                try:
                    folder.rename(taken, name)
                except OSError as error:
                    raise ConcurrentModification(
                        f"A folder of keys replaced {folder.key(name)!r} while it was popped and "
                        f"could not be put back; it is at {os.path.join(folder.path, taken)}"
                    ) from error
                return None
            return _read_all(fd, result.st_size) if stat_mode.S_ISREG(result.st_mode) else None
        finally:
            os.close(fd)

    def open_read(self, key: str) -> IO[bytes] | None:
        # The open file keeps the version it was opened on: writers rename a new file into place
        # and deleting unlinks it, neither changes these bytes.
        opened = self._open_live(key)
        return None if opened is None else os.fdopen(opened[0], "rb")

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        head, name = _split(key)
        folder, temp, fd = self._open_temp(key, head)
        try:
            handle = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            folder.unlink_quietly(temp)
            folder.close()
            raise

        def commit(target: IO[bytes]) -> None:
            target.flush()
            self._seal(folder, temp, target.fileno(), ttl)
            target.close()
            self._publish(key, folder, temp, name, ttl)
            folder.close()

        def abort(target: IO[bytes]) -> None:
            try:
                target.close()
                folder.unlink_quietly(temp)
            finally:
                folder.close()

        return WriteHandle(handle, commit, abort)

    # -- locks -------------------------------------------------------------------------------

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        head, leaf = _split(name)
        folder, temp, fd = self._open_temp(name, head)
        with folder:
            try:
                try:
                    self._refuse_outside_link(folder, leaf)
                    _write_all(fd, lockfile.content(name, token, ttl))
                finally:
                    os.close(fd)
            except BaseException:
                folder.unlink_quietly(temp)
                raise
            return lockfile.create(folder, temp, _split(lock_name(name))[1])

    def _refuse_outside_link(self, folder: Folder, name: str) -> None:
        """Raise `Outside` if `name` in `folder` is a symlink that leads out of the root."""
        try:
            link = stat_mode.S_ISLNK(folder.lstat(name).st_mode)
        except OSError:
            return
        if link:
            self._root.check_link(folder.key(name))

    def release_lock(self, name: str, token: str) -> bool:
        head, _ = _split(name)
        folder = self._root.existing_folder(head)
        if folder is None:
            return False
        with folder:
            released = lockfile.remove(folder, _split(lock_name(name))[1], token)
        self._prune(head)
        return released

    # -- crash leftovers ---------------------------------------------------------------------

    def cleanup(self, older_than: float) -> int:
        """Remove temp files, TTL sidecars without a value and expired lock files that were last
        written more than `older_than` seconds ago; return how many went.

        A temp file is a write in progress for as long as its writer keeps writing (each write
        refreshes its time), so only one idle that long, or left by a killed writer, goes.
        The walk never follows a symlink, whatever `follow_symlinks` says.
        """
        cutoff = time.time() - older_than
        removed = 0
        emptied: list[str] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                folder = Folder(self._root.open(rel, _OPEN_LISTING), self._root.full(rel), rel)
            except (OSError, InvalidKey):
                continue
            with folder:
                count, subfolders = self._clean_folder(folder, cutoff)
            if count:
                emptied.append(rel)
                removed += count
            stack.extend(join(rel, name) for name in subfolders)
        for rel in emptied:
            self._prune(rel)
        return removed

    def _clean_folder(self, folder: Folder, cutoff: float) -> tuple[int, list[str]]:
        names: set[str] = set()
        old: list[str] = []
        subfolders: list[str] = []
        with os.scandir(folder.fd) as entries:
            for entry in entries:
                name = entry.name
                names.add(name)
                directory = entry.is_dir(follow_symlinks=False)
                if not name.startswith(RESERVED_PREFIX):
                    if directory:
                        subfolders.append(name)
                    continue
                if directory:
                    continue  # never ours to remove (a pop that lost a race keeps one there)
                try:
                    if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                        old.append(name)
                except OSError:
                    pass
        count = 0
        for name in old:
            if name.startswith(LOCK_PREFIX):
                # Under the lock file's own flock, and only once its holder's ttl has passed.
                count += lockfile.break_expired(folder, name)
                continue
            if name.startswith(sidecar.TTL_PREFIX) and name[len(sidecar.TTL_PREFIX) :] in names:
                continue  # the sidecar of a value: it is the value's TTL
            if name.startswith((sidecar.TTL_PREFIX, sidecar.TEMP_PREFIX)):
                try:
                    folder.unlink(name)
                    count += 1
                except OSError:
                    pass
        return count, subfolders

    # -- writing helpers ---------------------------------------------------------------------

    def _open_temp(self, key: str, head: str) -> tuple[Folder, str, int]:
        """Create an exclusive temp file in `key`'s folder (made as needed): (folder, name, fd).

        A concurrent delete may prune the folder between making it and creating the file in it:
        then it is made again, a bounded number of times."""
        errors = Translated(partial(self._write_error, key))
        for _ in range(FOLDER_ATTEMPTS):
            try:
                with errors:
                    folder = self._root.make_folder(head)
            except Vanished:
                self._root.removed()  # the root folder itself, deleted: made again next time
                continue
            temp = sidecar.temp_name()
            try:
                with errors:
                    return folder, temp, folder.open(temp, _OPEN_NEW, 0o666)
            except FileNotFoundError:
                folder.close()  # pruned under us
                self._root.removed()
            except BaseException:
                folder.close()
                raise
        raise ConcurrentModification(
            f"Cannot write {key!r} below {self.root}: concurrent deletes removed its folder "
            f"{FOLDER_ATTEMPTS} times while it was being made; try again"
        )

    def _write_error(self, key: str, error: Exception) -> AnystoreError | None:
        if isinstance(error, (NotADirectoryError, FileExistsError)):
            return InvalidKey(
                f"Invalid key {key!r}: a part of it is already a value in {self.root}; on local "
                "files a key cannot be both a value and a folder of other keys"
            )
        if isinstance(error, PermissionError):
            return ReadOnly(f"Cannot write {key!r} below {self.root}: {error}")
        if isinstance(error, OSError) and error.errno == errno.ENAMETOOLONG:
            return InvalidKey(f"Invalid key {key!r}: too long for this filesystem")
        return None

    def _seal(self, folder: Folder, temp: str, fd: int, ttl: float | None) -> None:
        """Finish the temp file's bytes: the TTL hint where it has a TTL, fsync if asked."""
        if ttl:
            _mark_ttl(folder, temp, fd)
        if self.fsync:
            os.fsync(fd)

    def _publish(self, key: str, folder: Folder, temp: str, name: str, ttl: float | None) -> None:
        """Rename the complete temp file to `name` (with its TTL sidecar, or none)."""
        try:
            current: os.stat_result | None = folder.lstat(name)
        except FileNotFoundError:
            current = None
        if current is not None:
            if stat_mode.S_ISDIR(current.st_mode):
                try:
                    # An empty folder (left by another tool) may give way to the value.
                    folder.rmdir(name)
                except OSError as error:
                    raise self._folder_in_the_way(key) from error
            elif stat_mode.S_ISLNK(current.st_mode):
                self._root.check_link(folder.key(name))  # the link itself is replaced
        side = sidecar.sidecar_name(name)
        if ttl:
            try:
                fd = folder.open(side, _WRITE_SIDECAR, 0o666)
            except OSError as error:
                if error.errno != errno.ELOOP:
                    raise
                folder.unlink_quietly(side)  # a symlink planted there: never write through it
                fd = folder.open(side, _WRITE_SIDECAR, 0o666)
            try:
                _write_all(fd, sidecar.expiry_text(ttl))
            finally:
                os.close(fd)
        else:
            folder.unlink_quietly(side)
        try:
            folder.rename(temp, name)
        except IsADirectoryError as error:
            raise self._folder_in_the_way(key) from error
        except FileNotFoundError as error:
            raise ConcurrentModification(
                f"The temp file of {key!r} below {self.root} was removed before the write "
                "finished (a cleanup with a small older_than?); write it again"
            ) from error
        if folder.rel:
            self._saw(folder.rel, name)

    def _folder_in_the_way(self, key: str) -> InvalidKey:
        return InvalidKey(
            f"Invalid key {key!r}: it is a folder of other keys in {self.root}; on local "
            "files a key cannot be both a value and a folder"
        )


def _mark_ttl(folder: Folder, temp: str, fd: int) -> None:
    """Set the TTL hint bit on the temp file being written."""
    mode = os.fstat(fd).st_mode | TTL_HINT
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before Python 3.13
        os.chmod(os.path.join(folder.path, temp), mode)
