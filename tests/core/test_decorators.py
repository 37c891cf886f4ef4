"""anycache beyond the conformance kit: bare use, stable keys, the environment switch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from anystore import Store, get_store
from anystore.backends.fsspec import FsspecBackend
from anystore.decorators import anycache, default_key
from anystore.exceptions import InvalidOption, NotSupported


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
