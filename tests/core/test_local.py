"""Local-file specifics: atomic writes, temp files, existing folders, lazy listing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from anystore import get_store
from anystore.exceptions import InvalidKey, ReadOnly


def test_existing_files_are_keys(tmp_path: Path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "readme.txt").write_text("hello")
    (tmp_path / "top.json").write_text('{"x": 1}')
    store = get_store(str(tmp_path))
    assert sorted(store.iterate_keys()) == ["docs/a/readme.txt", "top.json"]
    assert store.get("docs/a/readme.txt") == "hello"
    assert store.info("docs/a/readme.txt").mimetype == "text/plain"
    child = get_store(str(tmp_path / "docs"))
    assert list(child.iterate_keys()) == ["a/readme.txt"]


def test_values_are_plain_files(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put("a/b.txt", "text")
    store.put("n", {"x": 1})
    assert (tmp_path / "a" / "b.txt").read_text() == "text"
    assert (tmp_path / "n").read_bytes() == b'{"x":1}'


def test_temp_files_never_listed(tmp_path: Path):
    store = get_store(str(tmp_path))
    handle = store.open("partial", "wb")
    handle.write(b"x" * 1000)
    assert list(store.iterate_keys()) == []
    assert any(name.startswith(".~anystore") for name in os.listdir(tmp_path))
    handle.discard()
    assert os.listdir(tmp_path) == []


def test_readers_never_see_half_a_value(tmp_path: Path):
    store = get_store(str(tmp_path))
    values = [b"a" * 500_000, b"b" * 700_000]
    store.put("k", values[0])
    stop = threading.Event()
    seen: set[bytes] = set()

    def write() -> None:
        i = 0
        while not stop.is_set():
            store.put("k", values[i % 2])
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(300):
            data = store.get("k", serialization_mode="raw")
            assert data in values
            seen.add(data[:1])
    finally:
        stop.set()
        writer.join()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".~")] == []


def test_key_cannot_be_value_and_folder(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put("a", 1)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("a/b", 2)
    store.put("c/d", 1)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("c", 2)
    assert store.get("a") == 1 and store.get("c/d") == 1


def test_delete_prunes_empty_folders(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    store.put("x/y/z", 1)
    store.delete("x/y/z")
    assert os.listdir(tmp_path / "root") == []
    store.put("x", 2)  # the name is free again
    assert store.get("x") == 2


def test_listing_walks_only_below_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = get_store(str(tmp_path))
    store.put_many({f"big/{i}/v": i for i in range(20)})
    store.put_many({"small/a": 1, "small/b/c": 2})
    visited: list[str] = []
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        visited.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert sorted(store.iterate_keys(prefix="small")) == ["small/a", "small/b/c"]
    assert all("big" not in path for path in visited)


def test_read_only_fsspec_protocol(tmp_path: Path):
    import zipfile

    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/b.txt", "hello")
        handle.writestr("c.json", '{"x": 1}')
    store = get_store(f"zip://::{archive}")
    assert sorted(store.iterate_keys()) == ["a/b.txt", "c.json"]
    assert store.get("c.json") == {"x": 1}
    with pytest.raises(ReadOnly, match="zip"):
        store.put("new", 1)
