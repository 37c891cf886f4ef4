"""Any other protocol fsspec knows and that is installed (zip, http, gcs, sftp...).

The URI is handed to fsspec as it is; keys are paths below it. Writes to protocols fsspec cannot
write (http, zip opened for reading...) raise `ReadOnly`. TTLs use the same sidecar files as the
local backend.

A read handle serves one version: fsspec's in-memory files are read from a snapshot of their
bytes; elsewhere the value is read by ranges, each checked against the version token (ETag,
generation, mtime... and size) that the value had when it was opened, so an overwrite mid-read
raises `ConcurrentModification` instead of mixing two versions. Where a protocol reports no such
token, only a change of size is noticed.

A server that cannot be reached (refused, unknown host, timed out, dropped the connection, or
answered that it cannot serve now: 5xx, 408, 429, refused credentials) raises
`BackendUnavailable` on every operation, never a missing key: fsspec's HTTP filesystem turns
these into `FileNotFoundError` (`info`), swallows them (`exists`, `walk`) or lets aiohttp's own
errors out (`cat_file`), so the backend looks through the error's chain for the cause. A filesystem
that cannot be opened at all (an archive protocol without its archive, a missing archive) raises
`InvalidOption` saying how to name it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import partial
from typing import IO, Any, cast

from anystore.backend import Backend, BackendStat, utc
from anystore.backends import sidecar
from anystore.backends.fsspec_errors import aiohttp_errors, unavailable_error, unopenable
from anystore.clients import Translated
from anystore.exceptions import (
    AnystoreError,
    BackendNotFound,
    BackendUnavailable,
    ConcurrentModification,
    DoesNotExist,
    ReadOnly,
    mask_uri,
)
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

# What fsspec implementations raise for a value that is not there (or is a folder).
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


# Seconds to connect to an HTTP server and to wait for the next bytes of its response, unless
# the caller passes client_kwargs={"timeout": ...}: aiohttp's own default gives a stalled server
# five minutes, and a network backend gives up within its timeouts (BackendUnavailable).
HTTP_CONNECT_TIMEOUT = 10.0
HTTP_READ_TIMEOUT = 30.0


def _with_http_timeouts(uri: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options`, with connect and read timeouts for each http(s) filesystem in `uri` that sets
    none: the outer one (`http://...`) or one inside a chain (`zip://::http://.../a.zip`, whose
    options fsspec takes under the protocol's name)."""
    protocols = [part.partition("://")[0].lower() for part in uri.split("::") if "://" in part]
    if not {"http", "https"} & set(protocols):
        return options
    import aiohttp  # fsspec's HTTP filesystem imports it anyway

    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=HTTP_CONNECT_TIMEOUT, sock_read=HTTP_READ_TIMEOUT
    )

    def with_timeout(own: Any) -> dict[str, Any]:
        own = dict(own or {})
        client_kwargs = dict(own.get("client_kwargs") or {})
        client_kwargs.setdefault("timeout", timeout)
        return {**own, "client_kwargs": client_kwargs}

    options = dict(options)
    if protocols[0] in ("http", "https"):
        options = with_timeout(options)
    for protocol in set(protocols[1:]) & {"http", "https"}:
        options[protocol] = with_timeout(options.get(protocol))
    return options


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
            self.fs, root = url_to_fs(uri, **_with_http_timeouts(uri, options))
        except ImportError as error:
            # fsspec knows the protocol but its package is missing; fsspec's message names it.
            raise BackendNotFound(f"Cannot open {mask_uri(uri)}: {error}") from None
        except AnystoreError:
            raise
        except Exception as error:
            # Not chained: fsspec's messages may carry the unmasked URI; ours names the cause.
            raise unopenable(uri, options, error) from None
        self.root = root.rstrip("/")
        # Around every filesystem call that reads: a connection failure becomes
        # BackendUnavailable before the caller's `except FileNotFoundError` can read it as a
        # missing key. Unchained, for the same reason as above.
        self._errors = Translated(self._read_error, chain=False)

    def _read_error(self, error: Exception) -> AnystoreError | None:
        unavailable = unavailable_error(self.uri, error)
        if unavailable is not None:
            return unavailable
        _, response_error = aiohttp_errors()
        if response_error is not None and isinstance(error, response_error):
            # Any other 4xx from fsspec's HTTP `cat_file` (403, 410...): missing, as fsspec's
            # own `info` (and so `exists` and `info` here) already reports it.
            status = getattr(error, "status", "?")
            return DoesNotExist(f"{mask_uri(self.uri)} answered HTTP {status}")
        return None

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def _expiry(self, path: str) -> bytes | None:
        try:
            return cast(bytes, self.fs.cat_file(sidecar.beside(path)))  # fsspec is untyped
        except Exception as error:  # missing, or a protocol that cannot say: no TTL
            # ...unless the server is gone: then the value cannot be read either.
            unavailable = unavailable_error(self.uri, error)
            if unavailable is not None:
                raise unavailable from None
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
                with self._errors:
                    self.fs.rm_file(target)
            except BackendUnavailable:  # an OSError too, but not a delete that is done
                raise
            except (FileNotFoundError, NotImplementedError, OSError):
                pass

    def _write_error(self, key: str, error: Exception) -> AnystoreError | None:
        # Unreachable first: a refused connection is an OSError, which would read as ReadOnly.
        return unavailable_error(self.uri, error) or self._refused(key, error)

    def _refused(self, key: str, error: Exception) -> ReadOnly | None:
        _, response_error = aiohttp_errors()
        http_refused = response_error is not None and isinstance(error, response_error)
        if not isinstance(error, _WRITE_REFUSED) and not http_refused:
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
            with self._errors:
                return cast(bytes, self.fs.cat_file(path))  # fsspec is untyped
        except _MISSING:
            return None

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        path = self._path(key)
        with Translated(partial(self._write_error, key)):
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
            with self._errors:
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
        if prefix:
            with self._errors:
                # fsspec's HTTP `isfile` answers False for a dead server; the walk below finds out.
                is_file = self.fs.isfile(start)
            if is_file:
                if not self._expired(start):
                    yield prefix
                return
        # Sidecars and temp files have reserved names, which Store leaves out of listings.
        for folder, files in self._walk(start):
            names = set(files)
            for name in files:
                path = f"{folder.rstrip('/')}/{name}" if folder else name
                if sidecar.sidecar_name(name) in names and self._expired(path):
                    continue
                yield path[cut:]

    def _walk(self, start: str) -> Iterator[tuple[str, list[str]]]:
        """(folder, file names) for `start` and every folder below it, top-down.

        fsspec's `walk` does the same but drops every OSError, at each level (its `on_error` does
        not reach the sub-folders): aiohttp's connection errors are OSErrors, so a dead server
        listed as empty. Here they raise; a folder that is gone (or an OSError that is not a
        connection failure, as fsspec's walk did) is still left out.
        """
        pending = [self.fs._strip_protocol(start)]
        while pending:
            folder = pending.pop()
            try:
                with self._errors:
                    listing = self.fs.ls(folder, detail=True)
            except BackendUnavailable:  # an OSError too: never an empty folder
                raise
            except OSError:
                continue
            folders, files = [], []
            for info in listing:
                # As fsspec's walk: a name may end in "/"; a listing may hold the folder itself.
                pathname = info["name"].rstrip("/")
                if pathname == folder:
                    continue
                if info["type"] == "directory":
                    folders.append(pathname)
                else:
                    files.append(pathname.rsplit("/", 1)[-1])
            yield folder, files
            pending.extend(reversed(folders))  # depth-first, in listing order, as fsspec

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
            except _MISSING:
                return None
        try:
            with self._errors:
                info = self.fs.info(path)
        except _MISSING:
            return None
        if info.get("type") == "directory":
            return None
        version = _version(info)

        def read_range(start: int, length: int) -> bytes:
            try:
                with self._errors:  # a server gone mid-read is not an overwrite
                    data = self.fs.cat_file(path, start, start + length)
                    now = _version(self.fs.info(path))
            except _MISSING:
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
