"""Conditional requests: what makes locks and `pop` atomic on S3.

`PutObject` with `If-None-Match: *` creates an object only if the name is free, and
`DeleteObject` with `If-Match: <etag>` deletes it only if nobody rewrote it since it was read.
AWS S3 honours both; some S3-compatible services ignore them, which would make a lock or a pop
silently non-exclusive. So each store checks once, with a scratch object, before relying on them:
locks are then refused (`NotSupported`) and `pop` falls back to read-then-delete.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from anystore.exceptions import ConcurrentModification, NotSupported
from anystore.keys import LOCK_PREFIX, lock_name
from anystore_s3.errors import Missing, Refused, Unsupported
from anystore_s3.metadata import EXPIRES, LOCK_TOKEN, expired

T = TypeVar("T")
# The scratch objects of `_honours_conditions`, beside the store's values (a crash can leave one).
PROBE_PREFIX = LOCK_PREFIX + "probe-"
# A pop whose object keeps being rewritten between its GET and its DELETE gives up after this.
POP_ATTEMPTS = 10


class ConditionalRequests:
    """Mixed into `S3Backend`, which provides the attributes declared here."""

    supports_locks = True
    atomic_pop = True
    bucket: str
    where: str
    _prefix: str
    _conditions_honoured: bool | None

    async def _call(self, method: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _run(self, awaitable: Awaitable[T]) -> T:
        raise NotImplementedError

    async def _fetch(self, full: str) -> tuple[bytes | None, dict[str, Any]] | None:
        raise NotImplementedError

    # -- locks ---------------------------------------------------------------------------------

    def acquire_lock(self, name: str, token: str, ttl: float) -> bool:
        if not self._honours_conditions():
            raise NotSupported(
                f"S3 {self.where} ignores conditional requests (If-None-Match / If-Match), so a "
                "lock there would not be exclusive; keep locks in another store (Redis, SQL)."
            )
        return self._run(self._take_lock(self._prefix + lock_name(name), token, ttl))

    def release_lock(self, name: str, token: str) -> bool:
        return self._run(self._drop_lock(self._prefix + lock_name(name), token))

    async def _take_lock(self, full: str, token: str, ttl: float) -> bool:
        for _ in range(2):
            metadata = {EXPIRES: repr(time.time() + ttl), LOCK_TOKEN: token}
            if await self._put_if_absent(full, token.encode(), metadata):
                return True
            try:
                held = await self._call("head_object", Bucket=self.bucket, Key=full)
            except Missing:
                continue
            if not expired(held.get("Metadata"), time.time()):
                return False
            # Break the expired lock; if another process broke it first, the PUT decides.
            await self._delete_if_unchanged(full, held["ETag"])
        return False

    async def _drop_lock(self, full: str, token: str) -> bool:
        try:
            held = await self._call("head_object", Bucket=self.bucket, Key=full)
        except Missing:
            return False
        metadata = held.get("Metadata") or {}
        if metadata.get(LOCK_TOKEN) != token:
            return False
        deleted = await self._delete_if_unchanged(full, held["ETag"])
        return deleted and not expired(metadata, time.time())

    # -- pop -----------------------------------------------------------------------------------

    _pop_fallback = threading.Lock()

    def pop(self, key: str) -> bytes | None:
        if self._honours_conditions():
            return self._run(self._pop(self._prefix + key))
        # Read-then-delete; serialised within this process at least.
        with self._pop_fallback:
            data: bytes | None = self.read(key)  # type: ignore[attr-defined]
            if data is not None:
                self.delete(key)  # type: ignore[attr-defined]
            return data

    async def _pop(self, full: str) -> bytes | None:
        """GET, then DELETE only that version: of two racing pops, one gets the value."""
        for _ in range(POP_ATTEMPTS):
            fetched = await self._fetch(full)
            if fetched is None:
                return None
            data, response = fetched
            if await self._delete_if_unchanged(full, response["ETag"]):
                return data  # None for an expired value, now deleted too
            # Popped by someone else, or rewritten meanwhile: look again.
        raise ConcurrentModification(
            f"Could not pop {full!r} from S3 {self.where}: it was rewritten {POP_ATTEMPTS} times "
            "between reading and deleting it"
        )

    # -- the requests --------------------------------------------------------------------------

    async def _put_if_absent(self, full: str, data: bytes, metadata: dict[str, str]) -> bool:
        try:
            await self._call(
                "put_object",
                Bucket=self.bucket,
                Key=full,
                Body=data,
                Metadata=metadata,
                IfNoneMatch="*",
            )
        except (Refused, FileExistsError):
            return False
        return True

    async def _delete_if_unchanged(self, full: str, etag: str) -> bool:
        try:
            await self._call("delete_object", Bucket=self.bucket, Key=full, IfMatch=etag)
        except (Missing, Refused):
            return False
        return True

    def _honours_conditions(self) -> bool:
        """Check once per store, with a scratch object, that the endpoint honours conditions."""
        if self._conditions_honoured is None:
            probe = f"{self._prefix}{PROBE_PREFIX}{secrets.token_hex(8)}"
            self._conditions_honoured = self._run(self._probe(probe))
        return self._conditions_honoured

    async def _probe(self, probe: str) -> bool:
        try:
            first = await self._put_if_absent(probe, b"1", {})
            second = await self._put_if_absent(probe, b"2", {})
            wrong_etag = '"00000000000000000000000000000000"'
            deleted_anyway = await self._delete_if_unchanged(probe, wrong_etag)
        except Unsupported:
            return False
        finally:
            await self._call("delete_object", Bucket=self.bucket, Key=probe)
        return first and not second and not deleted_anyway
