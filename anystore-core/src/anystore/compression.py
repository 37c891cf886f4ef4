"""Compressed streams: one place that maps a codec name or file extension to a compressing writer
and a decompressing reader over a binary handle.

`Store.open(key, mode, compression=...)` and `anystore.smart.smart_open()` use it, and so do the
`gzip::`/`zstd::` layers. Every codec streams in bounded memory: a reader decompresses as it is
read, a writer compresses as it is written and publishes on a clean close (whole or nothing, like
every anystore write handle). Names: `gz`, `bz2`, `xz` (stdlib), `zst` (`[zstd]` extra), `lz4`
(`[lz4]` extra); `"infer"` picks one from the key's extension, or none.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from anystore.exceptions import AnystoreError, InvalidOption, NotSupported, SerializationError
from anystore.io import CHUNK_SIZE, WriteHandle, seek_target

COMPRESSIONS = ("gz", "bz2", "xz", "zst", "lz4")
# Other spellings people use for the same codecs (fsspec's names among them).
ALIASES = {"gzip": "gz", "bzip2": "bz2", "lzma": "xz", "zstd": "zst"}
EXTENSIONS = {
    ".gz": "gz",
    ".tgz": "gz",
    ".bz2": "bz2",
    ".xz": "xz",
    ".zst": "zst",
    ".zstd": "zst",
    ".lz4": "lz4",
}
# Levels: each codec's own default balance of speed and size (gzip 6 is what the gzip layer uses).
GZIP_LEVEL = 6
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class Codec:
    """How to wrap a binary handle for one compression format."""

    name: str
    reader: Callable[[IO[bytes]], Any]
    """A decompressing file object over a readable handle (it does not close the handle)."""
    writer: Callable[[IO[bytes]], Any]
    """A compressing file object over a writable handle; closing it writes the trailer only."""
    errors: tuple[type[BaseException], ...]
    """What the codec raises for data that is not its format."""


def resolve(compression: str | None, key: str = "") -> str | None:
    """The codec name for `compression` (None, a name, an alias, or "infer" from `key`).

    Raises `InvalidOption` for an unknown name.
    """
    if compression is None:
        return None
    name = ALIASES.get(compression, compression)
    if name in COMPRESSIONS:
        return name
    if compression == "infer":
        base = key.rpartition("/")[2].lower()
        dot = base.rfind(".")
        return EXTENSIONS.get(base[dot:]) if dot > 0 else None
    raise InvalidOption(
        f"Unknown compression {compression!r}: use one of {', '.join(COMPRESSIONS)}, "
        "'infer' (from the key's extension) or None"
    )


def codec(name: str) -> Codec:
    """The `Codec` for a resolved name. Raises `NotSupported` naming the extra to install."""
    if name == "gz":
        import gzip
        import zlib

        return Codec(
            "gz",
            lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
            lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0),
            (gzip.BadGzipFile, EOFError, zlib.error),
        )
    if name == "bz2":
        import bz2

        return Codec(
            "bz2",
            lambda raw: bz2.BZ2File(raw, "rb"),
            lambda raw: bz2.BZ2File(raw, "wb"),
            (OSError, EOFError),
        )
    if name == "xz":
        import lzma

        return Codec(
            "xz",
            lambda raw: lzma.LZMAFile(raw, "rb"),
            lambda raw: lzma.LZMAFile(raw, "wb", format=lzma.FORMAT_XZ),
            (lzma.LZMAError, EOFError),
        )
    if name == "zst":
        zstd = zstandard()
        return Codec(
            "zst",
            lambda raw: zstd.ZstdDecompressor().stream_reader(
                raw, closefd=False, read_across_frames=True
            ),
            lambda raw: zstd.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=False),
            (zstd.ZstdError,),
        )
    if name == "lz4":
        try:
            import lz4.frame  # type: ignore[import-untyped]
        except ImportError:
            raise NotSupported(
                'compression="lz4" needs the lz4 package: pip install "anystore-core[lz4]"'
            ) from None
        return Codec(
            "lz4",
            lambda raw: lz4.frame.LZ4FrameFile(raw, "rb"),
            lambda raw: lz4.frame.LZ4FrameFile(raw, "wb"),
            (RuntimeError, EOFError),
        )
    raise InvalidOption(f"Unknown compression {name!r}: use one of {', '.join(COMPRESSIONS)}")


def zstandard() -> Any:
    """The `zstandard` module, or `NotSupported` naming the `[zstd]` extra."""
    try:
        import zstandard
    except ImportError:
        raise NotSupported(
            'Zstandard compression needs the zstandard package: pip install "anystore-core[zstd]"'
        ) from None
    return zstandard


@contextmanager
def decoding(key: str, codec: Codec, hint: str) -> Iterator[None]:
    """Turn the codec's errors for foreign data into `SerializationError` (ours pass through)."""
    try:
        yield
    except AnystoreError:
        raise
    except codec.errors as error:
        raise SerializationError(
            f"The value at {key!r} is not {codec.name} data ({error}); {hint}"
        ) from error


