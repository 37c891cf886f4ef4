"""Smart IO: read and write one value by its full URI, on any backend.

    from anystore import smart_read, smart_write_json

    data = smart_read("s3://bucket/in/data.json")
    smart_write_json("./out/rows.jsonl", [{"a": 1}, {"a": 2}])

A URI is split into a store and a key by the backend that serves its scheme (`split_uri`, through
the plugin registry, so third-party schemes split their own way), the store is opened with
`get_store()` and the key read or written through `Store.open()`: streaming, in bounded memory,
a write published whole on a clean close. `"-"` is stdin for reading and stdout for writing. Keyword
options go to `get_store()` (`endpoint_url=` for S3, `ttl=`, ...). `get_virtual_path()` and
`Store.local_path()` give tools that need a real file a local path.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, overload

from anystore.exceptions import DoesNotExist, InvalidOption, ReadOnly
from anystore.io import CHUNK_SIZE, TextWriteHandle, WriteHandle, iter_lines

if TYPE_CHECKING:
    from pydantic import BaseModel

    from anystore.store import Store

M = TypeVar("M", bound="BaseModel")
T = TypeVar("T")
STDIO = "-"
Format = Literal["json", "csv"]
FORMAT_JSON: Format = "json"
FORMAT_CSV: Format = "csv"
_MODES = ("rb", "r", "wb", "w")
# Served through the generic fsspec backend for reading; a write would reach the web server as a
# PUT, which is refused here with a clear error instead.
READ_ONLY_SCHEMES = ("http", "https")


def split_uri(uri: str | os.PathLike[str]) -> tuple[str, str]:
    """Split the URI of one value into (store URI, key) the way its backend reads URIs.

    Layers stay with the store (`gzip::s3://b/a/x` is `x` in `gzip::s3://b/a`); a `file://` URI
    is percent-decoded into a path. Raises `BackendNotFound` for an unserved scheme, `InvalidKey`
    for a URI that names no value.
    """
    from anystore.backend import Backend
    from anystore.plugins import (
        check_mistyped_uri,
        find_backend,
        load_plugins,
        split_layers,
        uri_scheme,
    )

    typed = isinstance(uri, str)  # a pathlib.Path is a path, never a typo
    uri = os.fspath(uri)
    names, inner = split_layers(uri)
    load_plugins()
    if typed:
        check_mistyped_uri(inner)
    layers = "".join(f"{name}::" for name in names)
    if "://" in inner and uri_scheme(inner) in ("file", "local"):
        from urllib.parse import unquote

        inner = unquote(inner.partition("://")[2])
    factory = find_backend(inner).load()
    splitter = getattr(factory, "split_uri", Backend.split_uri)
    store_uri, key = splitter(inner)
    return layers + store_uri, key


def _as_given(uri: str | os.PathLike[str], store_uri: str) -> str | os.PathLike[str]:
    """The store URI `split_uri` gave, as a Path when the value's URI was one (never a typo)."""
    if isinstance(uri, str):
        return store_uri
    from pathlib import Path

    return Path(store_uri)


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise InvalidOption(f"Unsupported mode {mode!r}: use 'rb', 'r', 'wb' or 'w'")


