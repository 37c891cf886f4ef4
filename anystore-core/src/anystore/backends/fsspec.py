"""Any other protocol fsspec knows and that is installed (zip, http, gcs, sftp...).

The URI is handed to fsspec as it is; keys are paths below it. Writes to protocols fsspec cannot
write (http, zip opened for reading...) raise `ReadOnly`. TTLs use the same sidecar files as the
local backend.

A read handle serves one version: fsspec's in-memory files are read from a snapshot of their
bytes; elsewhere the value is read by ranges, each checked against the version token (ETag,
generation, mtime... and size) that the value had when it was opened, so an overwrite mid-read
raises `ConcurrentModification` instead of mixing two versions. Where a protocol reports no such
token, only a change of size is noticed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from typing import IO, Any, cast

from anystore.backend import Backend, BackendStat, utc
from anystore.backends import sidecar
from anystore.clients import Translated
from anystore.exceptions import BackendNotFound, ConcurrentModification, ReadOnly, mask_uri
from anystore.io import open_ranged

# What fsspec implementations report that changes with each new version of a file, best first.
_VERSION_FIELDS = (
    "ETag",
    "etag",
    "generation",
    "VersionId",
    "version_id",
    "md5Hash",
    "crc32c",
    "mtime",
    "LastModified",
    "last_modified",
    "updated",
    "modified",
    "created",
)

# What fsspec implementations raise when a protocol (or the mode it was opened in) cannot write.
_WRITE_REFUSED = (NotImplementedError, PermissionError, OSError, ValueError)


def _version(info: dict[str, Any]) -> tuple[Any, ...]:
    """The size and the first version field fsspec reports for a file."""
    for name in _VERSION_FIELDS:
        value = info.get(name)
        if value is not None:
            return (info.get("size"), name, value)
    return (info.get("size"),)


def _timestamp(info: dict[str, Any]) -> datetime:
    for name in ("mtime", "LastModified", "last_modified", "updated", "created", "date_time"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)):
            return utc(value)
        if isinstance(value, tuple) and len(value) == 6:  # zip's date_time
            return datetime(*value, tzinfo=timezone.utc)
    return utc(0)


class FsspecBackend(Backend):
    """Moves bytes through an fsspec filesystem rooted at the URI."""

    supports_ttl = True  # TTL sidecars beside the values, as on local files

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        from fsspec.core import url_to_fs

        try:
            self.fs, root = url_to_fs(uri, **options)
        except ImportError as error:
            # fsspec knows the protocol but its package is missing; fsspec's message names it.
            raise BackendNotFound(f"Cannot open {mask_uri(uri)}: {error}") from None
        self.root = root.rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def _expiry(self, path: str) -> bytes | None:
        try:
            return cast(bytes, self.fs.cat_file(sidecar.beside(path)))  # fsspec is untyped
        except Exception:  # missing, or a protocol that cannot say: no TTL
            return None

    def _expired(self, path: str) -> bool:
        text = self._expiry(path)
        if text is not None and sidecar.is_expired(text):
            self._remove(path)
            return True
        return False

    def _remove(self, path: str) -> None:
        for target in (path, sidecar.beside(path)):
            try:
                self.fs.rm_file(target)
            except (FileNotFoundError, NotImplementedError, OSError):
                pass

    def _refused(self, key: str, error: Exception) -> ReadOnly | None:
        if not isinstance(error, _WRITE_REFUSED):
            return None
        return ReadOnly(
            f"Cannot write {key!r} to {mask_uri(self.uri)}: the {self.fs.protocol} protocol "
            f"refused ({type(error).__name__}: {error})"
        )

    def read(self, key: str) -> bytes | None:
        path = self._path(key)
        if self._expired(path):
            return None
        try:
            return cast(bytes, self.fs.cat_file(path))  # fsspec is untyped
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        path = self._path(key)
        with Translated(partial(self._refused, key)):
            if ttl:
                self.fs.pipe_file(sidecar.beside(path), sidecar.expiry_text(ttl))
            elif self._expiry(path) is not None:
                self.fs.rm_file(sidecar.beside(path))
            self.fs.pipe_file(path, data)

    def delete(self, key: str) -> None:
        self._remove(self._path(key))

    def stat(self, key: str) -> BackendStat | None:
        path = self._path(key)
        try:
            info = self.fs.info(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if info.get("type") == "directory" or self._expired(path):
            return None
        expires = self._expiry(path)
        expires_at = sidecar.expires_at(expires) if expires is not None else None
        updated = _timestamp(info)
        return BackendStat(
            size=int(info.get("size") or 0),
            created_at=updated,
            updated_at=updated,
            mimetype=info.get("ContentType") or info.get("mimetype"),
            expires_at=utc(expires_at) if expires_at else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = self._path(prefix) if prefix else self.root
        cut = len(self.root) + 1 if self.root else 0
        if prefix and self.fs.isfile(start):
            if not self._expired(start):
                yield prefix
            return
        # Sidecars and temp files have reserved names, which Store leaves out of listings.
        try:
            for folder, _, files in self.fs.walk(start, detail=False):
                names = set(files)
                for name in files:
                    path = f"{folder.rstrip('/')}/{name}" if folder else name
                    if sidecar.sidecar_name(name) in names and self._expired(path):
                        continue
                    yield path[cut:]
        except FileNotFoundError:
            return

    def open_read(self, key: str) -> IO[bytes] | None:
        path = self._path(key)
        if self._expired(path):
            return None
        if _in_memory(self.fs):
            # fsspec's memory files are one shared object per path (with one position for all
            # readers); an overwrite puts a new object in its place. A snapshot of the bytes is
            # one version, with a position of its own.
            try:
                return io.BytesIO(self.fs.cat_file(path))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
        try:
            info = self.fs.info(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        if info.get("type") == "directory":
            return None
        version = _version(info)

        def read_range(start: int, length: int) -> bytes:
            try:
                data = self.fs.cat_file(path, start, start + length)
                now = _version(self.fs.info(path))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                now = None
            if now != version:
                raise ConcurrentModification(
                    f"{key!r} in {mask_uri(self.uri)} was overwritten or deleted while it was "
                    "read; open it again to read the current version"
                )
            return bytes(data)

        return open_ranged(int(info.get("size") or 0), read_range)


def _in_memory(fs: Any) -> bool:
    from fsspec.implementations.memory import MemoryFileSystem

    return isinstance(fs, MemoryFileSystem)
