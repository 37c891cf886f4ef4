"""Opening paths below a local store's root without ever leaving it, symlinks included.

Every path a local store touches is resolved *beneath* its root folder: a symlink (or a chain of
them) that leads outside the root is refused with `Outside`, an `InvalidKey`. A symlink that stays
inside the root works. How the check is made, fastest first:

* Linux 5.6+: the kernel resolves the path in the same call that opens it (`openat2` with
  `RESOLVE_BENEATH`), so there is no extra system call and no window between check and use. It
  refuses every absolute symlink; one that points inside the root is then opened the next way.
* Otherwise: open the path, read back the real path of what was opened (`/proc/self/fd`,
  macOS `F_GETPATH`) and compare: one more call, still no window, since the check is made on the
  open file. A miss resolves the path with `realpath` so that a missing file outside is refused too.
* Where neither exists, `realpath` before the call (a small race window; documented).

Writes, renames and removals happen through a `Folder`: the descriptor of a folder that was checked
this way. They act in that folder even if its path is swapped for a symlink a moment later.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import sys
import threading
from typing import Any

from anystore.exceptions import InvalidKey

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# A descriptor that only names a file or folder (Linux): no read permission needed, cheapest open.
O_PATH = getattr(os, "O_PATH", 0)
FOLDER_FLAGS = (O_PATH or os.O_RDONLY) | O_DIRECTORY | O_CLOEXEC
DIR_FD = os.open in os.supports_dir_fd and os.stat in os.supports_dir_fd
# What opens a file only to stat it: a path descriptor where there is one, never blocking.
_STAT_FLAGS = O_PATH or (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
# Misses that need no second look (ENOENT may mean the root folder itself was replaced).
_PLAIN_MISSES = frozenset((errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.EISDIR))
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()

# Errors of a lookup that mean "there is nothing at this key".
MISSING = (FileNotFoundError, NotADirectoryError)

_RESOLVE_BENEATH = 0x08
# openat2 has the same number on every architecture that uses the unified syscall table.
_OPENAT2 = 437
_UNIFIED_TABLE = {"x86_64", "amd64", "aarch64", "arm64", "i386", "i686", "riscv64", "s390x"}


class Outside(InvalidKey):
    """A key whose path resolves (through a symlink) to a place outside the store's root."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_HOW_SIZE = ctypes.sizeof(_OpenHow)
# `struct open_how` for each set of open flags (opens that do not create: the mode must be 0).
_HOWS: dict[int, Any] = {}


def _how(flags: int, mode: int = 0) -> Any:
    if mode:
        return ctypes.byref(_OpenHow(flags | O_CLOEXEC, mode, _RESOLVE_BENEATH))
    how = _HOWS.get(flags)
    if how is None:
        how = _HOWS[flags] = ctypes.byref(_OpenHow(flags | O_CLOEXEC, 0, _RESOLVE_BENEATH))
    return how


def _load_syscall() -> Any:
    """libc's `syscall`, if openat2 works here; else None.

    No `argtypes`: ctypes then passes the small ints as C ints, which libffi widens to the
    registers' size, as `syscall` reads them; declaring them costs a microsecond per call."""
    if sys.platform != "linux" or platform.machine().lower() not in _UNIFIED_TABLE:
        return None
    try:
        syscall = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    # Kernels before 5.6 say ENOSYS; some container sandboxes refuse the call (EPERM).
    fd = syscall(_OPENAT2, -100, b".", _how(FOLDER_FLAGS), _HOW_SIZE)  # -100: AT_FDCWD
    if fd < 0:
        return None
    os.close(fd)
    return syscall


def _load_fd_path() -> Any:
    """A function giving the real path of an open descriptor, or None where there is none."""
    if os.path.isdir("/proc/self/fd"):

        def proc_path(fd: int) -> str:
            path = os.readlink(f"/proc/self/fd/{fd}")
            return path[: -len(" (deleted)")] if path.endswith(" (deleted)") else path

        return proc_path
    try:
        import fcntl

        get_path = fcntl.F_GETPATH  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None

    def fcntl_path(fd: int) -> str:
        return os.fsdecode(fcntl.fcntl(fd, get_path, bytes(1024)).split(b"\0", 1)[0])

    return fcntl_path


_SYSCALL = _load_syscall()
OPENAT2 = _SYSCALL is not None
_get_errno = ctypes.get_errno
FD_PATH = _load_fd_path()


