"""File-like handles that `Store.open()` returns for writing: whole or nothing, on close.

A handle collects what is written (in a temporary file, so memory stays bounded) and publishes it
only when it is closed without an error. Leaving a `with` block through an exception, or calling
`discard()`, drops the write and leaves any old value in place.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

# Values up to this size stay in memory while spooling; larger ones go to a temporary file.
SPOOL_MAX_MEMORY = 8 * 1024 * 1024
# Chunk size for copying streams: large enough to be fast, small enough to keep memory flat.
CHUNK_SIZE = 1024 * 1024


class WriteHandle(io.BufferedIOBase):
    """A binary write handle over `target` that calls `commit(target)` on a clean close.

    `abort(target)` runs instead when the write is discarded. Both callbacks own `target`
    afterwards (they close or remove it).
    """

    def __init__(
        self,
        target: IO[bytes],
        commit: Callable[[IO[bytes]], None],
        abort: Callable[[IO[bytes]], None],
    ) -> None:
        super().__init__()
        self._target = target
        self._commit = commit
        self._abort = abort
        self._done = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed anystore handle")
        return self._target.write(data)

    def flush(self) -> None:
        if not self._done:
            self._target.flush()

    def close(self) -> None:
        """Publish the written value (atomically) and close the handle."""
        if self._done:
            return
        self._done = True
        try:
            self._commit(self._target)
        except BaseException:
            self._abort(self._target)
            raise
        finally:
            super().close()

    def discard(self) -> None:
        """Drop everything written so far; the stored value (if any) is left untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._abort(self._target)
        finally:
            super().close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # A handle that is garbage-collected unclosed was abandoned: never publish half a value.
        try:
            self.discard()
        except Exception:
            pass


class TextWriteHandle(io.TextIOWrapper):
    """Text mode over a `WriteHandle` that also drops the write when its block raises."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.buffer.discard()  # type: ignore[attr-defined]
        self.close()


def spooled_write_handle(publish: Callable[[IO[bytes]], None]) -> WriteHandle:
    """A handle that spools to memory/disk and calls `publish(file)` with the file at position 0."""

    def commit(spool: IO[bytes]) -> None:
        try:
            spool.seek(0)
            publish(spool)
        finally:
            spool.close()

    def abort(spool: IO[bytes]) -> None:
        spool.close()

    import tempfile

    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY)
    return WriteHandle(spool, commit, abort)  # type: ignore[arg-type]


def iter_lines(handle: IO[bytes]) -> Any:
    """Yield the lines of a binary handle without their line break, in bounded memory."""
    for line in handle:
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        yield line
