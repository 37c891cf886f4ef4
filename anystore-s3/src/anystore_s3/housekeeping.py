"""The TTL marker index, and `cleanup()`: what S3 keeps that no value owns.

Listings carry no metadata, so a TTL'd write also puts an empty marker
`.~anystore-ttl/<object key>/<expiry in ms>` at the bucket's root; a listing reads the markers
under its prefix and hides keys whose TTL has passed. An expired object is deleted only with
`If-Match` on the ETag that showed it expired (so a value rewritten meanwhile is never lost);
its markers go with it.

A writer killed inside `open(key, "wb")` leaves an incomplete multipart upload: invisible, but
S3 keeps (and bills) its parts until it is aborted. `cleanup(older_than)` aborts the uploads under
the store's prefix with no activity (start, or last part uploaded) for `older_than` seconds,
deletes condition-probe scratch objects as old, and sweeps expired objects and spent markers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from anystore.keys import RESERVED_PREFIX
from anystore_s3.conditional import PROBE_PREFIX
from anystore_s3.errors import Missing
from anystore_s3.metadata import expired

T = TypeVar("T")
TTL_INDEX = RESERVED_PREFIX + "-ttl/"
# What a TTL marker adds to an object key: the index prefix, "/" and a 13-digit stamp (the lock
# name's `.~anystore-lock~` is shorter).
MARKER_BYTES = len(TTL_INDEX) + 1 + 13


class Housekeeping:
    """Mixed into `S3Backend`, which provides the attributes declared here."""

    bucket: str
    _prefix: str
    _honours_conditions: Callable[[], bool]  # from ConditionalRequests

    async def _call(self, method: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    if TYPE_CHECKING:  # from ConditionalRequests (a stub here would shadow it in the MRO)

        async def _delete_if_unchanged(self, full: str, etag: str) -> bool: ...

    def _run(self, awaitable: Awaitable[T]) -> T:
        raise NotImplementedError

    def _pages(self, prefix: str) -> Iterator[list[str]]:
        raise NotImplementedError

    async def _delete_objects(self, fulls: list[str]) -> None:
        raise NotImplementedError

    # -- TTL markers ---------------------------------------------------------------------------

    def _expired_keys(self, scan: str) -> set[str]:
        """Object keys starting with `scan` whose TTL has passed (see the module docstring)."""
        return self._sweep(scan)[0]

    def _sweep(self, scan: str) -> tuple[set[str], int]:
        """(keys under `scan` whose TTL passed, how many objects and markers were removed)."""
        markers: dict[str, list[tuple[int, str]]] = {}
        for page in self._pages(TTL_INDEX + scan):
            for marker in page:
                full, _, stamp = marker[len(TTL_INDEX) :].rpartition("/")
                if stamp.isdigit():
                    markers.setdefault(full, []).append((int(stamp), marker))
        now_ms = time.time() * 1000
        hidden: set[str] = set()
        spent: list[str] = []
        removed = 0
        for full, stamps in markers.items():
            if len(stamps) == 1 and stamps[0][0] > now_ms:
                continue  # one live TTL: nothing to look at
            # Several markers (rewrites) or a passed one: the object's own metadata decides.
            response = self._run(self._head_any(full))
            if response is not None and expired(response.get("Metadata"), now_ms / 1000):
                hidden.add(full)
                # An endpoint that ignores conditions keeps it (hidden by its markers):
                # deleting blindly could drop a value written in between.
                if not self._honours_conditions() or not self._run(
                    self._delete_if_unchanged(full, str(response["ETag"]))
                ):
                    continue  # kept: its markers keep hiding it
                removed += 1
            spent.extend(marker for stamp, marker in stamps if stamp <= now_ms)
        if spent:
            self._run(self._delete_objects(spent))
        return hidden, removed + len(spent)

    async def _head_any(self, full: str) -> dict[str, Any] | None:
        """HEAD `full`, expired or not; None if it is missing."""
        try:
            return await self._call("head_object", Bucket=self.bucket, Key=full)  # type: ignore[no-any-return]
        except Missing:
            return None

    # -- cleanup -------------------------------------------------------------------------------

    def cleanup(self, older_than: float) -> int:
        """Abort multipart uploads under the prefix idle for `older_than` seconds, delete probe
        objects as old, expired objects and spent TTL markers. Return how many of these went."""
        cutoff = time.time() - older_than
        aborted = self._run(self._abort_idle_uploads(cutoff))
        probes = self._run(self._delete_old_probes(cutoff))
        return aborted + probes + self._sweep(self._prefix)[1]

    async def _delete_old_probes(self, cutoff: float) -> int:
        """Delete the scratch objects of condition probes that a crash left, by their age."""
        response = await self._call(
            "list_objects_v2", Bucket=self.bucket, Prefix=self._prefix + PROBE_PREFIX
        )
        old = [
            item["Key"]
            for item in response.get("Contents", [])
            if item["LastModified"].timestamp() < cutoff
        ]
        for key in old:
            await self._call("delete_object", Bucket=self.bucket, Key=key)
        return len(old)

    async def _abort_idle_uploads(self, cutoff: float) -> int:
        aborted = 0
        markers: dict[str, str] = {}
        while True:
            response = await self._call(
                "list_multipart_uploads", Bucket=self.bucket, Prefix=self._prefix, **markers
            )
            for upload in response.get("Uploads", []):
                key, upload_id = upload["Key"], upload["UploadId"]
                if await self._last_activity(key, upload_id, upload["Initiated"]) > cutoff:
                    continue  # a write in progress, or one too young to call abandoned
                try:
                    await self._call(
                        "abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except Missing:
                    continue  # completed or aborted meanwhile
                aborted += 1
            if not response.get("IsTruncated"):
                return aborted
            markers = {
                "KeyMarker": response.get("NextKeyMarker", ""),
                "UploadIdMarker": response.get("NextUploadIdMarker", ""),
            }

    async def _last_activity(self, key: str, upload_id: str, initiated: datetime) -> float:
        """When the upload started or last received a part (seconds since the epoch). The parts
        count too: some services (moto) report a fixed, ancient start time."""
        latest = initiated.timestamp()
        marker: dict[str, Any] = {}
        while True:
            try:
                response = await self._call(
                    "list_parts", Bucket=self.bucket, Key=key, UploadId=upload_id, **marker
                )
            except Missing:
                return latest
            for part in response.get("Parts", []):
                latest = max(latest, part["LastModified"].timestamp())
            if not response.get("IsTruncated"):
                return latest
            marker = {"PartNumberMarker": response.get("NextPartNumberMarker", 0)}
