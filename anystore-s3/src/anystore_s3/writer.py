"""`open(key, "wb")` on S3: a multipart upload with several parts in flight, or one PutObject.

Written bytes collect in a buffer of one part. A value that never fills a part is sent as one
PutObject on close. A larger one starts a multipart upload when its first part is full and
uploads parts concurrently (`upload_concurrency` at once, so memory stays at about
`part_size x (upload_concurrency + 1)`); close sends the last part and completes the upload,
which is when the value appears, whole. A discarded write aborts the upload. A writer that is
killed leaves an incomplete upload (invisible, but billed), which `Store.cleanup()` aborts.

Each part carries its CRC32 in the `x-amz-checksum-crc32` header (computed here, so botocore
neither computes one on the event loop nor switches to an aws-chunked body), and the upload is
created with that algorithm: S3 checks every part on arrival and keeps a composite checksum of
the object. This is the request shape boto3's own transfer sends by default. Without it S3
computes a full-object CRC64NVME at completion, which moto (the test and benchmark server) does
over two copies of the whole value in one request: a quarter of its CPU time in the 200 MB
benchmark, and the whole gap to boto3 there. A service that refuses the algorithm when the upload
is created gets the upload without checksums; `upload_checksums=False` (the setting) leaves them
out from the start.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from anystore_s3.errors import Missing, Runner, error_code

# S3 takes at most 10,000 parts: parts double in size every PARTS_PER_SIZE of them, so that
# the 5 MiB default reaches S3's 5 TiB object limit.
PARTS_PER_SIZE = 1000


class MultipartTarget:
    """The target of a `WriteHandle`: `write` buffers and uploads, `complete` or `abort` ends it.

    `call(method, **arguments)` is the backend's coroutine for an S3 request on the bucket;
    `run` runs one on the client's loop (translating errors), `submit` schedules one there.
    """

    def __init__(
        self,
        full: str,
        extra: Callable[[], dict[str, Any]],
        call: Callable[..., Awaitable[Any]],
        run: Runner,
        submit: Callable[[Awaitable[Any]], concurrent.futures.Future[Any]],
        wait: Callable[[concurrent.futures.Future[Any]], Any],
        part_size: int,
        concurrency: int,
        checksums: bool = True,
    ) -> None:
        self._full = full
        self._extra = extra
        self._call = call
        self._run = run
        self._submit = submit
        self._wait = wait
        self._part_size = part_size
        self._concurrency = concurrency
        self._checksums = checksums
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._upload_id: str | None = None
        # (the part as CompleteMultipartUpload lists it, less its ETag; its request)
        self._in_flight: list[tuple[dict[str, Any], concurrent.futures.Future[Any]]] = []
        self._done: list[dict[str, Any]] = []
        self._next_part = 1
        self.closed = False

    def write(self, data: Any) -> int:
        # Pieces are joined once per part: one allocation of a part's size, no regrowing buffer
        # (glibc keeps the freed blocks of a growing buffer, which shows as resident memory).
        piece = bytes(data)
        self._pending.append(piece)
        self._pending_size += len(piece)
        size = self._current_part_size()
        while self._pending_size >= size:
            self._send(self._take_pending(size))
            size = self._current_part_size()
        return len(piece)

    def flush(self) -> None:
        """Nothing to do: parts go out when they are full, the rest on close."""

    def complete(self) -> None:
        """Publish the value: one PutObject, or the last part and CompleteMultipartUpload."""
        self.closed = True
        if self._upload_id is None:
            body = self._take_pending()
            self._run(self._call("put_object", Key=self._full, Body=body, **self._extra()))
            return
        if self._pending_size:
            self._send(self._take_pending())
        while self._in_flight:
            self._collect()
        parts = sorted(self._done, key=lambda part: part["PartNumber"])
        self._run(
            self._call(
                "complete_multipart_upload",
                Key=self._full,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        )

    def abort(self) -> None:
        """Drop the upload; the stored value, if any, stays as it was."""
        self.closed = True
        self._take_pending()
        for _, future in self._in_flight:
            future.cancel()
        for _, future in self._in_flight:
            try:
                self._wait(future)
            except BaseException:
                pass  # a part that failed or was cancelled: the abort below drops them all
        self._in_flight = []
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._run(self._call("abort_multipart_upload", Key=self._full, UploadId=upload_id))
            except Missing:
                pass

    # -- parts ---------------------------------------------------------------------------------

    def _take_pending(self, size: int | None = None) -> bytes:
        """The first `size` pending bytes (all by default) as one bytes object. Only the piece
        that straddles the boundary is split, so a part costs one allocation of its size."""
        if size is None or size >= self._pending_size:
            data = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            return data
        taken: list[bytes] = []
        need = size
        while need:
            piece = self._pending.pop(0)
            if len(piece) > need:
                self._pending.insert(0, piece[need:])
                piece = piece[:need]
            taken.append(piece)
            need -= len(piece)
        self._pending_size -= size
        return b"".join(taken)

    def _current_part_size(self) -> int:
        return self._part_size << ((self._next_part - 1) // PARTS_PER_SIZE)

    def _send(self, data: bytes) -> None:
        # The checksum is taken before waiting for a free slot, so that it overlaps the parts in
        # flight (zlib releases the GIL; ~1 GB/s, 5 ms a part).
        if self._upload_id is None:
            self._upload_id = self._create()
        part: dict[str, Any] = {"PartNumber": self._next_part}
        if self._checksums:
            part["ChecksumCRC32"] = crc32(data)
        self._next_part += 1
        while len(self._in_flight) >= self._concurrency:
            self._collect()
        future = self._submit(
            self._call(
                "upload_part",
                Key=self._full,
                UploadId=self._upload_id,
                Body=io.BytesIO(data),
                **part,
            )
        )
        self._in_flight.append((part, future))
        if part["PartNumber"] == 1:
            # The first part lands before anything else goes: from then on the upload shows
            # activity, which cleanup() reads where a service reports no true start time.
            self._collect()

    def _create(self) -> str:
        """Start the multipart upload; its id. A service that refuses the checksum algorithm
        (400 or 501) gets the upload without checksums, as with `upload_checksums=False`."""

        async def create(**algorithm: str) -> Any:
            try:
                return await self._call(
                    "create_multipart_upload", Key=self._full, **algorithm, **self._extra()
                )
            except Exception as error:
                if algorithm and error_code(error)[1] in (400, 501):
                    return None
                raise

        response = self._run(create(ChecksumAlgorithm="CRC32")) if self._checksums else None
        if response is None:
            self._checksums = False
            response = self._run(create())
        return str(response["UploadId"])

    def _collect(self) -> None:
        """Wait for the oldest part in flight and record its ETag."""
        part, future = self._in_flight.pop(0)
        response = self._wait(future)
        self._done.append({**part, "ETag": response["ETag"]})


def crc32(data: bytes) -> str:
    """The CRC32 of `data` as S3 writes it: four big-endian bytes, base64."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
