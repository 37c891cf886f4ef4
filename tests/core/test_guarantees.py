"""Store-side pieces of the guarantees: declared key limits, the ranged reader, copy retries."""

from __future__ import annotations

import io
import uuid
from typing import IO

import pytest

import anystore
from anystore import get_store
from anystore.backends.memory import MemoryBackend
from anystore.exceptions import ConcurrentModification, InvalidKey, InvalidOption
from anystore.io import CHUNK_SIZE, open_ranged
from anystore.store import Store


class RecordingBackend(MemoryBackend):
    """A memory backend with small declared limits that records every primitive it is asked."""

    max_key_bytes = 20
    max_segment_bytes = 8

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.calls: list[str] = []

    def read(self, key: str) -> bytes | None:
        self.calls.append(f"read {key}")
        return super().read(key)

    def write(self, key: str, data: bytes, ttl: float | None = None) -> None:
        self.calls.append(f"write {key}")
        super().write(key, data, ttl)

    def write_many(self, items: list[tuple[str, bytes]], ttl: float | None = None) -> None:
        self.calls.append("write_many")
        super().write_many(items, ttl)

    def cleanup(self, older_than: float) -> int:
        self.calls.append(f"cleanup {older_than!r}")
        return 7


def recording_store() -> tuple[Store, RecordingBackend]:
    uri = f"memory://{uuid.uuid4().hex}"
    backend = RecordingBackend(uri)
    return Store(backend, uri), backend


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("123456789", "9 bytes long in UTF-8; this backend takes 8 per segment"),
        ("a/ééééé", "10 bytes long in UTF-8; this backend takes 8 per segment"),
        ("12345678/12345678/123", "21 bytes long in UTF-8; this backend takes 20"),
    ],
)
def test_declared_limits_are_enforced_before_the_backend(key: str, why: str) -> None:
    store, backend = recording_store()
    for call in (
        lambda: store.put(key, 1),
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.open(key, "wb"),
        lambda: store.put_many([("ok", 1), (key, 2)]),
    ):
        with pytest.raises(InvalidKey, match=why):
            call()
    assert backend.calls == []


def test_keys_within_the_limits_pass() -> None:
    store, backend = recording_store()
    store.put("12345678/12345678/12", 1)  # 20 bytes, segments of 8
    store.put("a/éééé", 2)  # a segment of 8 bytes in 4 characters
    assert store.get("12345678/12345678/12") == 1 and store.get("a/éééé") == 2
    assert backend.calls[:2] == ["write 12345678/12345678/12", "write a/éééé"]


def test_cleanup_validates_and_reaches_the_backend() -> None:
    store, backend = recording_store()
    assert store.cleanup(older_than=5) == 7
    assert store.cleanup() == 7
    assert backend.calls == ["cleanup 5.0", "cleanup 3600.0"]
    with pytest.raises(InvalidOption, match="older_than"):
        store.cleanup(older_than=-3)


# -- the ranged reader ---------------------------------------------------------------------


class Medium:
    """Bytes served by range, counting requests; `data` can be swapped to mimic a rewrite."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.requests: list[tuple[int, int]] = []

    def read_range(self, start: int, length: int) -> bytes:
        self.requests.append((start, length))
        return self.data[start : start + length]


def test_read_without_a_size_asks_for_whole_chunks() -> None:
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB
    medium = Medium(data)
    with open_ranged(len(data), medium.read_range) as handle:
        assert handle.read() == data
    assert len(medium.requests) == 8
    assert all(length == CHUNK_SIZE for _, length in medium.requests)


def test_a_seek_is_one_ranged_read() -> None:
    data = bytes(range(256)) * (4 * 4096)
    medium = Medium(data)
    with open_ranged(len(data), medium.read_range) as handle:
        handle.seek(3 * CHUNK_SIZE + 17)
        assert handle.read(5) == data[3 * CHUNK_SIZE + 17 : 3 * CHUNK_SIZE + 22]
        assert medium.requests == [(3 * CHUNK_SIZE + 17, CHUNK_SIZE - 17)]
        assert handle.seek(-4, io.SEEK_END) == len(data) - 4
        assert handle.read() == data[-4:]
        with pytest.raises(ValueError, match="whence"):
            handle.raw.seek(0, 7)


def test_a_value_cut_short_under_the_reader_is_an_error() -> None:
    medium = Medium(b"x" * (3 * CHUNK_SIZE))
    with open_ranged(3 * CHUNK_SIZE, medium.read_range) as handle:
        assert len(handle.read(CHUNK_SIZE)) == CHUNK_SIZE
        medium.data = b"x" * (CHUNK_SIZE + 10)
        with pytest.raises(ConcurrentModification, match="changed while it was read"):
            handle.read()


def test_closing_releases_what_the_reader_holds() -> None:
    released: list[bool] = []
    handle = open_ranged(3, Medium(b"abc").read_range, lambda: released.append(True))
    handle.close()
    handle.close()
    assert released == [True]


# -- copy never publishes a value of two versions ------------------------------------------


class FlakySource(MemoryBackend):
    """Its first `conflicts` read handles fail halfway as if the value had been rewritten."""

    conflicts = 1

    def open_read(self, key: str) -> IO[bytes] | None:
        data = self.read(key)
        if data is None:
            return None
        if self.conflicts > 0:
            self.conflicts -= 1
            half = len(data) // 2

            def torn(start: int, length: int) -> bytes:
                if start >= half:
                    raise ConcurrentModification("rewritten")
                return data[start : start + length]

            return open_ranged(len(data), torn)
        return io.BytesIO(data)


def flaky_store(conflicts: int) -> Store:
    uri = f"memory://{uuid.uuid4().hex}"
    backend = FlakySource(uri)
    backend.conflicts = conflicts
    return Store(backend, uri)


def test_copy_reads_a_rewritten_value_again() -> None:
    source = flaky_store(conflicts=2)
    value = b"v" * (3 * CHUNK_SIZE)
    source.put("k", value)
    target = get_store(f"memory://{uuid.uuid4().hex}")
    report = anystore.copy(source, target)
    assert report.copied == ["k"]
    assert target.get("k", serialization_mode="raw") == value


def test_copy_gives_up_on_a_value_that_keeps_changing() -> None:
    source = flaky_store(conflicts=10)
    source.put("k", b"v" * (3 * CHUNK_SIZE))
    target = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(ConcurrentModification):
        anystore.copy(source, target)
    assert not target.exists("k")


# -- the kit for plugin authors --------------------------------------------------------------


def test_the_testing_extra_brings_what_the_kit_imports() -> None:
    from importlib.metadata import entry_points, requires

    needs = [r for r in requires("anystore-core") or [] if "extra == 'testing'" in r]
    assert {r.split(">")[0] for r in needs} == {"pytest", "hypothesis"}
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("anystore") == "anystore.pytest_plugin"


def test_a_subclass_cannot_override_kit_tests() -> None:
    from anystore.testing import StoreTests

    class Bent(StoreTests):
        def test_put_overwrites(self, store: Store) -> None:  # weakened on purpose
            pass

        def test_read_handles_seek(self, store: Store) -> None:
            pass

    with pytest.raises(AssertionError, match=r"Bent overrides kit tests \['test_put_overwrites'"):
        Bent().test_kit_tests_are_not_overridden()