class _Unclosing(io.RawIOBase):
    """stdin/stdout bytes, passed through; closing leaves the process's stream open."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return bool(self._stream.readable())

    def writable(self) -> bool:
        return bool(self._stream.writable())

    def readinto(self, buffer: Any) -> int:
        read = getattr(self._stream, "read1", None) or self._stream.read
        data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        self._stream.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed and self._stream.writable():
            self._stream.flush()
        super().close()


def _stdio(mode: str, compression: str | None) -> IO[Any]:
    from anystore import compression as codecs

    codec = codecs.resolve(compression if compression != "infer" else None)
    if mode in ("rb", "r"):
        handle: IO[bytes] = io.BufferedReader(_Unclosing(sys.stdin.buffer), CHUNK_SIZE)
        if codec is not None:
            handle = codecs.reader(handle, codec, STDIO)
        return handle if mode == "rb" else io.TextIOWrapper(handle, encoding="utf-8")
    raw = _Unclosing(sys.stdout.buffer)
    writer = WriteHandle(raw, lambda target: target.close(), lambda target: target.close())  # type: ignore[arg-type]
    if codec is not None:
        writer = codecs.writer(writer, codec)
    if mode == "wb":
        return writer  # type: ignore[return-value]
    return TextWriteHandle(writer, encoding="utf-8")  # type: ignore[arg-type]


@contextmanager
def smart_open(
    uri: str | os.PathLike[str],
    mode: str = "rb",
    compression: str | None = None,
    **options: Any,
) -> Iterator[IO[Any]]:
    """Open the value at `uri` like `Store.open()`: `rb`, `r`, `wb`, `w`; `"-"` is stdin/stdout.

    `compression` is `gz`, `bz2`, `xz`, `zst`, `lz4` or `infer` (from the extension). A write is
    published when the block ends cleanly, and dropped when it raises. Raises `DoesNotExist` for
    reading a missing value, `InvalidOption`, `InvalidKey`, `BackendNotFound`, `ReadOnly`.
    """
    _check_mode(mode)
    if os.fspath(uri) == STDIO:
        with _stdio(mode, compression) as handle:
            yield handle
        return
    from anystore.store import get_store

    store_uri, key = split_uri(uri)
    if mode in ("wb", "w") and store_uri.partition("://")[0].lower() in READ_ONLY_SCHEMES:
        raise ReadOnly(f"Cannot write {os.fspath(uri)}: web servers are read-only for anystore")
    store = get_store(_as_given(uri, store_uri), **options)
    try:
        with store.open(key, mode, compression=compression) as handle:  # type: ignore[call-overload]
            yield handle
    finally:
        store.close()


@overload
def smart_read(
    uri: str | os.PathLike[str],
    mode: Literal["rb"] = "rb",
    compression: str | None = None,
    **options: Any,
) -> bytes: ...


@overload
def smart_read(
    uri: str | os.PathLike[str], mode: Literal["r"], compression: str | None = None, **options: Any
) -> str: ...


def smart_read(
    uri: str | os.PathLike[str], mode: str = "rb", compression: str | None = None, **options: Any
) -> bytes | str:
    """The whole value at `uri`: bytes, or text with mode `"r"`. Raises like `smart_open`."""
    if mode not in ("rb", "r"):
        raise InvalidOption(f"smart_read takes mode 'rb' or 'r', not {mode!r}")
    with smart_open(uri, mode, compression, **options) as handle:
        return handle.read()  # type: ignore[no-any-return]


def smart_write(
    uri: str | os.PathLike[str],
    content: bytes | str,
    mode: str = "wb",
    compression: str | None = None,
    **options: Any,
) -> None:
    """Write `content` (bytes, or text: written as UTF-8) as the value at `uri`.

    Raises like `smart_open`, and `InvalidOption` for bytes in text mode `"w"`.
    """
    if mode not in ("wb", "w"):
        raise InvalidOption(f"smart_write takes mode 'wb' or 'w', not {mode!r}")
    if isinstance(content, str) and mode == "wb":
        content = content.encode("utf-8")
    elif not isinstance(content, str) and mode == "w":
        raise InvalidOption("smart_write(mode='w') writes text: pass a str, or use mode='wb'")
    with smart_open(uri, mode, compression, **options) as handle:
        handle.write(content)


def smart_stream(
    uri: str | os.PathLike[str], mode: str = "rb", compression: str | None = None, **options: Any
) -> Iterator[Any]:
    """Yield the lines of the value at `uri` without their line breaks (bytes, or str with "r"),
    in bounded memory. Raises like `smart_open` (on the first line asked for)."""
    if mode not in ("rb", "r"):
        raise InvalidOption(f"smart_stream takes mode 'rb' or 'r', not {mode!r}")
    with smart_open(uri, "rb", compression, **options) as handle:
        for number, line in enumerate(iter_lines(handle), 1):
            if mode == "rb":
                yield line
                continue
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as error:
                from anystore.exceptions import SerializationError

                raise SerializationError(
                    f"Line {number} of {uri} is not UTF-8 text ({error})"
                    f"{_compression_hint(uri, compression)}"
                ) from None


def _compression_hint(uri: str | os.PathLike[str], compression: str | None) -> str:
    """A hint for bytes that did not decode, when `uri` is named like a compressed file that
    was read as it is."""
    from anystore.compression import resolve

    named = resolve("infer", os.fspath(uri))
    if compression is not None or named is None:
        return ""
    return f"; its name says {named}: pass compression='infer' (or {named!r}) to decompress it"


def smart_stream_json(
    uri: str | os.PathLike[str], compression: str | None = None, **options: Any
) -> Iterator[Any]:
    """Yield one value per JSON line of `uri` (blank lines skipped).

    Raises `SerializationError` naming the line for one that is not JSON.
    """
    import orjson

    from anystore.exceptions import SerializationError

    for number, line in enumerate(smart_stream(uri, "rb", compression, **options), 1):
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise SerializationError(
                f"Line {number} of {uri} is not JSON: {error}{_compression_hint(uri, compression)}"
            ) from None


def smart_stream_csv(
    uri: str | os.PathLike[str], compression: str | None = None, **options: Any
) -> Iterator[dict[str, str]]:
    """Yield the rows of the CSV at `uri` as dicts keyed by its header row, in bounded memory."""
    import csv

    with smart_open(uri, "rb", compression, **options) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        yield from csv.DictReader(text)


def smart_stream_models(
    uri: str | os.PathLike[str],
    model: type[M],
    input_format: Format = "json",
    compression: str | None = None,
    **options: Any,
) -> Iterator[M]:
    """Yield `model` instances validated from the JSON lines (or CSV rows) at `uri`.

    Raises `SerializationError` naming the line or row that does not validate.
    """
    from pydantic import ValidationError

    from anystore.exceptions import SerializationError

    # Called inside the generator, so a bad `input_format` is raised on the first `next()`.
    rows = smart_stream_data(uri, input_format, compression, **options)
    for number, row in enumerate(rows, 1):
        try:
            yield model.model_validate(row)
        except ValidationError as error:
            raise SerializationError(
                f"Item {number} of {uri} is not a valid {model.__name__}: {error}"
            ) from None


def smart_write_json(
    uri: str | os.PathLike[str],
    items: Iterable[Any],
    compression: str | None = None,
    **options: Any,
) -> None:
    """Write `items` as JSON lines (one value per line) at `uri`, streaming.

    Raises `SerializationError` for an item JSON cannot hold (nothing is written then).
    """
    import orjson

    from anystore.exceptions import SerializationError

    with smart_open(uri, "wb", compression, **options) as handle:
        for item in items:
            try:
                handle.write(orjson.dumps(item, default=_model_dump) + b"\n")
            except TypeError as error:
                raise SerializationError(f"Cannot write {item!r} as JSON: {error}") from None


def smart_write_csv(
    uri: str | os.PathLike[str],
    rows: Iterable[Mapping[str, Any]],
    compression: str | None = None,
    **options: Any,
) -> None:
    """Write dict `rows` as CSV at `uri`, with the first row's keys as the header, streaming.

    Raises `InvalidOption` for a later row with a key the header lacks (nothing is written).
    """
    import csv

    with smart_open(uri, "wb", compression, **options) as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
        writer: csv.DictWriter[str] | None = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(text, fieldnames=list(row))
                writer.writeheader()
            try:
                writer.writerow(row)
            except ValueError as error:
                raise InvalidOption(f"CSV row {dict(row)!r} does not fit: {error}") from None
        text.flush()
        text.detach()  # the handle publishes on the block's end, not the wrapper's close


def smart_write_models(
    uri: str | os.PathLike[str],
    objects: Iterable[BaseModel],
    output_format: Format = "json",
    compression: str | None = None,
    **options: Any,
) -> None:
    """Write pydantic models as JSON lines (or CSV rows of their dumps) at `uri`, streaming."""
    dumps = (o.model_dump(mode="json") for o in objects)
    smart_write_data(uri, dumps, output_format, compression, **options)


def _by_format(
    option: str, value: str, json: Callable[..., T], csv: Callable[..., T]
) -> Callable[..., T]:
    """`json` or `csv` by a format option's `value`; raises `InvalidOption` naming `option`."""
    if value == "json":
        return json
    if value == "csv":
        return csv
    raise InvalidOption(f"{option} must be 'json' or 'csv', not {value!r}")


