"""The conformance kit's guarantee tests (DESIGN.md §5a), mixed into `anystore.testing.StoreTests`.

These are the rules that keep data whole whatever the backend: a read handle sees one version,
handles seek, a folder is not a value, keys are literal names, declared key limits hold, and
concurrent batch writers never fail on each other, a streamed write that failed publishes
nothing. Each test uses the public API only.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from anystore.exceptions import (
    AnystoreError,
    ConcurrentModification,
    DoesNotExist,
    InvalidKey,
    InvalidOption,
)
from anystore.store import Store


def backend_name(store: Store) -> str:
    """The class name of the backend under any layers, for skip messages."""
    backend = store.backend
    while hasattr(backend, "inner"):
        backend = backend.inner
    return type(backend).__name__


MIB = 1024 * 1024

# Characters that URL-minded clients like to parse: in a key they are plain characters.
LITERAL_KEYS = {
    "a": "plain",
    "a?versionId=1": "query",
    "a?x=1&y=2": "query pairs",
    "a#fragment": "fragment",
    "a%20b": "percent",
    "a%3Fb": "percent-encoded query",
    "a b": "space",
    "a;b": "semicolon",
    "a+b": "plus",
    "dir?/x#y": "in a folder name",
    "ünï/cödé 🎉": "unicode",
}


def _read_rest_or_conflict(handle: Any) -> bytes | None:
    """The rest of a read handle, or None when it reported the value changed under it."""
    try:
        return bytes(handle.read())
    except ConcurrentModification:
        return None


def _key_of(size: int, segment: int) -> str:
    """An ASCII key of exactly `size` bytes whose segments are at most `segment` bytes."""
    parts: list[str] = []
    left = size
    while left > segment:
        # Leave room for the '/' and at least one character after it.
        take = segment if left - segment >= 2 else segment - 1
        parts.append("k" * take)
        left -= take + 1
    parts.append("k" * left)
    return "/".join(parts)


def opposite_order_writers(
    store: Store, keys: list[str], *, rounds: int, deleted: int
) -> list[BaseException]:
    """Run two threads that `put_many` the same keys in opposite orders (and `delete_many` the
    first `deleted` of their order) `rounds` times; return what they raised (none, on a backend
    that orders its locks or retries its deadlocks)."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(order: list[str], value: int) -> None:
        try:
            barrier.wait()
            for _ in range(rounds):
                store.put_many([(key, value) for key in order])
                store.delete_many(order[:deleted])
        except BaseException as error:  # every failure is the finding
            errors.append(error)

    threads = [
        threading.Thread(target=write, args=(keys, 1)),
        threading.Thread(target=write, args=(keys[::-1], 2)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


class GuaranteeTests:
    """Tests of DESIGN.md §5a; `StoreTests` inherits them, so every backend runs them."""

    # -- one version per read handle ---------------------------------------------------------

    def test_read_handle_sees_one_version_across_an_overwrite(self, store: Store) -> None:
        old = b"A" * (3 * MIB)
        new = b"B" * (2 * MIB + 5)  # another size too: a torn read would also be short or long
        store.put("k", old)
        with store.open("k", "rb") as handle:
            first = handle.read(MIB)
            store.put("k", new)
            rest = _read_rest_or_conflict(handle)
        assert first == old[:MIB]
        if rest is not None:
            assert first + rest == old, "a read handle returned bytes of two versions"
        assert store.get("k", serialization_mode="raw") == new

    def test_read_handle_of_a_key_deleted_mid_read(self, store: Store) -> None:
        old = bytes(range(256)) * (12 * 1024)  # 3 MiB
        store.put("k", old)
        with store.open("k", "rb") as handle:
            first = handle.read(MIB)
            store.delete("k")
            rest = _read_rest_or_conflict(handle)
        if rest is not None:
            assert first + rest == old, "a deleted value was read short"
        assert not store.exists("k")

    def test_stream_and_checksum_see_one_version(self, store: Store) -> None:
        lines = [f"line {i:07d}".encode() for i in range(250_000)]  # ~3 MiB
        store.put("lines", b"\n".join(lines))
        stream = store.stream("lines", serialization_mode="raw")
        head = [next(stream) for _ in range(10)]
        store.put("lines", b"other\n" * 10)
        try:
            rest = list(stream)
        except ConcurrentModification:
            rest = None
        if rest is not None:
            assert head + rest == lines
        assert head == lines[:10]

    # -- seeking -----------------------------------------------------------------------------

    def test_read_handles_seek(self, store: Store) -> None:
        data = bytes(range(256)) * 8192  # 2 MiB
        store.put("s", data)
        with store.open("s", "rb") as handle:
            assert handle.seekable()
            assert handle.seek(1_500_000) == 1_500_000
            assert handle.read(10) == data[1_500_000:1_500_010]
            assert handle.tell() == 1_500_010
            assert handle.seek(-10, io.SEEK_END) == len(data) - 10
            assert handle.read() == data[-10:]
            handle.seek(-20, io.SEEK_CUR)
            assert handle.read(5) == data[-20:-15]
            handle.seek(0)
            assert handle.read(3) == data[:3]
            handle.seek(300)
            assert handle.read() == data[300:]
            handle.seek(len(data) + 10)
            assert handle.read(1) == b""
            with pytest.raises((ValueError, OSError)):
                handle.seek(-1)

    # -- a folder is not a value -------------------------------------------------------------

    def test_a_folder_is_not_a_value(self, store: Store) -> None:
        store.put_many({"a/b": 1, "a/c/d": 2})
        assert store.exists("a") is False
        for read in (store.get, store.pop, store.info, store.checksum):
            with pytest.raises(DoesNotExist):
                read("a")
        with pytest.raises(DoesNotExist):
            store.open("a", "rb")
        assert store.pop("a", raise_on_nonexist=False) is None
        store.delete("a")
        store.delete_many(["a", "a/c"])
        assert store.get_many(["a", "a/c"]) == {}
        assert sorted(store.iterate_keys()) == ["a/b", "a/c/d"]
        assert store.get("a/b") == 1 and store.get("a/c/d") == 2

    def test_a_value_is_not_a_folder(self, store: Store) -> None:
        store.put("v", 1)
        assert store.exists("v/x") is False
        assert store.get("v/x", raise_on_nonexist=False) is None
        assert store.pop("v/x", raise_on_nonexist=False) is None
        assert store.info("v/x", raise_on_nonexist=False) is None
        store.delete("v/x")
        assert list(store.iterate_keys(prefix="v/x")) == []
        assert store.get("v") == 1

    # -- literal keys ------------------------------------------------------------------------

    def test_keys_are_literal_names(self, store: Store) -> None:
        for key, value in LITERAL_KEYS.items():
            store.put(key, value)
        assert sorted(store.iterate_keys()) == sorted(LITERAL_KEYS)
        for key, value in LITERAL_KEYS.items():
            assert store.get(key) == value, key
            assert store.info(key).size == len(value.encode())
        store.delete("a?versionId=1")
        assert store.get("a") == "plain"
        assert not store.exists("a?versionId=1")

    def test_literal_names_through_streams(self, store: Store) -> None:
        store.put("b", "plain")
        with store.open("b?versionId=1", "wb") as handle:
            handle.write(b"streamed")
        with store.open("b#x", "wb") as handle:
            handle.write(b"fragment")
        assert store.get("b") == "plain"
        with store.open("b?versionId=1", "rb") as handle:
            assert handle.read() == b"streamed"
        with store.open("b#x", "rb") as handle:
            assert handle.read() == b"fragment"
        assert store.pop("b?versionId=1") == "streamed"
        assert sorted(store.iterate_keys()) == ["b", "b#x"]

    # -- key limits --------------------------------------------------------------------------

    def test_declared_segment_limit(self, store: Store) -> None:
        limit = store.backend.max_segment_bytes
        if limit is None:
            pytest.skip(f"{backend_name(store)} declares no segment limit")
        longest = "s" * limit
        store.put(longest, 1, ttl=600 if store.backend.supports_ttl else None)
        assert store.get(longest) == 1
        assert store.info(longest).size == 1
        with store.lock(longest, ttl=5):
            pass
        assert list(store.iterate_keys()) == [longest]
        store.delete(longest)
        self._refused_everywhere(store, "s" * (limit + 1))
        self._refused_everywhere(store, "é" * (limit // 2 + 1))  # counted in UTF-8 bytes

    def test_declared_key_limit(self, store: Store) -> None:
        limit = store.backend.max_key_bytes
        if limit is None:
            pytest.skip(f"{backend_name(store)} declares no key limit")
        segment = min(store.backend.max_segment_bytes or 100, 100)
        longest = _key_of(limit, segment)
        assert len(longest.encode()) == limit
        store.put(longest, 1)
        assert store.get(longest) == 1
        assert list(store.iterate_keys()) == [longest]
        store.delete(longest)
        self._refused_everywhere(store, _key_of(limit + 1, segment))

    def _refused_everywhere(self, store: Store, key: str) -> None:
        for call in (
            lambda: store.put(key, 1),
            lambda: store.get(key),
            lambda: store.exists(key),
            lambda: store.info(key),
            lambda: store.delete(key),
            lambda: store.pop(key),
            lambda: store.open(key, "wb"),
            lambda: store.open(key, "rb"),
            lambda: store.put_many({key: 1}),
        ):
            with pytest.raises(InvalidKey, match="bytes"):
                call()
        assert list(store.iterate_keys()) == []

    # -- concurrent writers ------------------------------------------------------------------

    def test_batch_writers_in_opposite_orders(self, store: Store) -> None:
        keys = [f"k{i:03d}" for i in range(60)]
        assert opposite_order_writers(store, keys, rounds=8, deleted=10) == []
        store.put_many([(key, 3) for key in keys])
        assert store.get_many(keys) == dict.fromkeys(keys, 3)

    # -- streamed writes ---------------------------------------------------------------------

    def test_a_streamed_write_that_failed_publishes_nothing(self, store: Store) -> None:
        store.put("k", b"old")
        handle = store.open("k", "wb")
        handle.write(b"new, ")
        with pytest.raises(TypeError):
            # Fails inside the backend's handle, after bytes went in.
            handle.write(object())  # type: ignore[call-overload]
        handle.write(b"and more")  # the caller caught the error and went on
        with pytest.raises(AnystoreError, match="Nothing was published"):
            handle.close()
        assert store.get("k", serialization_mode="raw") == b"old"
        assert sorted(store.iterate_keys()) == ["k"]

    # -- crash leftovers ---------------------------------------------------------------------

    def test_cleanup_never_removes_values_or_young_writes(self, store: Store) -> None:
        store.put_many({"x": 1, "d/y": 2})
        store.put("t", 3, ttl=600)
        handle = store.open("in-progress", "wb")
        handle.write(b"half")
        removed = store.cleanup(older_than=3600)
        assert isinstance(removed, int) and removed >= 0
        handle.write(b" and whole")
        handle.close()
        assert store.get("in-progress") == "half and whole"
        assert store.get_many(["x", "d/y", "t"]) == {"x": 1, "d/y": 2, "t": 3}
        for bad in (-1, "1", None, float("nan"), True):
            with pytest.raises(InvalidOption, match="older_than"):
                store.cleanup(older_than=bad)  # type: ignore[arg-type]
