"""`Store`: the one public class every backend is used through, and `get_store()` that opens one.

Everything a user sees (keys, serialization, missing-key policy, TTL defaults, filters, `Stats`)
lives here once, so that the same code behaves the same on every backend. The backend only moves
bytes. Each method takes its options per call too; the call wins over the store's options.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, overload

from anystore.backend import Backend
from anystore.copying import copy
from anystore.exceptions import (
    AnystoreError,
    DoesNotExist,
    InvalidOption,
    ReadOnly,
    SerializationError,
    mask_uri,
)
from anystore.io import CHUNK_SIZE, TextWriteHandle, iter_lines
from anystore.keys import (
    RESERVED_PREFIX,
    compile_glob,
    glob_literal_prefix,
    is_reserved,
    is_under,
    join,
    limited_key,
    normalize_glob,
    normalize_key,
    normalize_prefix,
    relative_to,
)
from anystore.options import (
    DEFAULT_URI,
    OPTION_NAMES,
    ReadMode,
    SerializationMode,
    StoreOption,
    StoreOptions,
    WriteMode,
    check_ttl,
    environment_options,
)
from anystore.serialization import decode, decode_auto, encode

if TYPE_CHECKING:
    from anystore.locking import Lock
    from anystore.plugins import Registration
    from anystore.stats import Stats

M = TypeVar("M")
# `raise_on_nonexist` left at its default (None: the store's option, True unless changed) is typed
# as raising, so that `store.info(key).size` needs no None check; pass False to get `X | None`.
Raising = Literal[True] | None


# put_many and get_many hand the backend batches of this many keys, so that any iterable can be
# written in bounded memory while each batch still gets the backend's fast path.
BATCH_SIZE = 1000

# Striped locks that keep two threads from popping one key at once on backends whose pop is
# read-then-delete (a lock per key would grow without bound).
_POP_LOCKS = [threading.Lock() for _ in range(64)]


# (Stats.trusted, guess_mimetype), imported on the first `info()`: anystore.stats loads pydantic,
# which `import anystore` does not need; an import statement per call would cost a microsecond.
_STATS: tuple[Callable[..., Stats], Callable[[str], str]] | None = None


def _import_stats() -> tuple[Callable[..., Stats], Callable[[str], str]]:
    global _STATS
    from anystore.stats import Stats, guess_mimetype

    _STATS = (Stats.trusted, guess_mimetype)
    return _STATS


def _unreserved(backend: Backend) -> Iterator[str]:
    """Every key of `backend` but the reserved names (the listing of a whole store, a hot path;
    a generator, so that the backend is asked only once the caller iterates)."""
    for key in backend.list_keys(""):
        if RESERVED_PREFIX in key and is_reserved(key):
            continue
        yield key


class Store:
    """A key-value store over one backend. Open one with `anystore.get_store()`.

    Missing keys raise `DoesNotExist` unless `raise_on_nonexist=False`; invalid keys raise
    `InvalidKey` before the backend is touched.
    """

    def __init__(self, backend: Backend, uri: str, options: StoreOptions | None = None) -> None:
        if not backend.supports_ttl:
            from anystore.expiry import EmulatedExpiry

            backend = EmulatedExpiry(backend)
        self.backend = backend
        self.uri = mask_uri(uri)
        self.options = options or StoreOptions()
        max_key, max_segment = backend.max_key_bytes, backend.max_segment_bytes
        # Every key goes through this before the backend sees it: the rules of `anystore.keys`,
        # plus the backend's declared length limits where it has any.
        self._key: Callable[[str], str] = (
            normalize_key
            if max_key is None and max_segment is None
            else lambda key: limited_key(key, max_key, max_segment)
        )

    # Options assignable on the store (`store.default_ttl = 60`), validated like get_store()'s.
    serialization_mode = StoreOption[SerializationMode]()
    raise_on_nonexist = StoreOption[bool]()
    default_ttl = StoreOption["int | None"]()
    store_none_values = StoreOption[bool]()
    model = StoreOption["type | None"]()
    serialization_func = StoreOption["Callable[[Any], Any] | None"]()
    deserialization_func = StoreOption["Callable[[bytes], Any] | None"]()

    def __setattr__(self, name: str, value: Any) -> None:
        # `store.ttl = 60` (get_store's keyword) or `store.serialisation_mode = ...` would set
        # a plain attribute that nothing reads: the store would go on as before, silently. A
        # subclass's own attributes are its business (`self.mode` in a LoggingStore).
        if (
            type(self) is Store
            and name not in OPTION_NAMES
            and name not in _STORE_FIELDS
            and not name.startswith("_")
        ):
            _refuse_option_typo(name)
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<Store {self.uri} ({type(self.backend).__name__})>"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend's connections (the store can't be used afterwards)."""
        self.backend.close()

    # -- option helpers ----------------------------------------------------------------------

    def _missing(self, key: str, raise_on_nonexist: bool | None) -> None:
        """Raise `DoesNotExist` for a missing key if the options say so."""
        if raise_on_nonexist is None:
            raise_on_nonexist = self.options.raise_on_nonexist
        if raise_on_nonexist:
            raise DoesNotExist(f"Key {key!r} does not exist in {self.uri}")
        return None

    def _writable(self) -> None:
        if self.backend.read_only:
            raise ReadOnly(
                f"{self.uri} is read-only: it refuses put, delete, pop, open for writing, locks "
                "and cleanup. Open a writable store to change it."
            )

    def _ttl(self, ttl: float | None) -> float | None:
        if ttl is None:
            ttl = self.options.default_ttl
            if ttl is None:
                return None
        check_ttl(ttl)
        return ttl

    def _encode(self, value: Any, mode: str | None, func: Callable[[Any], Any] | None) -> bytes:
        options = self.options
        return encode(value, mode or options.serialization_mode, func or options.serialization_func)

    def _decode(
        self,
        key: str,
        data: bytes,
        mode: str | None,
        model: type | None,
        func: Callable[[bytes], Any] | None,
    ) -> Any:
        options = self.options
        try:
            return decode(
                data,
                mode or options.serialization_mode,
                model or options.model,
                func or options.deserialization_func,
            )
        except SerializationError as error:
            raise _of_key(error, key) from None

    # -- single keys -------------------------------------------------------------------------

    def put(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        serialization_mode: SerializationMode | None = None,
        serialization_func: Callable[[Any], Any] | None = None,
        store_none_values: bool | None = None,
        model: type | None = None,
    ) -> None:
        """Write `value` at `key`, overwriting silently; `model=` validates it into that pydantic
        model first (a dict, or an instance) and stores the model's JSON.

        Raises `InvalidKey`, `SerializationError`, `ReadOnly` or `BackendUnavailable`.
        """
        key = self._key(key)
        options = self.options
        if model is not None:
            from anystore.options import model_value

            value = model_value(value, model)
        if value is None:
            keep = options.store_none_values if store_none_values is None else store_none_values
            if not keep:
                return
        backend = self.backend
        if backend.read_only:
            self._writable()
        mode = serialization_mode or options.serialization_mode
        func = serialization_func or options.serialization_func
        # bytes and text in auto mode, the hot path of caches, skip encode() (which does the same)
        kind = type(value)
        if kind is bytes and mode == "auto" and func is None:
            data = value
        elif kind is str and mode == "auto" and func is None:
            data = value.encode("utf-8")
        else:
            data = encode(value, mode, func)
        if ttl is None:
            ttl = options.default_ttl
        if ttl is not None:
            check_ttl(ttl)
        backend.write(key, data, ttl)

    # The overloads (the same for get and pop) type `model=M` as an `M`, and `M | None` with
    # `raise_on_nonexist=False`. Written out, not shared through a cast, so that unbound calls
    # (`Store.get(store, k)`), subclass overrides and `help()` see a plain method.
    @overload
    def get(
        self,
        key: str,
        *,
        raise_on_nonexist: Raising = None,
        serialization_mode: SerializationMode | None = None,
        model: type[M],
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> M: ...

    @overload
    def get(
        self,
        key: str,
        *,
        raise_on_nonexist: bool,
        serialization_mode: SerializationMode | None = None,
        model: type[M],
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> M | None: ...

    @overload
    def get(
        self,
        key: str,
        *,
        raise_on_nonexist: bool | None = None,
        serialization_mode: SerializationMode | None = None,
        model: None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Any: ...

    def get(
        self,
        key: str,
        *,
        raise_on_nonexist: bool | None = None,
        serialization_mode: SerializationMode | None = None,
        model: type | None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """Return the value at `key`.

        Raises `DoesNotExist` for a missing key (or returns None with `raise_on_nonexist=False`),
        `InvalidKey`, `SerializationError`.
        """
        key = self._key(key)
        data = self.backend.read(key)
        if data is None:
            self._missing(key, raise_on_nonexist)
            return None
        options = self.options
        mode = serialization_mode or options.serialization_mode
        model = model or options.model
        func = deserialization_func or options.deserialization_func
        try:
            if mode == "auto" and model is None and func is None:
                return decode_auto(data)  # what decode() does then, one call fewer
            return decode(data, mode, model, func)
        except SerializationError as error:
            raise _of_key(error, key) from None

    @overload
    def pop(
        self,
        key: str,
        *,
        raise_on_nonexist: Raising = None,
        serialization_mode: SerializationMode | None = None,
        model: type[M],
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> M: ...

    @overload
    def pop(
        self,
        key: str,
        *,
        raise_on_nonexist: bool,
        serialization_mode: SerializationMode | None = None,
        model: type[M],
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> M | None: ...

    @overload
    def pop(
        self,
        key: str,
        *,
        raise_on_nonexist: bool | None = None,
        serialization_mode: SerializationMode | None = None,
        model: None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Any: ...

    def pop(
        self,
        key: str,
        *,
        raise_on_nonexist: bool | None = None,
        serialization_mode: SerializationMode | None = None,
        model: type | None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """Return the value at `key` and delete it (atomically where the backend can).

        Raises like `get`.
        """
        key = self._key(key)
        self._writable()
        if self.backend.atomic_pop:
            data = self.backend.pop(key)
        else:
            with _POP_LOCKS[hash((self.uri, key)) % len(_POP_LOCKS)]:
                data = self.backend.pop(key)
        if data is None:
            self._missing(key, raise_on_nonexist)
            return None
        return self._decode(key, data, serialization_mode, model, deserialization_func)

    def delete(self, key: str, *, ignore_errors: bool = False) -> None:
        """Delete `key`; deleting a missing key does nothing. Raises `InvalidKey`, `ReadOnly`.

        `ignore_errors=True` also swallows what the backend raises (unavailable, read-only), for
        best-effort clean-ups; an invalid key still raises.
        """
        key = self._key(key)
        backend = self.backend
        try:
            if backend.read_only:
                self._writable()
            backend.delete(key)
        except AnystoreError:
            if not ignore_errors:
                raise

    def exists(self, key: str) -> bool:
        """Tell whether `key` holds a live value. Raises `InvalidKey`."""
        return self.backend.exists(self._key(key))

    @overload
    def info(self, key: str, *, raise_on_nonexist: Raising = None) -> Stats: ...

    @overload
    def info(self, key: str, *, raise_on_nonexist: bool) -> Stats | None: ...

    def info(self, key: str, *, raise_on_nonexist: bool | None = None) -> Stats | None:
        """Return `Stats` (size, times, mimetype, uri) for `key`. Raises like `get`."""
        key = self._key(key)
        stat = self.backend.stat(key)
        if stat is None:
            self._missing(key, raise_on_nonexist)
            return None
        trusted, guess_mimetype = _STATS or _import_stats()
        uri = self.uri
        # Built without re-validation: every field comes typed from BackendStat and from here.
        return trusted(
            key,
            uri,
            stat.size,
            stat.created_at,
            stat.updated_at,
            stat.mimetype or guess_mimetype(key),
            uri + key if uri.endswith("/") else f"{uri}/{key}",
            stat.expires_at,
        )

    def touch(self, key: str, *, ttl: float | None = None) -> datetime:
        """Write the current UTC time at `key` and return it."""
        now = datetime.now(timezone.utc)
        self.put(key, now, ttl=ttl, serialization_mode="json")
        return now

    @overload
    def checksum(
        self, key: str, algorithm: str = "sha256", *, raise_on_nonexist: Raising = None
    ) -> str: ...

    @overload
    def checksum(
        self, key: str, algorithm: str = "sha256", *, raise_on_nonexist: bool
    ) -> str | None: ...

    def checksum(
        self, key: str, algorithm: str = "sha256", *, raise_on_nonexist: bool | None = None
    ) -> str | None:
        """Return the hex digest of the stored bytes, computed while streaming.

        Raises like `get`, and `InvalidOption` for an algorithm hashlib does not know.
        """
        import hashlib

        try:
            digest = hashlib.new(algorithm)
        except (ValueError, TypeError):
            raise InvalidOption(
                f"Unknown checksum algorithm {algorithm!r}: use one of "
                f"{', '.join(sorted(hashlib.algorithms_guaranteed))}"
            ) from None
        handle = self.open(key, "rb", raise_on_nonexist=raise_on_nonexist)
        if handle is None:
            return None
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                digest.update(chunk)
        return digest.hexdigest()

    def lock(self, key: str, *, ttl: float = 60.0, timeout: float | None = None) -> Lock:
        """Return a `Lock` on `key`, shared with every process that opens this store.

        Use it as a context manager (`with store.lock("job"):`) or call `acquire`/`release`. The
        lock lapses `ttl` seconds after it is taken, so a crashed holder blocks others at most
        that long; `timeout` bounds the wait (None waits). The lock is kept apart from the value
        at `key`. Raises `InvalidKey`, `InvalidOption` for a bad ttl or timeout, `NotSupported`
        where the backend cannot create a name atomically; entering raises `LockError` on timeout.
        """
        from anystore.locking import Lock

        key = self._key(key)
        self._writable()
        return Lock(self, key, ttl=ttl, timeout=timeout)

    def cleanup(self, older_than: float = 3600.0) -> int:
        """Remove what crashed writers left behind more than `older_than` seconds ago.

        Temp files (local), incomplete multipart uploads (S3), temp keys (Redis): never a value
        and never a write that is younger than `older_than`. Returns how many orphans went.
        Raises `InvalidOption` for a negative or non-numeric `older_than`.
        """
        if (
            isinstance(older_than, bool)
            or not isinstance(older_than, (int, float))
            or not older_than >= 0
        ):
            raise InvalidOption(f"older_than must be a number of seconds >= 0, not {older_than!r}")
        self._writable()
        return self.backend.cleanup(float(older_than))

    # -- streams -----------------------------------------------------------------------------

    def stream(
        self,
        key: str,
        *,
        raise_on_nonexist: bool | None = None,
        serialization_mode: SerializationMode | None = None,
        model: type | None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Iterator[Any]:
        """Yield the value at `key` line by line, each line decoded like `get`, in bounded memory.

        Raises `DoesNotExist` at once for a missing key (or yields nothing without raising).
        """
        handle = self.open(key, "rb", raise_on_nonexist=raise_on_nonexist)
        if handle is None:
            return iter(())

        def lines() -> Iterator[Any]:
            with handle:
                for line in iter_lines(handle):
                    yield self._decode(key, line, serialization_mode, model, deserialization_func)

        return lines()

    @overload
    def open(
        self,
        key: str,
        mode: Literal["rb", "wb"] = "rb",
        *,
        raise_on_nonexist: Raising = None,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[bytes]: ...

    @overload
    def open(
        self,
        key: str,
        mode: Literal["r", "w"],
        *,
        raise_on_nonexist: Raising = None,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[str]: ...

    @overload
    def open(
        self,
        key: str,
        mode: Literal["rb"] = "rb",
        *,
        raise_on_nonexist: bool,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[bytes] | None: ...

    @overload
    def open(
        self,
        key: str,
        mode: Literal["r"],
        *,
        raise_on_nonexist: bool,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[str] | None: ...

    @overload
    def open(
        self,
        key: str,
        mode: ReadMode | WriteMode,
        *,
        raise_on_nonexist: bool | None = None,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[Any] | None: ...

    def open(
        self,
        key: str,
        mode: str = "rb",
        *,
        raise_on_nonexist: bool | None = None,
        ttl: float | None = None,
        compression: str | None = None,
    ) -> IO[Any] | None:
        """Open `key` as a file-like handle: `rb`, `r` (UTF-8), `wb` or `w`.

        Reading streams in bounded memory; a write becomes visible on close, whole or not at all
        (an exception inside the `with` block discards it). `compression` (`gz`, `bz2`, `xz`,
        `zst`, `lz4`, or `infer` from the key's extension) decompresses while reading and
        compresses while writing (`anystore.compression`). Raises `DoesNotExist` for reading a
        missing key (or returns None), `InvalidKey`, `InvalidOption` for another mode or codec,
        `NotSupported` for a codec whose extra is not installed.
        """
        key = self._key(key)
        codec = None
        if compression is not None:
            from anystore import compression as codecs

            codec = codecs.resolve(compression, key)
            if codec is not None:
                codecs.codec(codec)  # a missing extra fails before the backend is touched
        if mode in ("rb", "r"):
            handle = self.backend.open_read(key)
            if handle is None:
                self._missing(key, raise_on_nonexist)
                return None
            if codec is not None:
                handle = codecs.reader(handle, codec, key)
            return handle if mode == "rb" else io.TextIOWrapper(handle, encoding="utf-8")
        if mode in ("wb", "w"):
            self._writable()
            writer = self.backend.open_write(key, self._ttl(ttl))
            if codec is not None:
                writer = codecs.writer(writer, codec)
            if mode == "wb":
                return writer  # type: ignore[return-value]
            return TextWriteHandle(writer, encoding="utf-8")  # type: ignore[arg-type]
        raise InvalidOption(f"Unsupported open() mode {mode!r}: use 'rb', 'r', 'wb' or 'w'")

    def local_path(self, key: str) -> AbstractContextManager[str]:
        """A context manager yielding a real local path that holds the value at `key`: the file
        itself on a local store, else a temporary copy removed on exit (`anystore.smart`).

        Raises `DoesNotExist` for a missing key, `InvalidKey`.
        """
        from anystore.smart import local_path

        return local_path(self, key)

    @classmethod
    def from_json_uri(
        cls, document: str | os.PathLike[str] | None = None, /, **options: Any
    ) -> Store:
        """Open the store configured by the JSON document at the URI `document` (the store's
        `uri` plus options; keyword `options` win, `uri=` too). Without `document`, `uri=` names
        the document, as in earlier versions. Raises `InvalidOption` for a bad document or none
        named, `DoesNotExist` for a missing one."""
        return _from_document(document, "json", options)

    @classmethod
    def from_yaml_uri(
        cls, document: str | os.PathLike[str] | None = None, /, **options: Any
    ) -> Store:
        """Like `from_json_uri`, for a YAML document (needs `anystore-core[yaml]`)."""
        return _from_document(document, "yaml", options)

    # -- many keys ---------------------------------------------------------------------------

    def iterate_keys(
        self,
        prefix: str | None = None,
        exclude_prefix: str | None = None,
        glob: str | None = None,
    ) -> Iterator[str]:
        """Yield store-relative keys lazily, in no particular order.

        `prefix`/`exclude_prefix` match whole segments literally; `glob` is matched relative to
        `prefix` (`*` within a segment, `**` across). Raises `InvalidKey` for a bad argument.
        """
        base = normalize_prefix(prefix)
        excluded = normalize_prefix(exclude_prefix) if exclude_prefix else ""
        glob = normalize_glob(glob) if glob else glob
        pattern = compile_glob(glob) if glob else None
        start = join(base, glob_literal_prefix(glob)) if glob else base

        below = start + "/"
        if not start and not excluded and pattern is None:
            return _unreserved(self.backend)

        def keys() -> Iterator[str]:
            # A backend may yield any key that starts with the string `start`, and its own
            # bookkeeping too: the whole-segment rule and reserved names are enforced here, once.
            for key in self.backend.list_keys(start):
                if start and key != start and not key.startswith(below):
                    continue
                if RESERVED_PREFIX in key and is_reserved(key):
                    continue
                if excluded and is_under(key, excluded):
                    continue
                if pattern is not None and not pattern.match(relative_to(key, base)):
                    continue
                yield key

        return keys()

    def iterate_values(
        self,
        prefix: str | None = None,
        exclude_prefix: str | None = None,
        glob: str | None = None,
        *,
        serialization_mode: SerializationMode | None = None,
        model: type | None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> Iterator[Any]:
        """Yield the values of `iterate_keys(...)`, decoded like `get`; keys that vanish between
        listing and reading are skipped."""
        for key in self.iterate_keys(prefix, exclude_prefix, glob):
            data = self.backend.read(key)
            if data is not None:
                yield self._decode(key, data, serialization_mode, model, deserialization_func)

    def put_many(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any]],
        *,
        ttl: float | None = None,
        serialization_mode: SerializationMode | None = None,
        serialization_func: Callable[[Any], Any] | None = None,
        store_none_values: bool | None = None,
    ) -> None:
        """Write many `(key, value)` pairs, in batches through the backend's fast path.

        Every key and value is checked before a batch is written. Raises like `put`.
        """
        pairs = iter(items.items() if isinstance(items, Mapping) else items)
        keep_none = (
            self.options.store_none_values if store_none_values is None else store_none_values
        )
        expiry = self._ttl(ttl)
        self._writable()
        while batch := list(islice(pairs, BATCH_SIZE)):
            encoded = [
                (self._key(key), self._encode(value, serialization_mode, serialization_func))
                for key, value in batch
                if value is not None or keep_none
            ]
            self.backend.write_many(encoded, expiry)

    def get_many(
        self,
        keys: Iterable[str],
        *,
        serialization_mode: SerializationMode | None = None,
        model: type | None = None,
        deserialization_func: Callable[[bytes], Any] | None = None,
    ) -> dict[str, Any]:
        """Return `{key: value}` for the keys that exist; missing keys are left out."""
        result: dict[str, Any] = {}
        remaining = iter(keys)
        while batch := [self._key(key) for key in islice(remaining, BATCH_SIZE)]:
            for key, data in self.backend.read_many(batch):
                result[key] = self._decode(
                    key, data, serialization_mode, model, deserialization_func
                )
        return result

    copy_to = copy  # source.copy_to(target, ...) is anystore.copy(source, target, ...)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key; missing keys are ignored. Raises `InvalidKey` before deleting any
        key of a batch that holds an invalid one."""
        remaining = iter(keys)
        self._writable()
        while batch := [self._key(key) for key in islice(remaining, BATCH_SIZE)]:
            self.backend.delete_many(batch)


STORE_OPTION_ALIASES = {"ttl": "default_ttl"}


# The plain attributes of a Store (its options are descriptors; see `Store.__setattr__`).
_STORE_FIELDS = frozenset({"backend", "uri", "options"})


def _refuse_option_typo(name: str) -> None:
    """Raise `InvalidOption` when `name` is an option's alias or a near miss of an option."""
    alias = STORE_OPTION_ALIASES.get(name)
    if alias is not None:
        raise InvalidOption(
            f"Store has no attribute {name!r}: set store.{alias} (get_store() takes {name}= as "
            f"another name for {alias}=)"
        )
    from difflib import get_close_matches

    # 0.9: one letter off a long name (`serialisation_mode`, `default_tll`), not `mode`.
    near = get_close_matches(name, sorted(OPTION_NAMES), n=1, cutoff=0.9)
    if near:
        raise InvalidOption(f"Store has no option {name!r}: did you mean store.{near[0]}?")


def _from_document(
    document: str | os.PathLike[str] | None, kind: Literal["json", "yaml"], options: dict[str, Any]
) -> Store:
    from anystore.options import read_config

    if document is None:
        document = options.pop("uri", None)  # from_json_uri(uri=...): the document, as before
    if isinstance(document, os.PathLike):
        document = os.fspath(document)
    if not isinstance(document, str):
        raise InvalidOption(f"from_{kind}_uri takes the URI of the document, not {document!r}")
    return get_store(**{**read_config(document, kind), **options})


def _of_key(error: SerializationError, key: str) -> SerializationError:
    """`error` with the key whose stored value it is about named in its message."""
    return SerializationError(f"Key {key!r}: {error}")


def get_store(uri: str | os.PathLike[str] | None = None, **options: Any) -> Store:
    """Open a store on `uri` (default: `ANYSTORE_URI`, else the local folder `.anystore`).

    `uri` may start with layers, outermost first: `readonly::gzip::s3://bucket/x`.
    Keyword options are Store options (`serialization_mode`, `raise_on_nonexist`, `ttl`/
    `default_ttl`, `store_none_values`, `model`, `serialization_func`, `deserialization_func`)
    or else passed to the backend. Raises `BackendNotFound` for an unserved scheme (naming what to
    install) or an unknown layer (naming the installed ones), `PluginError` for a broken plugin or
    factory, `InvalidOption` for a bad option.
    """
    from anystore.plugins import (
        check_mistyped_uri,
        find_backend,
        find_layer,
        load_plugins,
        split_layers,
        uri_scheme,
    )

    env_uri, env_options, disabled = environment_options(with_document=True)
    load_plugins(disabled)
    typed = uri is None or isinstance(uri, str)  # a pathlib.Path is a path, never a typo
    uri = os.fspath(uri) if uri is not None else env_uri
    if not uri:
        uri = DEFAULT_URI
    store_options: dict[str, Any] = {}
    backend_options: dict[str, Any] = dict(env_options.backend_config)
    for name, value in options.items():
        name = STORE_OPTION_ALIASES.get(name, name)
        if name == "backend_config":
            backend_options.update(value or {})
        elif name in OPTION_NAMES:
            store_options[name] = value
        else:
            backend_options[name] = value
    store_options = env_options.updated(**store_options)  # type: ignore[assignment]
    names, inner_uri = split_layers(uri)
    if typed:
        check_mistyped_uri(inner_uri)
    if "%" in inner_uri and uri_scheme(inner_uri) in ("file", "local") and "://" in inner_uri:
        from urllib.parse import unquote  # a file:// URI is percent-encoded; a plain path is not

        scheme, _, path = inner_uri.partition("://")
        inner_uri = f"{scheme}://{unquote(path)}"
    layers = [find_layer(name) for name in names]  # an unknown name fails before connecting
    backend = _open_backend(find_backend(inner_uri), inner_uri, backend_options)
    for layer in reversed(layers):  # the innermost layer wraps the backend first
        backend = _checked(layer, layer.load()(backend))
    return Store(backend, uri, store_options)  # type: ignore[arg-type]


def _open_backend(registration: Registration, uri: str, backend_options: dict[str, Any]) -> Backend:
    from anystore.backend_options import checked_options

    factory = registration.load()
    return _checked(registration, factory(uri, **checked_options(factory, uri, backend_options)))


def _checked(registration: Registration, backend: Any) -> Backend:
    """`backend`, if the plugin's factory really made a Backend; else a `PluginError`."""
    if not isinstance(backend, Backend):
        from anystore.exceptions import PluginError
        from anystore.plugins import plugin_origin

        raise PluginError(
            f"{plugin_origin(registration.plugin)} serves {registration.label} with a factory "
            f"that returned {type(backend).__name__}, not an anystore.backend.Backend."
        )
    return backend
