"""`s3://bucket[/prefix]`: values as S3 objects, through s3fs (async underneath).

A key is the object `<prefix>/<key>` in the bucket. `put` is one PutObject; `open(key, "wb")`
streams a multipart upload in 5 MiB parts. A TTL is stored with the object (metadata
`anystore-expires`, checked on every read from the same response, so `get` stays one request)
and, for listings (which carry no metadata), as an empty marker object
`.~anystore-ttl/<object key>/<expiry in ms>` at the bucket's root. Batch calls run concurrently;
deletes go out as DeleteObjects of up to 1000 keys.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any, TypeVar

from botocore.exceptions import BotoCoreError
from fsspec.asyn import sync

from anystore.backend import Backend, BackendStat
from anystore.exceptions import AnystoreError, BackendUnavailable, ReadOnly
from anystore.io import WriteHandle
from anystore.keys import RESERVED_PREFIX, is_reserved, normalize_prefix
from anystore.settings import load_settings
from anystore_s3.conditional import ConditionalRequests
from anystore_s3.metadata import EXPIRES, expired
from anystore_s3.settings import S3Settings

TTL_INDEX = RESERVED_PREFIX + "-ttl/"
PART_SIZE = 5 * 1024 * 1024
DELETE_BATCH = 1000
PAGE = 1000

T = TypeVar("T")


class S3Backend(ConditionalRequests, Backend):
    """Moves bytes to and from one bucket, below an optional prefix.

    Options (keywords of `get_store()`, else `ANYSTORE_S3_*`, else the AWS environment):
    `endpoint_url`, `region`, `access_key_id`, `secret_access_key`, `session_token`, `anon`,
    `connect_timeout`, `read_timeout`, `max_concurrency`.
    """

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        import s3fs

        settings = load_settings(S3Settings, options)
        path = uri.partition("://")[2]
        self.bucket, _, prefix = path.partition("/")
        if not self.bucket:
            raise AnystoreError(f"{uri!r} names no bucket: use s3://bucket[/prefix]")
        prefix = normalize_prefix(prefix)
        self._prefix = prefix + "/" if prefix else ""
        self.endpoint = (
            settings.endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.where = f"bucket {self.bucket!r} at {self.endpoint or 'AWS'}"
        self.max_concurrency = settings.max_concurrency
        self._conditions_honoured: bool | None = None
        client_kwargs: dict[str, Any] = {}
        if settings.region:
            client_kwargs["region_name"] = settings.region
        self.fs = s3fs.S3FileSystem(
            anon=settings.anon,
            key=settings.access_key_id,
            secret=settings.secret_access_key,
            token=settings.session_token,
            endpoint_url=self.endpoint,
            client_kwargs=client_kwargs,
            config_kwargs={
                "connect_timeout": settings.connect_timeout,
                "read_timeout": settings.read_timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
            use_listings_cache=False,
            skip_instance_cache=True,
        )
        self.fs.retries = 2  # s3fs's own retry loop, on top of botocore's: keep failures quick
        # Fail now, clearly, rather than with a FileNotFoundError on the first read.
        try:
            self._run(self._call("head_bucket", Bucket=self.bucket))
        except FileNotFoundError:
            raise BackendUnavailable(f"S3 {self.where} does not exist") from None

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine on s3fs's event loop, translating its errors into anystore's."""
        return self._guard(lambda: sync(self.fs.loop, lambda: awaitable))

    def _guard(self, action: Callable[[], T]) -> T:
        """Call `action`, translating s3fs/botocore errors into anystore's."""
        try:
            return action()
        except FileNotFoundError as error:
            if "NoSuchBucket" in repr(error):
                raise BackendUnavailable(f"S3 {self.where} does not exist") from None
            raise
        except PermissionError as error:
            raise BackendUnavailable(
                f"S3 {self.where} refused access (check the credentials and policy): {error}"
            ) from None
        except (OSError, asyncio.TimeoutError, BotoCoreError) as error:
            raise BackendUnavailable(f"S3 {self.where} is unavailable: {error}") from None

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self.fs._call_s3(method, **kwargs)

    async def _gather(self, jobs: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
        limit = asyncio.Semaphore(self.max_concurrency)

        async def one(job: Callable[[], Awaitable[T]]) -> T:
            async with limit:
                return await job()

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    # -- single objects ----------------------------------------------------------------------

    async def _get(self, full: str) -> bytes | None:
        fetched = await self._fetch(full)
        return None if fetched is None else fetched[0]

    async def _fetch(self, full: str) -> tuple[bytes | None, dict[str, Any]] | None:
        """GET `full`: None if it is missing, else (its bytes, or None if expired; the response)."""
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=full)
        except FileNotFoundError:
            return None
        body = response["Body"]
        try:
            if expired(response.get("Metadata"), time.time()):
                return None, response
            return await body.read(), response
        finally:
            body.close()

    async def _head(self, full: str) -> dict[str, Any] | None:
        try:
            response = await self._call("head_object", Bucket=self.bucket, Key=full)
        except FileNotFoundError:
            return None
        return None if expired(response.get("Metadata"), time.time()) else response

    async def _put(self, full: str, data: bytes, ttl: float | None) -> None:
        extra = self._put_arguments(full, ttl)
        jobs = [self._call("put_object", Bucket=self.bucket, Key=full, Body=data, **extra)]
        if ttl:
            marker = f"{TTL_INDEX}{full}/{int(float(extra['Metadata'][EXPIRES]) * 1000)}"
            jobs.append(self._call("put_object", Bucket=self.bucket, Key=marker, Body=b""))
        await asyncio.gather(*jobs)

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
        base = self._prefix + prefix
        start = len(self._prefix)
        hidden = self._expired_keys(base if prefix else self._prefix)
        if prefix:
            if base not in hidden and self.exists(prefix):
                yield prefix
            pages = self._pages(base + "/")
        else:
            pages = self._pages(self._prefix)
        for page in pages:
            for full in page:
                if full in hidden or is_reserved(full):
                    continue
                yield full[start:]

    def _pages(self, prefix: str) -> Iterator[list[str]]:
        """Object keys under `prefix`, one ListObjectsV2 page at a time, as pages arrive."""
        token = None
        while True:
            arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": PAGE}
            if token:
                arguments["ContinuationToken"] = token
            response = self._run(self._call("list_objects_v2", **arguments))
            yield [item["Key"] for item in response.get("Contents", [])]
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return

    def _expired_keys(self, scan: str) -> set[str]:
        """Object keys starting with `scan` whose TTL has passed, from the marker index (which
        ListObjects reads without fetching metadata). Expired objects and spent markers go."""
        markers: dict[str, list[tuple[int, str]]] = {}
        for page in self._pages(TTL_INDEX + scan):
            for marker in page:
                full, _, stamp = marker[len(TTL_INDEX) :].rpartition("/")
                if stamp.isdigit():
                    markers.setdefault(full, []).append((int(stamp), marker))
        now_ms = time.time() * 1000
        hidden: set[str] = set()
        spent: list[str] = []
        for full, stamps in markers.items():
            latest = max(stamp for stamp, _ in stamps)
            if len(stamps) == 1 and latest > now_ms:
                continue
            # Several markers (rewrites) or a passed one: the object's own metadata decides.
            if self._run(self._head(full)) is None:
                hidden.add(full)
                spent.append(full)
            spent.extend(marker for stamp, marker in stamps if stamp <= now_ms)
        if spent:
            self._run(self._delete_objects(spent))
        return hidden

    # -- batches, concurrently ---------------------------------------------------------------

    def read_many(self, keys: list[str]) -> Iterator[tuple[str, bytes]]:
        fulls = [self._prefix + key for key in keys]
        values = self._run(self._gather([lambda f=f: self._get(f) for f in fulls]))
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                yield key, value

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        jobs = [lambda k=k, d=d: self._put(self._prefix + k, d, ttl) for k, d in items]
        self._writing(self._gather(jobs))

    def delete_many(self, keys: Iterable[str]) -> None:
        self._run(self._delete_objects([self._prefix + key for key in keys]))

    # -- streams -----------------------------------------------------------------------------

    def open_read(self, key: str) -> IO[bytes] | None:
        full = self._prefix + key
        head = self._run(self._head(full))
        if head is None:
            return None
        return self.fs.open(
            f"{self.bucket}/{full}", "rb", block_size=PART_SIZE, size=head["ContentLength"]
        )

    def open_write(self, key: str, ttl: float | None = None) -> WriteHandle:
        full = self._prefix + key
        extra = self._put_arguments(full, ttl)
        handle = self.fs.open(f"{self.bucket}/{full}", "wb", block_size=PART_SIZE, **extra)

        def commit(target: Any) -> None:
            self._writing(target.close)
            if ttl:
                stamp = int(float(extra["Metadata"][EXPIRES]) * 1000)
                marker = f"{TTL_INDEX}{full}/{stamp}"
                self._run(self._call("put_object", Bucket=self.bucket, Key=marker, Body=b""))

        def abort(target: Any) -> None:
            target.discard()
            target.closed = True

        return WriteHandle(handle, commit, abort)