class DecompressingReader(io.RawIOBase):
    """Decompresses `raw` as it is read, and closes it on close.

    Seeks by decompressing: forward from where it is, backward from the start (a seek on `raw`),
    to the end by reading through once unless `size` (the decompressed size) is known.
    """

    def __init__(
        self, raw: IO[bytes], codec: Codec, key: str, size: int | None = None, hint: str = ""
    ) -> None:
        super().__init__()
        self._raw, self._codec, self._key, self._size = raw, codec, key, size
        self._hint = hint or f"read it without compression={codec.name!r}"
        self._start = raw.tell() if raw.seekable() else 0
        self._stream = codec.reader(raw)
        self._position = 0

    def _restart(self) -> None:
        self._raw.seek(self._start)
        self._stream = self._codec.reader(self._raw)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._raw.seekable())

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        with decoding(self._key, self._codec, self._hint):
            count = int(self._stream.readinto(buffer))
        if count == 0 and len(buffer) and self._size is not None and self._position < self._size:
            # The header promised more: never hand out a value cut short as if it were whole.
            raise SerializationError(
                f"The compressed value at {self._key!r} ends after {self._position} of its "
                f"{self._size} bytes: it is cut short"
            )
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and self._size is None:
            while self.read(CHUNK_SIZE):
                pass
            self._size = self._position
        target = seek_target(self._position, self._size, offset, whence)
        if target < self._position:
            if not self._raw.seekable():
                raise io.UnsupportedOperation("cannot seek backwards in a stream that can't seek")
            self._restart()
        while self._position < target:
            if not self.read(min(CHUNK_SIZE, target - self._position)):
                self._position = target  # past the end, as files allow
        return self._position

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._stream.close()
        finally:
            try:
                self._raw.close()
            finally:
                super().close()


def reader(
    raw: IO[bytes], name: str, key: str = "", size: int | None = None, hint: str = ""
) -> io.BufferedReader:
    """A buffered reader of the decompressed bytes of `raw` (closed with it), in bounded memory.

    Foreign data raises `SerializationError` on the read that meets it (`hint` says what to do).
    """
    return io.BufferedReader(
        DecompressingReader(raw, codec(name), key, size, hint), buffer_size=CHUNK_SIZE
    )


class _Sink(io.RawIOBase):
    """Where a codec writes: forwards to the target handle until the write is discarded."""

    def __init__(self, target: WriteHandle) -> None:
        super().__init__()
        self.target = target
        self.discarded = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if not self.discarded:
            self.target.write(data)
        return len(data)


def writer(inner: WriteHandle, name: str) -> WriteHandle:
    """A write handle that compresses into `inner` and publishes it on a clean close.

    Discarding (an exception in the `with` block) discards `inner`: nothing is published.
    """
    sink = _Sink(inner)
    compressor = codec(name).writer(sink)  # type: ignore[arg-type]

    def commit(target: IO[bytes]) -> None:
        target.close()  # the codec's trailer goes into `inner`
        inner.close()  # publishes the value

    def abort(target: IO[bytes]) -> None:
        sink.discarded = True  # closing writes a trailer: let it go nowhere
        try:
            target.close()
        finally:
            inner.discard()

    return WriteHandle(compressor, commit, abort)
