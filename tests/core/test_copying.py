"""Copying between stores of different backends: streaming, skipping, resuming."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import anystore
from anystore import get_store


class Interrupted(Exception):
    pass


def test_interrupted_copy_resumes_without_recopying(tmp_path: Path):
    source = get_store(f"memory://{uuid.uuid4().hex}")
    target = get_store(str(tmp_path / "target"))
    source.put_many({f"docs/{i:04d}": {"n": i} for i in range(1000)})
    seen: list[str] = []

    def stop_halfway(key: str, outcome: str) -> None:
        seen.append(key)
        if len(seen) == 500:
            raise Interrupted

    with pytest.raises(Interrupted):
        anystore.copy(source, target, progress=stop_halfway)
    assert len(list(target.iterate_keys())) == 500
    report = anystore.copy(source, target)
    assert len(report.copied) == 500 and len(report.skipped) == 500
    assert sorted(report.copied) == sorted(set(source.iterate_keys()) - set(seen))
    assert target.get_many(source.iterate_keys()) == source.get_many(source.iterate_keys())


def test_differing_keys_are_kept_unless_overwrite(tmp_path: Path):
    source = get_store(f"memory://{uuid.uuid4().hex}")
    target = get_store(str(tmp_path))
    source.put_many({"same": 1, "differs": "new", "only/source": 3})
    target.put_many({"same": 1, "differs": "old"})
    report = source.copy_to(target)
    assert (report.copied, report.skipped, report.kept) == (["only/source"], ["same"], ["differs"])
    assert target.get("differs") == "old"
    report = source.copy_to(target, overwrite=True)
    assert report.copied == ["differs"] and target.get("differs") == "new"


def test_prefix_and_glob(tmp_path: Path):
    source = get_store(str(tmp_path / "src"))
    target = get_store(f"memory://{uuid.uuid4().hex}")
    source.put_many({"a/x.json": 1, "a/y.txt": 2, "b/z.json": 3})
    report = source.copy_to(target, prefix="a", glob="*.json")
    assert report.copied == ["a/x.json"]
    assert list(target.iterate_keys()) == ["a/x.json"]


def test_large_value_streams(tmp_path: Path):
    source = get_store(str(tmp_path / "src"))
    target = get_store(str(tmp_path / "dst"))
    with source.open("big", "wb") as handle:
        for _ in range(20):
            handle.write(b"x" * (1 << 20))
    assert source.copy_to(target).copied == ["big"]
    assert target.checksum("big") == source.checksum("big")
    assert source.copy_to(target).skipped == ["big"]


def test_overwrite_replaces_a_large_value_of_the_same_size(tmp_path: Path) -> None:
    # Over 16 MiB values are compared by size alone, unless overwrite asks for the truth.
    mib = 1024 * 1024
    source = get_store(str(tmp_path / "src"))
    target = get_store(str(tmp_path / "dst"))
    data = bytes(range(256)) * (17 * mib // 256)
    source.put("big", data, serialization_mode="raw")
    source.put("same", data, serialization_mode="raw")
    assert len(source.copy_to(target).copied) == 2
    changed = bytearray(data)
    changed[3 * mib + 100] ^= 0xFF  # one byte, deep in the fourth chunk
    source.put("big", bytes(changed), serialization_mode="raw")
    report = source.copy_to(target)  # without overwrite: same size passes as the same
    assert sorted(report.skipped) == ["big", "same"] and not report.copied
    report = source.copy_to(target, overwrite=True)
    assert (report.copied, report.skipped) == (["big"], ["same"])
    assert target.get("big", serialization_mode="raw") == bytes(changed)