class Folder:
    """A checked folder below the root: operations on names in it, through its descriptor."""

    __slots__ = ("_owned", "fd", "path", "rel")

    def __init__(self, fd: int, path: str, rel: str, owned: bool = True) -> None:
        self.fd = fd
        self.path = path
        self.rel = rel
        self._owned = owned

    def key(self, name: str) -> str:
        """The root-relative path of `name` in this folder."""
        return f"{self.rel}/{name}" if self.rel else name

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        return os.open(name, flags | O_CLOEXEC, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def unlink_quietly(self, name: str) -> None:
        try:
            self.unlink(name)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            pass

    def rename(self, source: str, target: str) -> None:
        """Rename within this folder (replacing `target`, as `os.replace`)."""
        os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, source: str, target: str) -> None:
        """Hard-link `source` to the new name `target` (fails if `target` exists)."""
        os.link(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)

    def mkdir(self, name: str) -> None:
        os.mkdir(name, dir_fd=self.fd)

    def rmdir(self, name: str) -> None:
        os.rmdir(name, dir_fd=self.fd)

    def close(self) -> None:
        if self._owned:
            self._owned = False
            os.close(self.fd)
            self.fd = -1  # any later use fails loudly (EBADF)

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PathFolder(Folder):
    """A `Folder` by its path, where the platform has no `dir_fd` (Windows): checked when made,
    but what the path names may change afterwards."""

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        return os.open(os.path.join(self.path, name), flags | O_CLOEXEC, mode)

    def lstat(self, name: str) -> os.stat_result:
        return os.lstat(os.path.join(self.path, name))

    def unlink(self, name: str) -> None:
        os.unlink(os.path.join(self.path, name))

    def rename(self, source: str, target: str) -> None:
        os.replace(os.path.join(self.path, source), os.path.join(self.path, target))

    def link(self, source: str, target: str) -> None:
        os.link(os.path.join(self.path, source), os.path.join(self.path, target))

    def mkdir(self, name: str) -> None:
        os.mkdir(os.path.join(self.path, name))

    def rmdir(self, name: str) -> None:
        os.rmdir(os.path.join(self.path, name))

    def close(self) -> None:
        pass


class Vanished(Exception):
    """A folder disappeared (a concurrent delete pruned it) while it was being made; retry."""


