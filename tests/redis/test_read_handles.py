"""Redis read handles see one version (issue 10, F1), seek by GETRANGE and read 1 MiB ranges (F13);
streaming writes take any bytes-like chunks."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
import redis

from anystore import get_store
from anystore.exceptions import ConcurrentModification
from anystore.store import Store
from anystore.testing import ExpiryClock, with_growing_ttls
from tests.redis.servers import HOST, PORT

MIB = 1 << 20


@pytest.fixture
def store(prefix: str) -> Store:
    return get_store(f"redis://{HOST}:{PORT}/0/{prefix}")


def _overwrite_with_put(store: Store) -> None:
    store.put("k", b"B" * (12 * MIB))


def _overwrite_same_size(store: Store) -> None:
    store.put("k", b"A" * (11 * MIB) + b"C" * MIB)  # same size: only the version tells


def _overwrite_with_put_many(store: Store) -> None:
    store.put_many({"k": b"A" * (12 * MIB), "other": b"x"})


def _overwrite_with_stream(store: Store) -> None:
    with store.open("k", "wb") as handle:
        handle.write(b"A" * (12 * MIB))


def _delete(store: Store) -> None:
    store.delete("k")


def _delete_many(store: Store) -> None:
    store.delete_many(["k"])


def _pop(store: Store) -> None:
    store.pop("k")


CHANGES: dict[str, Callable[[Store], None]] = {
    "put": _overwrite_with_put,
    "put same size": _overwrite_same_size,
    "put_many same bytes": _overwrite_with_put_many,
    "streamed write same bytes": _overwrite_with_stream,
    "delete": _delete,
    "delete_many": _delete_many,
    "pop": _pop,
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_mid_read_raises_on_the_next_read(store: Store, change: str) -> None:
    store.put("k", b"A" * (12 * MIB))
    with store.open("k", "rb") as handle:
        assert handle.read(MIB) == b"A" * MIB
        CHANGES[change](store)
        # Redis keeps no old version: the handle must refuse, never mix or cut short.
        with pytest.raises(ConcurrentModification, match="open it again"):
            handle.read()


def test_an_expiry_mid_read_raises(store: Store) -> None:
    def attempt(ttl: float) -> None:
        clock = ExpiryClock(ttl)
        store.put("k", b"A" * (3 * MIB), ttl=ttl)
        clock.wrote()
        handle = None
        try:
            with clock.before_expiry():  # opened and first read while the value still lived
                handle = store.open("k", "rb")
                assert handle.read(MIB) == b"A" * MIB
            clock.wait_out()
            with pytest.raises(ConcurrentModification):
                handle.read(MIB)
        finally:
            if handle is not None:
                handle.close()

    with_growing_ttls(store, attempt)


def test_a_handle_reads_its_version_whole_and_a_new_one_sees_the_next(store: Store) -> None:
    old = bytes(range(256)) * (12 * 4096)
    store.put("k", old)
    with store.open("k", "rb") as handle:
        assert handle.read() == old
        store.put("k", b"new")  # after the last byte: nothing left to tear
    with store.open("k", "rb") as handle:
        assert handle.read() == b"new"


def test_a_value_written_by_another_tool_is_checked_by_size(
    store: Store, client: redis.Redis, prefix: str
) -> None:
    # No metadata hash, so no version token: a change of size is still caught.
    client.set(f"{prefix}/raw", b"A" * (3 * MIB))
    with store.open("raw", "rb") as handle:
        handle.read(MIB)
        client.set(f"{prefix}/raw", b"B" * (2 * MIB))
        with pytest.raises(ConcurrentModification):
            handle.read()


def test_copy_from_a_value_overwritten_mid_copy_is_never_torn(store: Store, prefix: str) -> None:
    target = get_store(f"redis://{HOST}:{PORT}/0/{prefix}-target")
    store.put("k", b"A" * (4 * MIB))
    with (
        pytest.raises(ConcurrentModification),
        store.open("k", "rb") as source,
        target.open("k", "wb") as sink,
    ):
        sink.write(source.read(MIB))
        store.put("k", b"B" * (4 * MIB))
        while chunk := source.read(MIB):
            sink.write(chunk)
    # The error left the block: the write was discarded, nothing torn was published.
    assert not target.exists("k")


class RangeSpy:
    """Records the GETRANGE calls that read handles make."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, int]] = []
        original = redis.client.Pipeline.getrange

        def getrange(pipe: Any, key: str, start: int, end: int) -> Any:
            self.calls.append((start, end - start + 1))
            return original(pipe, key, start, end)

        monkeypatch.setattr(redis.client.Pipeline, "getrange", getrange)


def test_read_without_size_fetches_1_mib_ranges(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * (4096 * 3) + b"tail"  # 3 MiB and 4 bytes
    store.put("k", data)
    spy = RangeSpy(monkeypatch)
    with store.open("k", "rb") as handle:
        assert handle.read() == data
    assert spy.calls == [(0, MIB), (MIB, MIB), (2 * MIB, MIB), (3 * MIB, 4)]


def test_a_seek_is_one_ranged_read(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * (4096 * 8)  # 8 MiB
    store.put("k", data)
    spy = RangeSpy(monkeypatch)
    with store.open("k", "rb") as handle:
        assert handle.seekable()
        handle.seek(-10, io.SEEK_END)
        assert handle.read(10) == data[-10:]
        handle.seek(5 * MIB + 3)
        assert handle.tell() == 5 * MIB + 3
        assert handle.read(4) == data[5 * MIB + 3 : 5 * MIB + 7]
        handle.seek(-2, io.SEEK_CUR)
        assert handle.read(2) == data[5 * MIB + 5 : 5 * MIB + 7]  # from the buffer
    # Nothing before the seek targets was read: one range at each target, none from 0.
    assert [start for start, _ in spy.calls] == [len(data) - 10, 5 * MIB + 3]


def test_streaming_writes_take_any_bytes_like_chunks(store: Store) -> None:
    pieces: list[Any] = [
        bytearray(b"a" * (MIB + MIB // 2)),  # more than a chunk, not a whole number of them
        b"b" * 10,
        memoryview(b"c" * (3 * MIB)),
        memoryview(bytearray(b"d" * 300)),
        b"",
        b"e" * (MIB - 310),
        io.BytesIO(b"f" * (2 * MIB + 1)).getbuffer(),
    ]
    expected = b"".join(bytes(piece) for piece in pieces)
    with store.open("w", "wb") as handle:
        for piece in pieces:
            assert handle.write(piece) == len(piece)
        pieces[0][:] = b"z" * len(pieces[0])  # the caller reuses its buffer: already sent
    assert store.get("w", serialization_mode="raw") == expected
