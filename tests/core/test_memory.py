"""The memory backend's folder index: listings visit only the folders below their prefix."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from anystore import get_store
from anystore.backends import memory


class _NoFullScan(dict[str, Any]):
    """An entries dict that fails a test when anything iterates (copies) all of it, as only a
    listing of the whole namespace may."""

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the whole namespace was iterated")

    def keys(self) -> Any:
        raise AssertionError("the whole namespace was iterated")


def _fresh(name: str) -> memory._Namespace:
    """A new namespace whose folder index exists (built while it is empty, so no scan)."""
    namespace = memory._namespace(name)
    namespace.index()
    namespace.entries = _NoFullScan()
    return namespace


def test_the_index_is_built_by_the_first_listing_that_needs_it_and_kept() -> None:
    name = uuid.uuid4().hex
    store = get_store(f"memory://{name}")
    namespace = memory._namespace(name)
    store.put_many({f"{d}/{i}": i for d in "abc" for i in range(3)})
    store.delete("c/0")
    assert namespace.folders is None  # writes and deletes pay only for the dict
    assert len(list(store.iterate_keys())) == 8  # listing everything needs no index
    assert namespace.folders is None
    assert sorted(store.iterate_keys(prefix="a")) == ["a/0", "a/1", "a/2"]
    assert namespace.folders is not None and set(namespace.folders) == {"", "a", "b", "c"}
    store.put("d/e/0", 0)
    store.delete_many(["c/1", "c/2"])
    assert set(namespace.folders) == {"", "a", "b", "d", "d/e"}
    assert sorted(store.iterate_keys(prefix="d")) == ["d/e/0"]
    assert len(list(store.iterate_keys())) == 7
    child = get_store(f"memory://{name}/b")
    assert sorted(child.iterate_keys()) == ["0", "1", "2"]


def test_a_listing_never_iterates_the_whole_namespace() -> None:
    name = uuid.uuid4().hex
    _fresh(name)
    store = get_store(f"memory://{name}")
    store.put_many({f"other/{i:04d}": i for i in range(1000)})
    store.put_many({"mine": 0, **{f"mine/{d}/{i}": i for d in "ab" for i in range(5)}})
    assert sorted(store.iterate_keys(prefix="mine")) == sorted(
        ["mine", *(f"mine/{d}/{i}" for d in "ab" for i in range(5))]
    )
    assert sorted(store.iterate_keys(prefix="other"))[-1] == "other/0999"
    child = get_store(f"memory://{name}/mine")
    assert sorted(child.iterate_keys()) == sorted(f"{d}/{i}" for d in "ab" for i in range(5))


def test_deleted_folders_leave_nothing_behind() -> None:
    name = uuid.uuid4().hex
    namespace = _fresh(name)
    store = get_store(f"memory://{name}")
    store.put("a/b/c/d", 1)
    store.put("a/x", 2)
    store.put("top", 3)
    assert set(namespace.folders) == {"", "a", "a/b", "a/b/c"}
    store.delete("a/b/c/d")
    assert set(namespace.folders) == {"", "a"}
    store.pop("a/x")
    store.delete_many(["top", "never/written"])
    assert set(namespace.folders) == {""}
    assert not namespace.folders[""].keys and not namespace.folders[""].subfolders
    assert list(store.iterate_keys(prefix="a")) == []


def test_an_expired_key_leaves_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    name = uuid.uuid4().hex
    namespace = _fresh(name)
    store = get_store(f"memory://{name}")
    store.put("f/k", 1, ttl=1)
    store.put("f/keep", 2)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 5)
    assert list(store.iterate_keys(prefix="f")) == ["f/keep"]
    assert not store.exists("f/k")  # drops the entry, and its index entry
    assert namespace.folders["f"].keys == {"f/keep"}
    store.put("f/k", 3)
    assert sorted(store.iterate_keys(prefix="f")) == ["f/k", "f/keep"]


def test_keys_that_live_throughout_a_listing_are_listed_once() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    stable = {f"s/{d}/{i:03d}" for d in range(20) for i in range(50)}
    store.put_many(dict.fromkeys(stable, 1))
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            key = f"s/{n % 20}/churn/{n % 7}/{n}"
            store.put(key, n)
            store.delete(key)
            n += 1

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for _ in range(20):
            listed = [k for k in store.iterate_keys(prefix="s") if "churn" not in k]
            assert len(listed) == len(stable)
            assert set(listed) == stable
    finally:
        stop.set()
        writer.join()


def test_an_index_built_while_threads_write_and_delete_matches_the_entries() -> None:
    name = uuid.uuid4().hex
    store = get_store(f"memory://{name}")
    namespace = memory._namespace(name)
    store.put_many({f"pre/{i % 10}/{i}": i for i in range(2000)})
    stop = threading.Event()

    def churn(worker: int) -> None:
        n = 0
        while not stop.is_set():
            store.put(f"w{worker}/{n % 13}/{n}", n)
            if n % 3:
                store.delete(f"w{worker}/{(n - 1) % 13}/{n - 1}")
            n += 1

    writers = [threading.Thread(target=churn, args=(w,)) for w in range(3)]
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.05)
        assert namespace.folders is None
        assert len(list(store.iterate_keys(prefix="pre"))) == 2000  # builds the index meanwhile
        time.sleep(0.05)
    finally:
        stop.set()
        for writer in writers:
            writer.join()
    folders = namespace.folders
    assert folders is not None
    indexed = {key for node in folders.values() for key in node.keys}
    assert indexed == set(namespace.entries)
    assert sorted(store.iterate_keys(prefix="w1")) == sorted(
        key for key in namespace.entries if key.startswith("w1/")
    )


def test_listing_everything_takes_its_copy_at_the_first_key() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("a", 1)
    keys = store.backend.list_keys("")
    store.put("b", 2)  # written after the call, before the first next(): listed
    assert sorted(keys) == ["a", "b"]
