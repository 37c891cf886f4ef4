"""`open(key, "rb")` on S3: one streaming GET, ranged GETs pinned to its ETag after a seek.

The handle starts on the body of the GET that opened it (one request, read as it arrives, so
memory stays bounded whatever the size). That GET serves one version whole. Whenever the handle
has to ask again (after a seek, or to resume a body that broke off), it sends a ranged GET with
`If-Match: <ETag of the first response>`: S3 answers 412 once the object was rewritten, 404 once
it was deleted, and the handle raises `ConcurrentModification` rather than return bytes of another
version. Endpoints that ignore `If-Match` are caught too: every response's ETag and total size
are compared with the first ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from anystore.exceptions import BackendUnavailable, ConcurrentModification
from anystore.io import SizedReader
from anystore_s3.errors import Missing, Refused, Runner

# A read after a seek fetches at least this much in one bounded range (a random-access reader
# pays one small request per seek, and the connection is reused); reading on past it streams
# the rest of the object.
SEEK_WINDOW = 1024 * 1024
# A body that breaks off mid-read (connection reset, read timeout) is resumed this many times.
RESUMES = 2


class ObjectReader(SizedReader):
    """A seekable raw reader over one version of one object (see the module docstring).

    `run` runs a coroutine on the client's loop and translates its errors; `get(**arguments)`
    is a coroutine that sends GetObject for this object and returns the response.
    """

    def __init__(
        self,
        response: dict[str, Any],
        run: Runner,
        get: Callable[..., Awaitable[dict[str, Any]]],
        close_soon: Callable[[Any], None],
        name: str,
    ) -> None:
        super().__init__(int(response["ContentLength"]))
        self.name = name
        self.etag = str(response["ETag"])
        self._run = run
        self._get = get
        self._close_soon = close_soon
        self._body: Any = response["Body"]
        self._body_at = 0  # the object offset the body continues at
        self._body_end = self.size  # where the body ends
        self._resumes = 0

    # -- fetching ------------------------------------------------------------------------------

    def _fetch(self, length: int, rest: bool = False) -> bytes:
        length = min(length, self.size - self._position)
        if length <= 0:
            return b""
        if self._body is None or self._body_at != self._position:
            self._reopen(self._range_end(length, rest))
        elif self._body_at >= self._body_end:
            self._reopen(self.size)  # reading on past a bounded range: stream the rest
        length = min(length, self._body_end - self._position)
        data = self._run(self._take(length))
        self._position += len(data)
        self._body_at = self._position
        if len(data) < length:
            # The body broke off (or ended early): ask again from here, pinned to the version.
            end = self._body_end
            self._drop_body()
            if self._resumes >= RESUMES:
                raise BackendUnavailable(
                    f"S3 stopped sending {self.name!r} at byte {self._position} of {self.size} "
                    f"({RESUMES + 1} attempts); open it again"
                )
            self._resumes += 1
            self._reopen(end)
            return data + self._fetch(length - len(data), rest)
        self._resumes = 0  # the limit is for breaks in a row, not over a long read's life
        return data

    def _range_end(self, length: int, rest: bool) -> int:
        """Where a new ranged GET from the current position should end."""
        if rest or self._body_end == self._position:  # all of it, or reading on
            return self.size
        return min(self.size, self._position + max(length, SEEK_WINDOW))

    async def _take(self, length: int) -> bytes:
        """Up to `length` bytes of the body; fewer only if it ended or broke off."""
        parts: list[bytes] = []
        left = length
        try:
            while left:
                part = await self._body.read(left)
                if not part:
                    break
                parts.append(part)
                left -= len(part)
        except Exception as error:
            # A connection reset, a read timeout, an aiohttp payload error: `_fetch` resumes.
            if not _broken_off(error):
                raise
        return b"".join(parts)

    def _reopen(self, end: int) -> None:
        """A ranged GET from the current position to `end`, pinned to the first ETag."""
        self._drop_body()
        start = self._position
        try:
            response = self._run(self._get(Range=f"bytes={start}-{end - 1}", IfMatch=self.etag))
        except (Refused, Missing):
            raise self._changed("was overwritten or deleted") from None
        if str(response.get("ETag")) != self.etag:  # an endpoint that ignores If-Match
            self._close_soon(response["Body"])
            raise self._changed("was overwritten")
        total = str(response.get("ContentRange", "")).rpartition("/")[2]
        if total.isdigit() and int(total) != self.size:
            self._close_soon(response["Body"])
            raise self._changed("changed size")
        self._body = response["Body"]
        self._body_at = start
        self._body_end = end

    def _changed(self, what: str) -> ConcurrentModification:
        return ConcurrentModification(
            f"{self.name!r} {what} after this handle opened it (at byte {self._position} of "
            f"{self.size}); open it again to read the current version"
        )

    def _release(self) -> None:
        self._drop_body()

    def _drop_body(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            self._close_soon(body)


def _broken_off(error: BaseException) -> bool:
    """Tell whether `error` means the response body stopped arriving (worth resuming)."""
    from botocore.exceptions import BotoCoreError

    return isinstance(error, (OSError, BotoCoreError, TimeoutError)) or type(
        error
    ).__module__.startswith("aiohttp")
