"""Any other protocol fsspec knows and that is installed (zip, http, gcs, sftp...).

The URI is handed to fsspec as it is; keys are paths below it. Writes to protocols fsspec cannot
write (http, zip opened for reading...) raise `ReadOnly`. TTLs use the same sidecar files as the
local backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO, Any

from anystore.backend import Backend, BackendStat
from anystore.backends import sidecar
from anystore.exceptions import BackendNotFound, ReadOnly, mask_uri
from anystore.keys import RESERVED_PREFIX, is_reserved

# What fsspec implementations raise when a protocol (or the mode it was opened in) cannot write.
_WRITE_REFUSED = (NotImplementedError, PermissionError, OSError, ValueError)


def _timestamp(info: dict[str, Any]) -> datetime:
    for name in ("mtime", "LastModified", "last_modified", "updated", "created", "date_time"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, timezone.utc)
        if isinstance(value, tuple) and len(value) == 6:  # zip's date_time
            return datetime(*value, tzinfo=timezone.utc)
    return datetime.fromtimestamp(0, timezone.utc)


class FsspecBackend(Backend):
    """Moves bytes through an fsspec filesystem rooted at the URI."""

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

    def _sidecar(self, path: str) -> str:
        head, _, name = path.rpartition("/")
        return f"{head}/{sidecar.sidecar_name(name)}" if head else sidecar.sidecar_name(name)

    def _expiry(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._sidecar(path))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except Exception:
            return None

    def _expired(self, path: str) -> bool:
        text = self._expiry(path)
        if text is not None and sidecar.is_expired(text):
            self._remove(path)
            return True
        return False

    def _remove(self, path: str) -> None:
        for target in (path, self._sidecar(path)):
            try:
                self.fs.rm_file(target)
            except (FileNotFoundError, NotImplementedError, OSError):
                pass

    def _writing(self, key: str, action: Any) -> Any:
        try:
            return action()
        except _WRITE_REFUSED as error:
            raise ReadOnly(
                f"Cannot write {key!r} to {mask_uri(self.uri)}: the {self.fs.protocol} protocol "
                f"refused ({type(error).__name__}: {error})"
            ) from error

    def read(self, key: str) -> bytes | None:
        path = self._path(key)
        if self._expired(path):
            return None
        try:
            return self.fs.cat_file(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        path = self._path(key)

        def put() -> None:
            if ttl:
                self.fs.pipe_file(self._sidecar(path), sidecar.expiry_text(ttl))
            elif self._expiry(path) is not None:
                self.fs.rm_file(self._sidecar(path))
            self.fs.pipe_file(path, data)

        self._writing(key, put)

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
            expires_at=datetime.fromtimestamp(expires_at, timezone.utc) if expires_at else None,
        )

    def list_keys(self, prefix: str) -> Iterator[str]:
        start = self._path(prefix) if prefix else self.root
        cut = len(self.root) + 1 if self.root else 0
        if prefix and self.fs.isfile(start):
            if not self._expired(start):
                yield prefix
            return
        try:
            walker = self.fs.walk(start, detail=False)
            for folder, _, files in walker:
                if is_reserved(folder):
                    continue
                names = set(files)
                for name in files:
                    if name.startswith(RESERVED_PREFIX):
                        continue
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
        try:
            return self.fs.open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
