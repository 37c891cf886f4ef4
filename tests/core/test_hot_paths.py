"""The shortcuts of the hot paths (issue 13) keep the behaviour of the long way round."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from anystore import get_store
from anystore.backends import confine


def _rmdirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every rmdir a local store attempts."""
    attempts: list[str] = []
    original = confine.Folder.rmdir

    def rmdir(self: confine.Folder, name: str) -> None:
        attempts.append(self.key(name))
        original(self, name)

    monkeypatch.setattr(confine.Folder, "rmdir", rmdir)
    return attempts


def test_delete_tries_no_prune_while_a_written_name_remains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    store = get_store(str(tmp_path))
    for name in ("a", "b", "c"):
        store.put(f"f/{name}", 1)
    attempts = _rmdirs(monkeypatch)
    store.delete("f/a")
    store.delete("f/b")
    assert attempts == []  # "c", the last name written, is still there
    store.delete("f/c")
    assert attempts == ["f"]
    assert os.listdir(tmp_path) == []


def test_a_name_removed_by_another_store_does_not_stop_the_prune(tmp_path: Path):
    ours, other = get_store(str(tmp_path)), get_store(str(tmp_path))
    ours.put("f/g/a", 1)
    ours.put("f/g/b", 1)  # ours remembers "b" in f/g
    other.delete("f/g/b")  # behind ours' back
    ours.delete("f/g/a")
    assert os.listdir(tmp_path) == []  # both folders pruned


def test_a_remembered_name_that_became_a_folder_still_counts(tmp_path: Path):
    store, other = get_store(str(tmp_path)), get_store(str(tmp_path))
    store.put("f/a", 1)
    store.put("f/b", 1)
    other.delete("f/b")
    other.put("f/b/c", 1)  # "b" is a folder of keys now
    store.delete("f/a")
    assert sorted(os.listdir(tmp_path / "f")) == ["b"]
    assert store.get("f/b/c") == 1


def test_deletes_without_a_remembered_name_find_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    writer = get_store(str(tmp_path))
    for i in range(50):
        writer.put(f"f/{i:02d}", i)
    deleter = get_store(str(tmp_path))  # has seen nothing in f
    attempts = _rmdirs(monkeypatch)
    for i in range(50):
        deleter.delete(f"f/{i:02d}")
    assert not (tmp_path / "f").exists()
    # The first failed rmdir makes it remember a name picked at random from the folder; a
    # delete tries again only once that name is gone (about ln(50) times, never 50).
    assert attempts[-1] == "f"
    assert len(attempts) < 25


def test_a_listing_gives_deletes_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    get_store(str(tmp_path)).put("f/a", 1)
    get_store(str(tmp_path)).put("f/b", 1)
    store = get_store(str(tmp_path))
    listed = sorted(store.iterate_keys())
    attempts = _rmdirs(monkeypatch)
    remaining = set(listed)
    for key in listed:
        store.delete(key)
        remaining.discard(key)
        if remaining:
            assert (tmp_path / "f").is_dir()
    assert attempts.count("f") <= 2 and not (tmp_path / "f").exists()


def test_top_level_stat_sees_a_replaced_root(tmp_path: Path):
    root = tmp_path / "root"
    store = get_store(str(root))
    store.put("a", b"12")
    assert store.info("a").size == 2
    shutil.rmtree(root)
    root.mkdir()
    (root / "a").write_bytes(b"1234")
    assert store.info("a").size == 4  # the new root's file, not the old descriptor's
    os.remove(root / "a")
    assert not store.exists("a")


def test_top_level_stat_follows_symlinks_only_inside(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"x" * 7)
    store = get_store(str(root))
    store.put("inside", b"123")
    (root / "link").symlink_to(root / "inside")
    (root / "out").symlink_to(outside / "secret")
    assert store.info("link").size == 3
    with pytest.raises(confine.Outside):
        store.info("out")
    with pytest.raises(confine.Outside):
        store.exists("out")


def test_the_canonical_key_shortcut_agrees_with_the_full_checks(monkeypatch: pytest.MonkeyPatch):
    import random
    import re

    from anystore import keys
    from anystore.exceptions import InvalidKey

    checks = keys.normalize_key.__wrapped__  # type: ignore[attr-defined]

    def outcome(key: str) -> object:
        try:
            return checks(key)
        except InvalidKey as error:
            return str(error)

    pieces = [*"ab0_-+=,@~ ./%:\\\x00é*?[]", ".~anystore", "..", "//", "%2e", "s3://", "\ud800"]
    rng = random.Random(13)
    samples = ["a", "a/b.json", "-x/ y", "a/.b", "a/./b", "a//b", "a/", "..", "a/.~anystore-x"]
    samples += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(20000)]
    shortcut = [outcome(key) for key in samples]
    assert sum(keys._PLAIN.match(key) is not None for key in samples) > 1000  # it is exercised
    monkeypatch.setattr(keys, "_PLAIN", re.compile(r"(?!)"))  # never matches: every check runs
    assert [outcome(key) for key in samples] == shortcut