def smart_stream_data(
    uri: str | os.PathLike[str],
    input_format: Format = "json",
    compression: str | None = None,
    **options: Any,
) -> Iterator[Any]:
    """`smart_stream_json` or `smart_stream_csv`, by `input_format`."""
    stream = _by_format("input_format", input_format, smart_stream_json, smart_stream_csv)
    return stream(uri, compression, **options)


def smart_stream_json_models(
    uri: str | os.PathLike[str], model: type[M], compression: str | None = None, **options: Any
) -> Iterator[M]:
    """`smart_stream_models(uri, model, "json")`."""
    return smart_stream_models(uri, model, "json", compression, **options)


def smart_stream_csv_models(
    uri: str | os.PathLike[str], model: type[M], compression: str | None = None, **options: Any
) -> Iterator[M]:
    """`smart_stream_models(uri, model, "csv")`."""
    return smart_stream_models(uri, model, "csv", compression, **options)


def smart_write_data(
    uri: str | os.PathLike[str],
    items: Iterable[Any],
    output_format: Format = "json",
    compression: str | None = None,
    **options: Any,
) -> None:
    """`smart_write_json` or `smart_write_csv`, by `output_format`."""
    write = _by_format("output_format", output_format, smart_write_json, smart_write_csv)
    write(uri, items, compression, **options)


