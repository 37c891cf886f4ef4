"""Compression on streams: `store.open(key, mode, compression=...)` on memory, local, SQLite and
Redis (S3 in tests/s3/test_smart_s3.py), the codecs' formats, inference, errors, bounded memory.

`store_uri` (an empty store URI per backend) is shared with test_smart.py and test_conveniences.py.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from anystore import get_store
from anystore.compression import COMPRESSIONS, resolve
from anystore.exceptions import DoesNotExist, InvalidOption, NotSupported, SerializationError
from tests.services import require_port

REDIS = ("127.0.0.1", 6379)

DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.decompress,
    "bz2": bz2.decompress,
    "xz": lzma.decompress,
    "zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    "lz4": lz4.frame.decompress,
}
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": lambda data: zstandard.ZstdCompressor().compress(data),
    "lz4": lz4.frame.compress,
}


@pytest.fixture(params=["memory", "local", "sqlite", "redis"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of an empty store on each backend (Redis: a key prefix of this test's own)."""
    kind = request.param
    if kind == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif kind == "local":
        yield str(tmp_path / "local")
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path}/values.db"
    else:
        require_port(*REDIS, "Redis")
        import redis

        prefix = f"anystore-test14-{uuid.uuid4().hex}"
        yield f"redis://{REDIS[0]}:{REDIS[1]}/0/{prefix}"
        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


TEXT = "".join(f"line {i}: ünïcode ✓\n" for i in range(2000))


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_binary_round_trip_stores_the_codecs_own_format(store_uri: str, codec: str) -> None:
    store = get_store(store_uri)
    data = TEXT.encode("utf-8")
    with store.open("data.bin", "wb", compression=codec) as handle:
        for start in range(0, len(data), 4096):
            handle.write(data[start : start + 4096])
    stored = store.get("data.bin", serialization_mode="raw")
    assert stored != data and len(stored) < len(data)
    assert DECOMPRESS[codec](stored) == data  # a file the codec's own tool reads
    with store.open("data.bin", "rb", compression=codec) as handle:
        assert handle.read() == data


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_text_modes_and_lines(store_uri: str, codec: str) -> None:
    store = get_store(store_uri)
    with store.open("notes.txt", "w", compression=codec) as handle:
        handle.write(TEXT)
    with store.open("notes.txt", "r", compression=codec) as handle:
        lines = list(handle)
    assert lines[0] == "line 0: ünïcode ✓\n" and len(lines) == 2000
    assert "".join(lines) == TEXT


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_reads_what_other_tools_compressed(store_uri: str, codec: str) -> None:
    store = get_store(store_uri)
    store.put("foreign", COMPRESS[codec](b"made elsewhere\n" * 100), serialization_mode="raw")
    with store.open("foreign", "rb", compression=codec) as handle:
        assert handle.read() == b"made elsewhere\n" * 100


def test_infer_from_the_extension(store_uri: str) -> None:
    store = get_store(store_uri)
    for key, codec in [("a/rows.csv.gz", "gz"), ("b.json.zst", "zst"), ("c.XZ", "xz")]:
        with store.open(key, "wb", compression="infer") as handle:
            handle.write(b"payload")
        assert DECOMPRESS[codec](store.get(key, serialization_mode="raw")) == b"payload"
        with store.open(key, "rb", compression="infer") as handle:
            assert handle.read() == b"payload"
    with store.open("plain.txt", "wb", compression="infer") as handle:
        handle.write(b"as it is")
    assert store.get("plain.txt", serialization_mode="raw") == b"as it is"


def test_resolve_names_aliases_and_errors() -> None:
    assert resolve(None) is None
    assert resolve("gzip") == "gz" and resolve("zstd") == "zst" and resolve("bzip2") == "bz2"
    assert resolve("infer", "dir.gz/file") is None  # only the key's own name counts
    assert resolve("infer", "x.tar.bz2") == "bz2" and resolve("infer", ".gz") is None
    with pytest.raises(InvalidOption, match=r"Unknown compression 'rar'.*gz, bz2, xz, zst, lz4"):
        resolve("rar")


def test_unknown_codec_fails_before_anything_is_written() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(InvalidOption, match="Unknown compression"):
        store.open("k", "wb", compression="brotli")
    assert not store.exists("k")


def test_missing_key_is_missing_with_compression() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(DoesNotExist):
        store.open("nope.gz", "rb", compression="infer")
    assert store.open("nope.gz", "rb", compression="gz", raise_on_nonexist=False) is None


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_data_that_is_not_the_codecs_is_a_serialization_error(codec: str) -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("plain", b"this was never compressed at all" * 10, serialization_mode="raw")
    with (
        pytest.raises(SerializationError, match=f"not {codec} data.*without compression"),
        store.open("plain", "rb", compression=codec) as handle,
    ):
        handle.read()


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_a_failed_write_publishes_nothing(store_uri: str, codec: str) -> None:
    store = get_store(store_uri)
    store.put("kept", b"old", serialization_mode="raw")
    with pytest.raises(RuntimeError), store.open("kept", "wb", compression=codec) as handle:
        handle.write(b"new bytes" * 1000)
        raise RuntimeError("boom")
    assert store.get("kept", serialization_mode="raw") == b"old"


@pytest.mark.parametrize("codec", ["gz", "zst"])
def test_compressed_reads_seek(codec: str) -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    data = bytes(range(256)) * 4000
    with store.open("k", "wb", compression=codec) as handle:
        handle.write(data)
    with store.open("k", "rb", compression=codec) as handle:
        assert handle.seekable()
        handle.seek(500_000)
        assert handle.read(10) == data[500_000:500_010]
        handle.seek(100)  # backwards: decompressed again from the start
        assert handle.read(5) == data[100:105] and handle.tell() == 105
        assert handle.seek(-6, 2) == len(data) - 6
        assert handle.read() == data[-6:]


def test_lz4_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lz4", None)
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(NotSupported, match=r'pip install "anystore-core\[lz4\]"'):
        store.open("k.lz4", "wb", compression="infer")


def test_zstd_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(NotSupported, match=r'pip install "anystore-core\[zstd\]"'):
        store.open("k", "rb", compression="zst")


@pytest.mark.parametrize("codec", ["gz", "zst", "lz4"])
def test_streams_in_bounded_memory(tmp_path: Path, codec: str) -> None:
    """48 MB through a compressed write and read on a local store, with little Python memory."""
    store = get_store(str(tmp_path))
    chunk = (b"0123456789abcdef" * 4096) + uuid.uuid4().bytes * 64  # 64 KiB + some entropy
    count = 48 * 1024 * 1024 // len(chunk)
    tracemalloc.start()
    try:
        with store.open("big", "wb", compression=codec) as handle:
            for _ in range(count):
                handle.write(chunk)
        total = 0
        with store.open("big", "rb", compression=codec) as handle:
            while block := handle.read(1024 * 1024):
                total += len(block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == count * len(chunk)
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
