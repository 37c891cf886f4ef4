"""File-like handles that `Store.open()` returns: writes whole or nothing, reads by range.

A write handle collects what is written (in a temporary file, so memory stays bounded) and
publishes it only when it is closed without an error. Leaving a `with` block through an exception,
or calling `discard()`, drops the write and leaves any old value in place. So does closing a
handle one of whose writes failed (the caller may have caught that error): the close raises
instead of publishing a value with a hole in it.

A read handle over a medium with range reads (`open_ranged`) fetches the value a range at a time,
is seekable, and fails with `ConcurrentModification` rather than return a short value.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import IO, Any

from anystore.exceptions import AnystoreError, ConcurrentModification

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
        self._failed: BaseException | None = None  # the error of a failed write, if any

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("write to a closed anystore handle")
        try:
            return self._target.write(data)
        except BaseException as error:
            # Part of the data may be gone (an upload part, a chunk): this handle can no longer
            # publish a whole value, whatever the caller does with the error.
            self._failed = error
            raise

    def flush(self) -> None:
        if not self._done:
            try:
                self._target.flush()
            except BaseException as error:
                self._failed = error
                raise

    def close(self) -> None:
        """Publish the written value (atomically) and close the handle."""
        if self._done:
            return
        failed = self._failed
        if failed is not None:
            self.discard()
            raise _not_published(failed)
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
        if not self._done:
            self._failed = None  # dropping is what a failed write calls for: nothing to raise
            self._commit, self._abort = self._abort, _leave
            self.close()

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # A handle that is garbage-collected unclosed was abandoned: never publish half a value.
        # At interpreter exit nothing is published either, but the abort is left out: a backend's
        # client thread may already be stopped, and an abort waiting for it would hang the exit
        # (what an abandoned write leaves, `Store.cleanup()` removes).
        if sys.is_finalizing():
            return
        try:
            self.discard()
        except Exception:
            pass


def _not_published(error: BaseException) -> AnystoreError:
    """What closing a handle after a failed write raises (the failure's type where it is ours)."""
    kind = type(error) if isinstance(error, AnystoreError) else AnystoreError
    try:
        refusal = kind(
            f"Nothing was published: an earlier write to this handle failed ({error}); the "
            "stored value, if any, is unchanged. Write the value again."
        )
    except Exception:  # an error class with another constructor
        refusal = AnystoreError(f"Nothing was published: an earlier write failed ({error})")
    refusal.__cause__ = error
    return refusal


def _leave(_: IO[bytes]) -> None:
    """The abort of a discarded handle: its own abort already ran as its commit."""


class TextWriteHandle(io.TextIOWrapper):
    """Text mode over a `WriteHandle` that also drops the write when its block raises."""

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
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
    return WriteHandle(spool, commit, abort)


def iter_lines(handle: IO[bytes]) -> Any:
    """Yield the lines of a binary handle without their line break, in bounded memory."""
    for line in handle:
        if line.endswith(b"\n"):
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        yield line


def seek_target(position: int, size: int | None, offset: int, whence: int) -> int:
    """Where `seek(offset, whence)` lands for a reader at `position` of a `size`-byte value.

    Raises ValueError for an unknown whence or a position before the start, as files do.
    """
    if whence == io.SEEK_SET:
        target = offset
    elif whence == io.SEEK_CUR:
        target = position + offset
    elif whence == io.SEEK_END:
        if size is None:
            raise io.UnsupportedOperation(
                "the size of this value is not known: no seek from its end"
            )
        target = size + offset
    else:
        raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
    if target < 0:
        raise ValueError(f"negative seek position {target}")
    return target


class SizedReader(io.RawIOBase):
    """A raw reader over a value of known `size` whose position is only a number: `seek` moves
    it (see `seek_target`), and a subclass's `_fetch` reads from it (`_release` on close)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # Only moves the position: the next read asks the medium for it.
        self._position = seek_target(self._position, self.size, offset, whence)
        return self._position

    def _fetch(self, length: int, rest: bool = False) -> bytes:
        """Up to `length` bytes at the position, moving past them; `rest`: the caller reads on
        to the end (a stream may keep going instead of asking for ranges)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Let go of what the reader holds (a connection, a body); runs once, on close."""

    def readinto(self, buffer: Any) -> int:
        data = self._fetch(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        # CHUNK_SIZE pieces, not io's default of 8 KiB per call (a query or a request each).
        chunks = []
        while chunk := self._fetch(CHUNK_SIZE, rest=True):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            try:
                self._release()
            finally:
                super().close()


class RangeReader(SizedReader):
    """A seekable raw reader over a value of `size` bytes that `read_range` fetches by ranges.

    `read_range(start, length)` returns the bytes `[start, start + length)` of the version the
    handle was opened on, or raises `ConcurrentModification` when that version is gone; a backend
    keeps it honest (a snapshot transaction, an `If-Match` on the first ETag, a version check).
    Fewer bytes than asked mean the value was cut short under the reader: that is an error too,
    never a silently short read. `on_close` releases what the reader holds (a connection).
    """

    def __init__(
        self,
        size: int,
        read_range: Callable[[int, int], bytes],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(size)
        self._read_range = read_range
        self._on_close = on_close

    def _fetch(self, length: int, rest: bool = False) -> bytes:
        length = min(length, self.size - self._position)
        if length <= 0:
            return b""
        data = self._read_range(self._position, length)
        if len(data) != length:
            raise ConcurrentModification(
                f"The value changed while it was read: expected {length} bytes at offset "
                f"{self._position}, got {len(data)}; open it again to read the current version"
            )
        self._position += length
        return data

    def _release(self) -> None:
        if self._on_close is not None:
            self._on_close()


def open_ranged(
    size: int,
    read_range: Callable[[int, int], bytes],
    on_close: Callable[[], None] | None = None,
) -> io.BufferedReader:
    """A buffered, seekable read handle over `RangeReader` (see there), reading 1 MiB ranges."""
    return io.BufferedReader(RangeReader(size, read_range, on_close), buffer_size=CHUNK_SIZE)


# 1.x code imports its URI helpers from `anystore.io` (`from anystore.io import smart_read`);
# they live in `anystore.smart` and are forwarded on first use, so this module stays light.
_SMART_NAMES = frozenset(
    {
        "smart_open",
        "smart_read",
        "smart_write",
        "smart_stream",
        "smart_stream_json",
        "smart_stream_csv",
        "smart_stream_models",
        "smart_stream_data",
        "smart_stream_json_models",
        "smart_stream_csv_models",
        "smart_write_json",
        "smart_write_csv",
        "smart_write_models",
        "smart_write_data",
        "smart_write_model",
        "get_virtual_path",
        "open_virtual",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SMART_NAMES:
        from anystore import smart

        return getattr(smart, name)
    raise AttributeError(f"module 'anystore.io' has no attribute {name!r}")
