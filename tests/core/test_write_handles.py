"""Write handles: a handle one of whose writes failed never publishes, whatever the caller does."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

from anystore import get_store
from anystore.exceptions import AnystoreError, BackendUnavailable
from anystore.io import WriteHandle


class _Flaky(io.BytesIO):
    """A target whose second write fails (as an upload part or a chunk may)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        if self.writes == 2:
            raise self.error
        return super().write(data)


def _handle(error: BaseException) -> tuple[WriteHandle, list[str]]:
    calls: list[str] = []
    handle = WriteHandle(
        _Flaky(error), lambda _: calls.append("commit"), lambda _: calls.append("abort")
    )
    return handle, calls


def test_closing_after_a_caught_write_error_aborts_and_raises() -> None:
    handle, calls = _handle(BackendUnavailable("part 2 was refused"))
    handle.write(b"a")
    with pytest.raises(BackendUnavailable):
        handle.write(b"b")
    handle.write(b"c")  # the caller caught the error and went on
    with pytest.raises(BackendUnavailable, match=r"Nothing was published.*part 2 was refused"):
        handle.close()
    assert calls == ["abort"]
    assert handle.closed


def test_a_foreign_error_becomes_an_anystore_error_at_close() -> None:
    handle, calls = _handle(OSError(28, "No space left on device"))
    handle.write(b"a")
    with pytest.raises(OSError):
        handle.write(b"b")
    with pytest.raises(AnystoreError, match="Nothing was published") as raised:
        handle.close()
    assert isinstance(raised.value.__cause__, OSError)
    assert calls == ["abort"]


def test_a_with_block_left_by_the_write_error_keeps_that_error() -> None:
    handle, calls = _handle(BackendUnavailable("gone"))
    with pytest.raises(BackendUnavailable, match=r"^gone$"), handle:
        handle.write(b"a")
        handle.write(b"b")
    assert calls == ["abort"]


def test_a_clean_handle_still_publishes() -> None:
    calls: list[str] = []
    handle = WriteHandle(io.BytesIO(), lambda _: calls.append("commit"), lambda _: None)
    handle.write(b"a")
    handle.close()
    assert calls == ["commit"]


def test_through_a_store_the_old_value_stays() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("k", b"old")
    handle = store.open("k", "wb")
    target = handle._target  # type: ignore[attr-defined]
    real = target.write
    state = {"n": 0}

    def failing(data: Any) -> int:
        state["n"] += 1
        if state["n"] == 2:
            raise BackendUnavailable("lost a chunk")
        return int(real(data))

    target.write = failing
    handle.write(b"new-1")
    with pytest.raises(BackendUnavailable):
        handle.write(b"new-2")
    handle.write(b"new-3")
    with pytest.raises(BackendUnavailable, match="Nothing was published"):
        handle.close()
    assert store.get("k", serialization_mode="raw") == b"old"
