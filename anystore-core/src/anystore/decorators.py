"""`anycache`: cache a function's results in any store.

    from anystore.decorators import anycache

    @anycache(uri="redis://localhost/0/cache", ttl=3600)
    def fetch(url: str) -> dict: ...

The default key is `<module>.<qualified name>/<sha256 of the arguments>`, stable across processes
and Python versions, with types kept apart (`f(1)` and `f("1")` are different entries). While one
thread computes a key, other threads asking for the same key wait for its result instead of
computing it again; with `lock=True`, processes sharing the store wait too (`Store.lock`).

With a model (`model=`, or the store's own), a result is cached only if it reads back as that
model, and the call returns what a later hit returns: the model instance. An entry that no longer
reads back (written by an older version of the function) counts as a miss and is overwritten.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

import orjson

from anystore.exceptions import DoesNotExist, InvalidOption, LockError, SerializationError
from anystore.options import check_ttl
from anystore.serialization import decode, encode
from anystore.store import Store, get_store

if TYPE_CHECKING:
    from anystore.locking import Lock

F = TypeVar("F", bound=Callable[..., Any])


def _canonical(value: Any) -> Any:
    """A JSON-encodable form of `value` that keeps types apart and does not depend on order."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return [type(value).__name__, value]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canonical(item) for item in value]]
    if isinstance(value, (set, frozenset)):
        items = sorted((_canonical(item) for item in value), key=orjson.dumps)
        return [type(value).__name__, items]
    if isinstance(value, dict):
        pairs = sorted(([_canonical(k), _canonical(v)] for k, v in value.items()), key=orjson.dumps)
        return ["dict", pairs]
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # a pydantic model
        return [type(value).__qualname__, _canonical(dump(mode="json"))]
    # Anything else: its type and repr. Give such arguments a key_func if their repr is not
    # stable (the default object repr holds a memory address).
    return [f"{type(value).__module__}.{type(value).__qualname__}", repr(value)]


