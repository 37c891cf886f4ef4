"""`s3://bucket[/prefix]`: values as S3 objects, through aiobotocore (s3fs's loop and client).

A key is the object `<prefix>/<key>` in the bucket, named literally: every request passes the key
as the API's `Key` parameter, never through a path or URL parser, so `?`, `#`, `%`, `;`, spaces
and unicode are plain characters of the name. `put` is one PutObject; `open(key, "wb")` is a
multipart upload with concurrent parts (`writer.py`); `open(key, "rb")` one streaming GET, ranged
GETs pinned to its ETag after a seek (`reader.py`). A TTL is stored with the object (metadata
`anystore-expires`, checked on every read from the same response, so `get` stays one request)
and, for listings (which carry no metadata), as an empty marker object
`.~anystore-ttl/<object key>/<expiry in ms>` at the bucket's root (`housekeeping.py`). Batch
calls run concurrently; deletes go out as DeleteObjects of up to 1000 keys. Clients are shared
between stores with equal connection settings (`client.py`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import mimetypes
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

from fsspec.asyn import sync

from anystore.backend import Backend, BackendStat
from anystore.exceptions import AnystoreError, BackendUnavailable, ReadOnly, mask_uri
from anystore.io import CHUNK_SIZE, WriteHandle
from anystore.keys import normalize_prefix
from anystore.settings import load_settings
from anystore_s3.client import (
    Connection,
    acquire,
    environment_fingerprint,
    release,
    session_client,
    split_credentials,
)
from anystore_s3.conditional import ConditionalRequests
from anystore_s3.errors import Denied, Missing, Refused, Unsupported, translate
from anystore_s3.housekeeping import MARKER_BYTES, TTL_INDEX, Housekeeping
from anystore_s3.metadata import EXPIRES, expired
from anystore_s3.reader import ObjectReader
from anystore_s3.settings import S3Settings
from anystore_s3.writer import MultipartTarget

DELETE_BATCH = 1000
PAGE = 1000
# S3's limit on an object name, in UTF-8 bytes.
S3_KEY_BYTES = 1024

T = TypeVar("T")


class S3Backend(Housekeeping, ConditionalRequests, Backend):
    """Moves bytes to and from one bucket, below an optional prefix.

    Options (keywords of `get_store()`, else `ANYSTORE_S3_*`, else the AWS environment): see
    `anystore_s3.settings.S3Settings`. Credentials may also be given in the URI
    (`s3://KEY:SECRET@bucket`) or the endpoint URL (`http://KEY:SECRET@host:port`).
    Raises `BackendUnavailable` when the bucket does not exist or cannot be reached.
    """

    supports_ttl = True  # expiry metadata on the object, checked by every read and listing

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(mask_uri(uri))
        settings = load_settings(S3Settings, options)
        location = uri.partition("://")[2]
        head, _, prefix = location.partition("/")
        uri_key, uri_secret = split_credentials(f"s3://{head}")[1:]
        self.bucket = head.rpartition("@")[2]
        if not self.bucket:
            raise AnystoreError(f"{mask_uri(uri)!r} names no bucket: use s3://bucket[/prefix]")
        prefix = normalize_prefix(prefix)
        self._prefix = prefix + "/" if prefix else ""
        endpoint = (
            settings.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        endpoint, endpoint_key, endpoint_secret = (
            split_credentials(endpoint) if endpoint else (None, None, None)
        )
        self.endpoint = endpoint
        self.where = f"bucket {self.bucket!r} at {endpoint or 'AWS'}"
        # The object name, its TTL marker and its lock name must all fit S3's 1024 bytes.
        self.max_key_bytes = S3_KEY_BYTES - MARKER_BYTES - len(self._prefix.encode())
        self.max_concurrency = settings.max_concurrency
        self.part_size = settings.part_size
        self.upload_concurrency = settings.upload_concurrency
        self.upload_checksums = settings.upload_checksums
        self._conditions_honoured: bool | None = None
        key = settings.access_key_id or uri_key or endpoint_key
        self._connection = Connection(
            endpoint_url=endpoint,
            region=settings.region,
            key=key,
            secret=settings.secret_access_key or uri_secret or endpoint_secret,
            token=settings.session_token,
            anon=settings.anon,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_attempts=settings.max_attempts,
            max_pool_connections=max(10, settings.max_concurrency),
            environment=environment_fingerprint(),
        )
        self.fs = acquire(self._connection)
        self._release = weakref.finalize(self, release, self._connection, self.fs)
        # Fail now, clearly, rather than on the first read.
        try:
            self._run(self._check_bucket())
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Give the shared client back (the last store using it drops it)."""
        self._release()

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine on the client's event loop, translating its errors into anystore's."""
        result: T = self._guard(lambda: sync(self.fs.loop, lambda: awaitable))
        return result

    def _guard(self, action: Callable[[], T]) -> T:
        """Call `action`, translating client errors into anystore's (`Missing`, `Refused` and
        `Unsupported` stay, for the callers that act on them)."""
        try:
            return action()
        except (AnystoreError, Missing, Refused, Unsupported):
            raise
        except Denied as error:
            raise BackendUnavailable(
                f"S3 {self.where} refused access (check the credentials and policy): {error}"
            ) from None
        except Exception as error:
            translated = translate(error, "a request", self.bucket, self.where)
            if translated is error:
                raise
            raise translated from None

    async def _call(self, method: str, **kwargs: Any) -> Any:
        """One S3 request with the keys as given (never parsed as paths or URLs)."""
        client = await session_client(self.fs)
        try:
            return await getattr(client, method)(**kwargs)
        except Exception as error:
            raise translate(error, method, self.bucket, self.where) from None

    def _submit(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(awaitable, self.fs.loop)  # type: ignore[arg-type]

    def _close_soon(self, body: Any) -> None:
        """Close a response body from any thread (aiohttp objects belong to their loop)."""
        try:
            self.fs.loop.call_soon_threadsafe(body.close)
        except RuntimeError:
            pass  # the loop is gone (interpreter exit): so is the connection

    async def _gather(self, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(job: Callable[[], Awaitable[T]]) -> T:
            async with limit:
                return await job()

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def _check_bucket(self) -> None:
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except Missing:
            raise BackendUnavailable(f"S3 {self.where} does not exist") from None

    # -- single objects ----------------------------------------------------------------------

    async def _get(self, full: str) -> bytes | None:
        fetched = await self._fetch(full)
        return None if fetched is None else fetched[0]

    async def _fetch(self, full: str) -> tuple[bytes | None, dict[str, Any]] | None:
        """GET `full`: None if it is missing, else (its bytes, or None if expired; the response)."""
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=full)
        except Missing:
            return None
        body = response["Body"]
        try:
            if expired(response.get("Metadata"), time.time()):
                return None, response
            return await body.read(), response
        finally:
            body.close()

    async def _head(self, full: str) -> dict[str, Any] | None:
        """HEAD `full`: None if it is missing or expired. A HEAD answers 404 without a body for a
        missing bucket too, so a miss asks whether the bucket is still there."""
        try:
            response = await self._call("head_object", Bucket=self.bucket, Key=full)
        except Missing:
            await self._check_bucket()
            return None
        return None if expired(response.get("Metadata"), time.time()) else response

    async def _put(self, full: str, data: bytes, ttl: float | None) -> None:
        extra = self._put_arguments(full, ttl)
        jobs = [self._call("put_object", Bucket=self.bucket, Key=full, Body=data, **extra)]
        if ttl:
            jobs.append(self._put_marker(full, extra))
        await asyncio.gather(*jobs)

    async def _put_marker(self, full: str, extra: dict[str, Any]) -> None:
        marker = f"{TTL_INDEX}{full}/{int(float(extra['Metadata'][EXPIRES]) * 1000)}"
        await self._call("put_object", Bucket=self.bucket, Key=marker, Body=b"")

    def _put_arguments(self, full: str, ttl: float | None) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "ContentType": mimetypes.guess_type(full)[0] or "application/octet-stream"
        }
        if ttl:
            extra["Metadata"] = {EXPIRES: repr(time.time() + ttl)}
        return extra

    async def _delete_objects(self, fulls: list[str]) -> None:
        for start in range(0, len(fulls), DELETE_BATCH):
            batch = [{"Key": key} for key in fulls[start : start + DELETE_BATCH]]
            await self._call(
                "delete_objects", Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )

    # -- primitives --------------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        return self._run(self._get(self._prefix + key))

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        self._writing(self._put(self._prefix + key, data, ttl))

    def _writing(self, awaitable: Awaitable[T] | Callable[[], T]) -> T:
        try:
            if callable(awaitable):
                return self._guard(awaitable)
            return self._run(awaitable)
        except BackendUnavailable as error:
            if "refused access" in str(error):
                raise ReadOnly(str(error)) from None
            raise

    def delete(self, key: str) -> None:
        full = self._prefix + key
        self._run(self._call("delete_object", Bucket=self.bucket, Key=full))

    def stat(self, key: str) -> BackendStat | None:
        response = self._run(self._head(self._prefix + key))
        if response is None:
            return None
        modified: datetime = response["LastModified"]
        expires = (response.get("Metadata") or {}).get(EXPIRES)
        return BackendStat(
            size=int(response["ContentLength"]),
            # S3 replaces an object on every write and keeps no creation time of its own.
            created_at=modified,
            updated_at=modified,
            mimetype=response.get("ContentType"),
            expires_at=datetime.fromtimestamp(float(expires), timezone.utc) if expires else None,
        )

    def exists(self, key: str) -> bool:
        return self._run(self._head(self._prefix + key)) is not None

    def list_keys(self, prefix: str) -> Iterator[str]:
        # One listing by string prefix (Store keeps whole segments and hides reserved names);
        # its first page is on the way while the TTL index is read.
        base = self._prefix + prefix
        start = len(self._prefix)
        first = self._submit(self._call("list_objects_v2", **self._listing(base, None)))
        try:
            hidden = self._expired_keys(base)
        except BaseException:
            first.cancel()
            raise
        # S3 lists in byte order: past `<base>0` ("/" + 1) nothing is `base` or below it.
        beyond = base + "0" if prefix else None
        for page in self._pages(base, first):
            for full in page:
                if beyond is not None and full >= beyond:
                    return
                if full not in hidden:
                    yield full[start:]

    def _listing(self, prefix: str, token: str | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": PAGE}
        if token:
            arguments["ContinuationToken"] = token
        return arguments

    def _pages(
        self, prefix: str, first: concurrent.futures.Future[Any] | None = None
    ) -> Iterator[list[str]]:
        """Object keys under `prefix`, one ListObjectsV2 page at a time, as pages arrive
        (`first`: the first page's request, already sent)."""
        token = None
        while True:
            if first is not None:
                response = self._guard(first.result)
                first = None
            else:
                response = self._run(self._call("list_objects_v2", **self._listing(prefix, token)))
            yield [item["Key"] for item in response.get("Contents", [])]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return

    # -- batches, concurrently ---------------------------------------------------------------

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        fulls = [self._prefix + key for key in keys]
        values = self._run(self._gather([self._getter(full) for full in fulls]))
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                yield key, value

    def _getter(self, full: str) -> Callable[[], Awaitable[bytes | None]]:
        return lambda: self._get(full)

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        jobs = [lambda k=k, d=d: self._put(self._prefix + k, d, ttl) for k, d in items]
        self._writing(self._gather(jobs))

    def delete_many(self, keys: Iterable[str]) -> None:
        self._run(self._delete_objects([self._prefix + key for key in keys]))

    # -- streams -----------------------------------------------------------------------------

    def open_read(self, key: str) -> IO[bytes] | None:
        full = self._prefix + key
        response = self._run(self._open_get(full))
        if response is None:
            return None

        def get(**arguments: Any) -> Awaitable[dict[str, Any]]:
            return self._call("get_object", Bucket=self.bucket, Key=full, **arguments)

        reader = ObjectReader(response, self._run, get, self._close_soon, key)
        return io.BufferedReader(reader, buffer_size=CHUNK_SIZE)

    async def _open_get(self, full: str) -> dict[str, Any] | None:
        """The GET whose body a read handle streams: None if missing or expired."""
        try:
            response: dict[str, Any] = await self._call("get_object", Bucket=self.bucket, Key=full)
        except Missing:
            return None
        if expired(response.get("Metadata"), time.time()):
            response["Body"].close()
            return None
        return response

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        full = self._prefix + key
        extra = self._put_arguments(full, ttl)

        def fresh_arguments() -> dict[str, Any]:
            # Made when the first request goes out (at close for a value below part_size), so
            # that a TTL counts from the write, not from open(); the marker then uses the same.
            extra.update(self._put_arguments(full, ttl))
            return extra

        def call(method: str, **arguments: Any) -> Awaitable[Any]:
            return self._call(method, Bucket=self.bucket, **arguments)

        target = MultipartTarget(
            full,
            fresh_arguments,
            call,
            self._run,
            self._submit,
            lambda future: self._guard(future.result),
            self.part_size,
            self.upload_concurrency,
            self.upload_checksums,
        )

        def commit(target: Any) -> None:
            self._writing(target.complete)
            if ttl:
                self._run(self._put_marker(full, extra))

        def abort(target: Any) -> None:
            target.abort()

        return WriteHandle(target, commit, abort)  # type: ignore[arg-type]
