"""Locks on local files across processes, and their files on disk."""

from __future__ import annotations

import os
from pathlib import Path

from anystore import get_store
from tests.locks import (
    assert_anycache_computes_once_across_processes,
    assert_crashed_holder_lapses,
    assert_exclusive_across_processes,
)


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    assert_exclusive_across_processes(str(tmp_path / "store"))


def test_crashed_holder_lapses(tmp_path: Path) -> None:
    assert_crashed_holder_lapses(str(tmp_path / "store"))


def test_anycache_computes_once_across_processes(tmp_path: Path) -> None:
    assert_anycache_computes_once_across_processes(str(tmp_path / "store"), tmp_path / "calls")


def test_lock_file_sits_beside_the_key_and_goes_on_release(tmp_path: Path) -> None:
    store = get_store(str(tmp_path))
    with store.lock("reports/2026"):
        assert os.listdir(tmp_path / "reports") == [".~anystore-lock~2026"]
        # A store opened on the folder meets the same lock.
        assert not get_store(str(tmp_path / "reports")).lock("2026").acquire(blocking=False)
    assert os.listdir(tmp_path) == []


def test_damaged_lock_file_does_not_block_forever(tmp_path: Path) -> None:
    (tmp_path / ".~anystore-lock~job").write_text("not a lock")
    with get_store(str(tmp_path)).lock("job", timeout=0):
        pass