def default_key(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The key `anycache` uses when no `key_func` is given."""
    encoded = orjson.dumps([_canonical(list(args)), _canonical(kwargs)])
    digest = hashlib.sha256(encoded).hexdigest()
    return f"{func.__module__}.{func.__qualname__}/{digest}"


def _release_quietly(shared: Lock) -> None:
    """Release a computation's lock; one that lapsed meanwhile only cost a duplicate run."""
    try:
        shared.release()
    except LockError:
        pass


def _use_cache_default() -> bool:
    return os.environ.get("ANYSTORE_USE_CACHE", "1").lower() not in ("0", "false", "no")


class _KeyLocks:
    """One lock per key being computed, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def acquire(self, key: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        lock.acquire()
        return lock

    def release(self, key: str, lock: threading.Lock) -> None:
        lock.release()
        with self._guard:
            _, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


@overload
def anycache(func: F) -> F: ...


@overload
def anycache(
    func: None = None,
    *,
    store: Store | None = None,
    uri: str | None = None,
    key_func: Callable[..., str | None] | None = None,
    ttl: float | None = None,
    model: type | None = None,
    serialization_mode: str | None = None,
    use_cache: bool | None = None,
    lock: bool = False,
    lock_ttl: float = 600.0,
) -> Callable[[F], F]: ...


def anycache(
    func: F | None = None,
    *,
    store: Store | None = None,
    uri: str | None = None,
    key_func: Callable[..., str | None] | None = None,
    ttl: float | None = None,
    model: type | None = None,
    serialization_mode: str | None = None,
    use_cache: bool | None = None,
    lock: bool = False,
    lock_ttl: float = 600.0,
) -> F | Callable[[F], F]:
    """Cache `func`'s results in a store: bare (`@anycache`) or with options.

    `store=` a Store, or `uri=` to open one (default: `get_store()`); `key_func(*args,
    **kwargs)` returns the key, or None for "do not cache this call"; `ttl` in seconds; `model`
    validates cached values into a pydantic model (a result that does not is not cached; a
    valid one is returned as the model instance, as a hit is); `use_cache=False` (or
    ANYSTORE_USE_CACHE=0) skips reading the cache but still writes it. `lock=True` takes
    `Store.lock(key, ttl=lock_ttl)` around a computation, so that other processes wait for its
    result instead of computing it too (`lock_ttl` must outlast the computation). Works on
    functions, methods and `async def`. Raises `InvalidOption` when given both `store` and `uri`
    or a bad `lock_ttl`; calls raise `NotSupported` with `lock=True` on a store that cannot lock,
    and `SerializationError` for a result that does not validate as the model.
    """
    if store is not None and uri is not None:
        raise InvalidOption("anycache takes store= or uri=, not both")
    check_ttl(lock_ttl)

    def decorate(function: F) -> F:
        opened: list[Store] = []
        locks = _KeyLocks()

        def cache() -> Store:
            if not opened:
                opened.append(store if store is not None else get_store(uri))
            return opened[0]

        def key_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
            if key_func is not None:
                return key_func(*args, **kwargs)
            return default_key(function, args, kwargs)

        def reading() -> bool:
            return _use_cache_default() if use_cache is None else use_cache

        def lookup(key: str) -> tuple[bool, Any]:
            try:
                value = cache().get(
                    key,
                    raise_on_nonexist=True,
                    model=model,  # type: ignore[arg-type]
                    serialization_mode=serialization_mode,  # type: ignore[arg-type]
                )
            except DoesNotExist:
                return False, None
            except SerializationError:
                # An entry this function cannot read back (an older version's result, another
                # model) would fail every call until it expires: recompute and overwrite it.
                return False, None
            return True, value

        def remember(key: str, value: Any) -> Any:
            """Cache `value` and return what a hit on it will return.

            Raises `SerializationError` (caching nothing) when it does not read back as the model.
            """
            store = cache()
            value = read_back(store, key, value)
            store.put(key, value, ttl=ttl, serialization_mode=serialization_mode)  # type: ignore[arg-type]
            return value

        def read_back(store: Store, key: str, value: Any) -> Any:
            """`value` as the store's `get` would decode it, when a model applies on read."""
            options = store.options
            effective_model = model or options.model
            if effective_model is None:
                return value  # reading back cannot fail: keep the result as it was returned
            if value is None and not options.store_none_values:
                return value  # put() drops it, so there is no entry to poison
            mode = serialization_mode or options.serialization_mode
            # Encode and decode exactly as put() and get() do: validating the object as it was
            # returned would pass values whose stored form does not (an instance whose JSON
            # leaves out a required field marked exclude=True).
            data = encode(value, mode, options.serialization_func)
            try:
                return decode(data, mode, effective_model, options.deserialization_func)
            except SerializationError as error:
                raise SerializationError(
                    f"anycache: the result of {function.__module__}.{function.__qualname__} "
                    f"for key {key!r} does not validate as {effective_model.__name__}, so "
                    f"nothing was cached ({error})"
                ) from None

        if inspect.iscoroutinefunction(function):
            async_locks: dict[str, asyncio.Lock] = {}

            @functools.wraps(function)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                key = key_for(args, kwargs)
                if key is None:
                    return await function(*args, **kwargs)
                if reading():
                    found, value = await asyncio.to_thread(lookup, key)
                    if found:
                        return value
                task_lock = async_locks.setdefault(key, asyncio.Lock())
                try:
                    async with task_lock:
                        shared = cache().lock(key, ttl=lock_ttl) if lock else None
                        if shared is not None:
                            await asyncio.to_thread(shared.acquire)
                        try:
                            if reading():
                                found, value = await asyncio.to_thread(lookup, key)
                                if found:
                                    return value
                            value = await function(*args, **kwargs)
                            return await asyncio.to_thread(remember, key, value)
                        finally:
                            if shared is not None:
                                await asyncio.to_thread(_release_quietly, shared)
                finally:
                    # Waiters already hold this lock object; newcomers read the cache first.
                    if not task_lock.locked():
                        async_locks.pop(key, None)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = key_for(args, kwargs)
            if key is None:
                return function(*args, **kwargs)
            if reading():
                found, value = lookup(key)
                if found:
                    return value
            thread_lock = locks.acquire(key)
            try:
                shared = cache().lock(key, ttl=lock_ttl) if lock else None
                if shared is not None:
                    shared.acquire()
                try:
                    # Another thread or process may have computed it while this one waited.
                    if reading():
                        found, value = lookup(key)
                        if found:
                            return value
                    value = function(*args, **kwargs)
                    return remember(key, value)
                finally:
                    if shared is not None:
                        _release_quietly(shared)
            finally:
                locks.release(key, thread_lock)

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
