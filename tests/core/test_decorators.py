"""anycache beyond the conformance kit: bare use, stable keys, the environment switch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from anystore.decorators import anycache, default_key
from anystore.exceptions import InvalidOption


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
    from anystore import get_store

    with pytest.raises(InvalidOption):
        anycache(store=get_store("memory://"), uri="memory://")
