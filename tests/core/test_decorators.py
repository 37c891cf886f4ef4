"""anycache beyond the conformance kit: bare use, stable keys, the environment switch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from anystore import Store, get_store
from anystore.backends.fsspec import FsspecBackend
from anystore.decorators import anycache, default_key
from anystore.exceptions import InvalidOption, NotSupported, SerializationError


def sample(*args: object, **kwargs: object) -> None:
    """A function whose name goes into keys."""


def test_bare_decorator_uses_the_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    calls: list[int] = []

    @anycache
    def inc(x: int) -> int:
        calls.append(x)
        return x + 1

    assert inc(1) == 2 and inc(1) == 2 and calls == [1]
    assert len(list((tmp_path / ".anystore").rglob("*"))) >= 1


def test_keys_keep_types_apart_and_ignore_dict_order():
    keys = {
        default_key(sample, (1,), {}),
        default_key(sample, ("1",), {}),
        default_key(sample, (1.0,), {}),
        default_key(sample, (True,), {}),
        default_key(sample, ([1],), {}),
        default_key(sample, ((1,),), {}),
        default_key(sample, (), {"x": 1}),
    }
    assert len(keys) == 7
    assert default_key(sample, ({"a": 1, "b": 2},), {}) == default_key(
        sample, ({"b": 2, "a": 1},), {}
    )
    assert default_key(sample, (1,), {}).startswith(f"{__name__}.sample/")


def test_keys_are_stable_across_processes():
    args = (1, "a", b"\x00", [1.5, None], {"k": {3, 1, 2}})
    code = (
        "from anystore.decorators import default_key\n"
        "def sample(*a, **k): pass\n"
        f"sample.__module__ = {__name__!r}\n"
        f"print(default_key(sample, {args!r}, {{'z': 1}}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == default_key(sample, args, {"z": 1})


def test_environment_switch_bypasses_reading(monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []

    @anycache(uri="memory://env-switch")
    def ident(x: int) -> int:
        calls.append(x)
        return x

    ident(1)
    monkeypatch.setenv("ANYSTORE_USE_CACHE", "0")
    ident(1)
    monkeypatch.delenv("ANYSTORE_USE_CACHE")
    ident(1)
    assert calls == [1, 1]


def test_store_and_uri_together_are_refused():
    with pytest.raises(InvalidOption):
        anycache(store=get_store("memory://"), uri="memory://")


def test_lock_option_on_async_and_sync_functions(tmp_path: Path):
    store = get_store(str(tmp_path))
    calls: list[int] = []

    @anycache(store=store, lock=True, lock_ttl=30)
    async def slow(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.05)
        return x + 1

    async def together() -> list[int]:
        return list(await asyncio.gather(slow(1), slow(1), slow(2)))

    assert asyncio.run(together()) == [2, 2, 3]
    assert sorted(calls) == [1, 2]  # slow(1) once, though asked for twice at once

    @anycache(store=store, lock=True)
    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    assert double(4) == 8 and double(4) == 8 and calls[-1:] == [4] and len(calls) == 3
    # Every computation's lock was released: no lock files are left.
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".~anystore-lock")]


def test_lock_option_needs_a_store_that_can_lock():
    with pytest.raises(InvalidOption):
        anycache(lock=True, lock_ttl=0)

    uri = "memory://fsspec-cannot-lock"
    cannot_lock = Store(FsspecBackend(uri), uri)  # fsspec has no atomic create

    @anycache(store=cannot_lock, lock=True)
    def nothing() -> None:
        return None

    with pytest.raises(NotSupported, match="cannot create a key atomically"):
        nothing()


class Item(BaseModel):
    """The model of the `model=` tests."""

    name: str
    count: int = 0


# How anycache wraps a function: sync or async, with or without the store lock.
VARIANTS = ["sync", "async", "sync-lock", "async-lock"]


def cached(
    store: Store, variant: str, result: Callable[[int], Any], calls: list[int], **options: Any
) -> Callable[[int], Any]:
    """`result` under anycache (keys `item/<x>`) in `variant`, as a plain function to call."""
    lock = variant.endswith("-lock")
    if variant.startswith("async"):

        @anycache(store=store, key_func=lambda x: f"item/{x}", lock=lock, **options)
        async def compute_async(x: int) -> Any:
            calls.append(x)
            return result(x)

        return lambda x: asyncio.run(compute_async(x))

    @anycache(store=store, key_func=lambda x: f"item/{x}", lock=lock, **options)
    def compute(x: int) -> Any:
        calls.append(x)
        return result(x)

    return compute


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_result_that_does_not_validate_is_not_cached(tmp_path: Path, variant: str) -> None:
    store = get_store(str(tmp_path))
    calls: list[int] = []
    bad = cached(store, variant, lambda x: {"b": x}, calls, model=Item)

    for _ in range(2):  # the key is not poisoned: the second call computes and fails alike
        with pytest.raises(SerializationError) as raised:
            bad(1)
        message = str(raised.value)
        assert "compute" in message and "'item/1'" in message and "Item" in message
        assert "nothing was cached" in message
    assert calls == [1, 1]
    assert not store.exists("item/1")


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_first_call_returns_what_a_hit_returns(tmp_path: Path, variant: str) -> None:
    store = get_store(str(tmp_path))
    calls: list[int] = []
    make = cached(store, variant, lambda x: {"name": str(x)}, calls, model=Item)

    first = make(1)
    assert type(first) is Item and first == Item(name="1", count=0)
    assert make(1) == first and calls == [1]


def test_model_of_the_store_is_checked_too(tmp_path: Path) -> None:
    store = get_store(str(tmp_path), model=Item)  # get() applies it, so the write must as well
    calls: list[int] = []
    bad = cached(store, "sync", lambda x: {"b": x}, calls)

    with pytest.raises(SerializationError, match="nothing was cached"):
        bad(1)
    assert not store.exists("item/1")


def test_model_check_reads_back_as_the_store_does(tmp_path: Path) -> None:
    # An instance is a valid Item as it is, but its stored JSON leaves out an excluded field the
    # model requires: checking the returned object alone would cache an entry every get refuses.
    from pydantic import Field

    class Secretive(BaseModel):
        name: str
        token: str = Field(exclude=True)

    store = get_store(str(tmp_path))
    calls: list[int] = []
    make = cached(store, "sync", lambda x: Secretive(name="a", token="t"), calls, model=Secretive)

    with pytest.raises(SerializationError, match="nothing was cached"):
        make(1)
    assert not store.exists("item/1")


def test_model_none_is_not_checked_when_the_store_does_not_keep_it(tmp_path: Path) -> None:
    store = get_store(str(tmp_path), store_none_values=False)
    calls: list[int] = []
    maybe = cached(store, "sync", lambda x: None if x < 0 else {"name": "a"}, calls, model=Item)

    # None is not written, so nothing can poison the key: it is returned and asked again later.
    assert maybe(-1) is None and maybe(-1) is None and calls == [-1, -1]
    assert type(maybe(1)) is Item  # and a result is still validated into the model


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_entry_that_no_longer_validates_is_recomputed(tmp_path: Path, variant: str) -> None:
    store = get_store(str(tmp_path))
    store.put("item/1", {"b": 1})  # written by an older version of the function
    calls: list[int] = []
    make = cached(store, variant, lambda x: {"name": str(x)}, calls, model=Item)

    assert make(1) == Item(name="1") and calls == [1]
    assert store.get("item/1", model=Item) == Item(name="1")  # overwritten
    assert make(1) == Item(name="1") and calls == [1]  # and read from now on


def test_a_function_returning_none_caches_with_a_model() -> None:
    # None is stored as JSON null, which no model validates: every call raised before.
    class Thing(BaseModel):
        name: str

    store = get_store(f"memory://{uuid.uuid4().hex}")
    calls: list[int] = []

    @anycache(store=store, model=Thing)
    def find(x: int) -> Thing | None:
        calls.append(x)
        return None if x < 0 else Thing(name=str(x))

    assert find(-1) is None and find(-1) is None
    assert find(2) == Thing(name="2") and find(2) == Thing(name="2")
    assert calls == [-1, 2]
    store.put("null", None)
    assert store.get("null", model=Thing) is None


def test_a_model_that_takes_null_gets_it() -> None:
    from pydantic import RootModel

    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("n", None)
    maybe = RootModel[int | None]
    assert store.get("n", model=maybe) == maybe(None)  # validated, not replaced by None