class Root:
    """The root folder of a local store, resolved once; paths are opened beneath it.

    With `follow_symlinks=True` paths are opened as they are, following every symlink.
    """

    def __init__(self, path: str, follow_symlinks: bool = False) -> None:
        # Resolved once: the root itself may be a symlink (a user's choice, not a key's).
        self.path = os.path.realpath(path)
        self.follow = follow_symlinks
        # Resolve in the kernel with openat2 (else: check what was opened, see the module).
        self._beneath = OPENAT2 and not follow_symlinks
        self._fd: int | None = None
        self._stale: list[int] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # A descriptor means nothing in another process: it is opened again there.
        return {"path": self.path, "follow": self.follow}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["follow"])  # type: ignore[misc]

    def full(self, rel: str) -> str:
        """The absolute path of the root-relative `rel` (not resolved)."""
        if not rel:
            return self.path
        if os.sep == "/":
            return f"{self.path}/{rel}" if self.path != "/" else f"/{rel}"
        return os.path.join(self.path, *rel.split("/"))

    def inside(self, real: str) -> bool:
        """Tell whether the resolved path `real` is the root or below it."""
        root = self.path
        return real == root or real.startswith(root if root.endswith(os.sep) else root + os.sep)

    def outside(self, rel: str) -> Outside:
        return Outside(
            f"Invalid key {rel!r}: its path resolves, through a symlink, to a place outside the "
            f"store's root {self.path}; a local store never reads, writes or deletes outside its "
            "root (open it with follow_symlinks=True to follow symlinks anyway)"
        )

    # -- the root's own descriptor -----------------------------------------------------------

    def _root_fd(self) -> int:
        """A descriptor of the root folder (FileNotFoundError while it does not exist)."""
        fd = self._fd
        if fd is None:
            with self._lock:
                if self._fd is None:
                    self._fd = os.open(self.path, FOLDER_FLAGS)
                fd = self._fd
        return fd

    def _root_replaced(self) -> bool:
        """After a miss: tell whether the root folder was removed (and so must be opened again).

        The old descriptor is kept until `close()`: another thread may be using it right now.
        """
        fd = self._fd
        if fd is None:
            return False
        try:
            alive = os.fstat(fd).st_nlink > 0
        except OSError:
            alive = False
        if alive:
            return False
        with self._lock:
            if self._fd == fd:
                self._stale.append(fd)
                self._fd = None
        return True

    def removed(self) -> bool:
        """After a write found no folder: tell whether the root folder itself was removed, in
        which case the next use makes it again at its path (see `_root_replaced`)."""
        return self._root_replaced()

    def close(self) -> None:
        """Release the root's descriptors (opened again on the next use)."""
        with self._lock:
            for fd in [*self._stale, *([self._fd] if self._fd is not None else [])]:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fd = None
            self._stale = []

    # -- opening -----------------------------------------------------------------------------

    def open(self, rel: str, flags: int, mode: int = 0o666) -> int:
        """`os.open` the root-relative path `rel` ("" is the root), never outside the root.

        Raises `Outside`, or the `OSError` that `os.open` raises (FileNotFoundError...).
        """
        fd = self.lookup(rel, flags, mode)
        if fd < 0:
            raise OSError(-fd, os.strerror(-fd), self.full(rel))
        return fd

    def lookup(self, rel: str, flags: int, mode: int = 0o666) -> int:
        """Like `open`, but an `OSError` comes back as minus its errno (`Outside` is raised)."""
        root = self._fd
        if root is not None and self._beneath and not flags & os.O_CREAT:
            # The hot path (every read, stat and exists): one openat2, no exception on a miss.
            fd: int = _SYSCALL(
                _OPENAT2,
                root,
                rel.encode(_FS_ENCODING, _FS_ERRORS) if rel else b".",
                _HOWS.get(flags) or _how(flags),
                _HOW_SIZE,
            )
            if fd >= 0:
                return fd
            code = _get_errno()
            if code in _PLAIN_MISSES or (code == errno.ENOENT and not self._root_replaced()):
                return -code
        return self._lookup(rel, flags, mode)

    def _lookup(self, rel: str, flags: int, mode: int) -> int:
        flags |= O_CLOEXEC
        try:
            if self.follow:
                return os.open(self.full(rel), flags, mode)
            if not self._beneath:
                return self._open_checked(rel, flags, mode)
        except OSError as error:
            return -(error.errno or errno.EIO)
        path = rel.encode(_FS_ENCODING, _FS_ERRORS) if rel else b"."
        # openat2 is strict: a mode without O_CREAT is an error, not ignored.
        how = _how(flags, mode if flags & os.O_CREAT else 0)
        attempts = 2
        while True:
            try:
                root = self._root_fd()
            except OSError as error:
                return -(error.errno or errno.EIO)
            fd = int(_SYSCALL(_OPENAT2, root, path, how, _HOW_SIZE))
            if fd >= 0:
                return fd
            code = _get_errno()
            if code == errno.EINTR:
                continue
            if code == errno.EXDEV:
                # An absolute symlink (maybe to inside the root), or an escape: look closer.
                try:
                    return self._open_checked(rel, flags, mode)
                except OSError as error:
                    return -(error.errno or errno.EIO)
            attempts -= 1
            if code != errno.ENOENT or not attempts or not self._root_replaced():
                return -code

    def _open_checked(self, rel: str, flags: int, mode: int) -> int:
        full = self.full(rel)
        if FD_PATH is None:
            # No way to ask an open file where it is: resolve first (racy, but never outside).
            if not self.inside(os.path.realpath(full)):
                raise self.outside(rel)
            return os.open(full, flags, mode)
        try:
            fd = os.open(full, flags, mode)
        except OSError:
            # A miss (or a loop) that is outside must not answer differently from one inside.
            if not self.inside(os.path.realpath(full)):
                raise self.outside(rel) from None
            raise
        try:
            real = FD_PATH(fd)
        except OSError:
            real = os.path.realpath(full)
        if not self.inside(real):
            os.close(fd)
            raise self.outside(rel)
        return fd

    def stat(self, rel: str) -> os.stat_result:
        """`os.stat` (following symlinks that stay inside the root) of `rel`; raises like `open`."""
        if self.follow:
            return os.stat(self.full(rel))
        fd = self.open(rel, _STAT_FLAGS)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def stat_or_none(self, rel: str) -> os.stat_result | None:
        """`stat`, with None for anything that finds no file (missing, a loop, too long)."""
        if self.follow:
            try:
                return os.stat(self.full(rel))
            except OSError:
                return None
        root = self._fd
        if root is not None and DIR_FD and rel and "/" not in rel:
            # A name in the root itself, not followed if it is a symlink, cannot lead outside:
            # one fstatat instead of open, fstat and close.
            try:
                result = os.stat(rel, dir_fd=root, follow_symlinks=False)
            except OSError as error:
                if error.errno != errno.ENOENT or not self._root_replaced():
                    return None
            else:
                if not stat.S_ISLNK(result.st_mode):
                    return result
        fd = self.lookup(rel, _STAT_FLAGS)
        if fd < 0:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def check_link(self, rel: str) -> None:
        """Raise `Outside` unless the symlink at `rel` leads inside the root (or dangles there)."""
        if self.follow:
            return
        try:
            os.close(self.open(rel, _STAT_FLAGS))
        except OSError:
            if not self.inside(os.path.realpath(self.full(rel))):
                raise self.outside(rel) from None

    # -- folders -----------------------------------------------------------------------------

    def folder(self, rel: str) -> Folder:
        """The existing folder `rel` ("" is the root); raises `Outside`, FileNotFoundError..."""
        if not DIR_FD:
            path = self.full(rel)
            if not self.follow and not self.inside(os.path.realpath(path)):
                raise self.outside(rel)
            if not os.path.isdir(path):
                raise FileNotFoundError(errno.ENOENT, "no such folder", path)
            return PathFolder(-1, path, rel, owned=False)
        if not rel and self._beneath:
            return Folder(self._root_fd(), self.path, rel, owned=False)
        return Folder(self.open(rel, FOLDER_FLAGS), self.full(rel), rel)

    def existing_folder(self, rel: str, outside: bool = False) -> Folder | None:
        """`folder(rel)`, or None where it is missing (or not a folder); `outside=True`: None
        for one beyond a symlink out of the root too, instead of `Outside`."""
        try:
            return self.folder(rel)
        except Outside:
            if outside:
                return None
            raise
        except OSError:
            return None

    def folder_and_parent(self, rel: str) -> tuple[Folder | None, Folder]:
        """The existing folder `rel` and its parent folder (None for the root), the one opened
        through the other (cheaper than two lookups from the root); raises like `folder`."""
        if not rel or not DIR_FD:
            return None, self.folder(rel)
        head, _, name = rel.rpartition("/")
        parent = self.folder(head)
        try:
            # Through the checked parent, never following a symlink: that is beneath too.
            fd = parent.open(name, FOLDER_FLAGS | O_NOFOLLOW)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                parent.close()
                raise
            try:
                # A symlink (O_PATH opens it as itself, so the type is checked): resolved
                # beneath the root the long way.
                return parent, self.folder(rel)
            except BaseException:
                parent.close()
                raise
        return parent, Folder(fd, self.full(rel), rel)

    def make_folder(self, rel: str) -> Folder:
        """The folder `rel`, made (with its parents) where missing, beneath the root.

        Raises `Vanished` when a concurrent delete removed a folder mid-way (the caller retries),
        NotADirectoryError/FileExistsError when a value is in the way, `Outside`.
        """
        try:
            return self.folder(rel)
        except FileNotFoundError:
            pass
        if not DIR_FD:
            try:
                os.makedirs(self.full(rel), exist_ok=True)
            except FileExistsError:
                raise Vanished(rel) from None
            return self.folder(rel)
        try:
            parent = self.folder("")
        except FileNotFoundError:
            os.makedirs(self.path, exist_ok=True)
            parent = self.folder("")
        parts = rel.split("/") if rel else []
        try:
            for i, part in enumerate(parts):
                sub = "/".join(parts[: i + 1])
                try:
                    child = self.folder(sub)
                except FileNotFoundError:
                    try:
                        parent.mkdir(part)
                    except FileExistsError:
                        pass  # made by another writer meanwhile (or a value: found next)
                    except FileNotFoundError:
                        raise Vanished(rel) from None  # the parent was pruned under us
                    try:
                        child = self.folder(sub)
                    except FileNotFoundError:
                        self._dangling(parent, part, sub)
                        raise Vanished(rel) from None
                parent.close()
                parent = child
        except BaseException:
            parent.close()
            raise
        return parent

    def _dangling(self, parent: Folder, name: str, rel: str) -> None:
        """Raise if a dangling symlink (not a vanished folder) is what stands at `rel`."""
        try:
            link = stat.S_ISLNK(parent.lstat(name).st_mode)
        except OSError:
            return
        if link:
            self.check_link(rel)
            raise FileExistsError(errno.EEXIST, "a dangling symlink is in the way", rel)