def smart_write_model(
    uri: str | os.PathLike[str], obj: BaseModel, compression: str | None = None, **options: Any
) -> None:
    """Write one pydantic model as its JSON document at `uri`."""
    data = obj.model_dump_json().encode("utf-8")
    smart_write(uri, data, "wb", compression, **options)


def _model_dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
    return dump(mode="json")


# -- local paths -------------------------------------------------------------------------------


@contextmanager
def local_path(store: Store, key: str) -> Iterator[str]:
    """A real local path holding the value at `key` (see `Store.local_path`)."""
    from anystore.backends.local import LocalBackend

    key = store._key(key)
    backend = store.backend
    if type(backend) is LocalBackend:
        if not store.exists(key):
            raise DoesNotExist(f"Key {key!r} does not exist in {store.uri}")
        path = os.path.join(backend.root, *key.split("/"))
        real = os.path.realpath(path)
        # The file itself, unless a symlink takes it out of the root (then a copy, read through
        # the backend's own confinement, which refuses it unless follow_symlinks is on).
        if backend.follow_symlinks or real.startswith(os.path.realpath(backend.root) + os.sep):
            yield path
            return
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="anystore-")
    try:
        # The key's own name, so that tools that look at the extension see it.
        path = os.path.join(folder, key.rpartition("/")[2])
        with store.open(key, "rb") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def get_virtual_path(uri: str | os.PathLike[str], **options: Any) -> Iterator[str]:
    """A real local path for the value at `uri`: the file itself for a local file, else a
    temporary copy removed when the block ends. Raises `DoesNotExist` for a missing value."""
    from anystore.store import get_store

    store_uri, key = split_uri(uri)
    store = get_store(_as_given(uri, store_uri), **options)
    try:
        with local_path(store, key) as path:
            yield path
    finally:
        store.close()


@contextmanager
def open_virtual(uri: str | os.PathLike[str], **options: Any) -> Iterator[IO[bytes]]:
    """An open binary handle on a real local file holding the value at `uri` (its `name` is the
    path, for tools that want both), closed and cleaned up when the block ends."""
    with get_virtual_path(uri, **options) as path, open(path, "rb") as handle:
        yield handle
