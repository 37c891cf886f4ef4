"""Layers: `readonly::` and `gzip::` on several backends, chaining, third-party layers, errors."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import anystore
from anystore import get_store
from anystore.cli import main
from anystore.exceptions import BackendNotFound, ReadOnly, SerializationError
from anystore.layers.gzip import GzipLayer
from anystore.store import Store
from anystore.testing import StoreTests
from tests.core.test_plugins import install_plugin
from tests.services import require_port


class TestGzipSqlite(StoreTests):
    """The gzip layer over a plugin backend (SQLite file): the whole kit."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return get_store(f"gzip::sqlite:///{tmp_path}/gz.db")


@pytest.fixture(params=["memory", "local", "sqlite", "redis"])
def plain_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of an empty store on each kind of backend."""
    if request.param == "memory":
        yield f"memory://{uuid.uuid4().hex}"
    elif request.param == "local":
        yield str(tmp_path / "store")
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ro.db"
    else:
        require_port("127.0.0.1", 6379, "Redis")
        uri = f"redis://127.0.0.1:6379/0/layers-{uuid.uuid4().hex}"
        yield uri
        get_store(uri).delete_many(list(get_store(uri).iterate_keys()))


def test_readonly_refuses_every_write_before_the_backend(plain_uri: str) -> None:
    plain = get_store(plain_uri)
    plain.put_many({"a": 1, "dir/b": "text"})
    store = get_store(f"readonly::{plain_uri}")
    assert store.get("a") == 1
    assert sorted(store.iterate_keys()) == ["a", "dir/b"]
    with store.open("dir/b", "rb") as handle:
        assert handle.read() == b"text"
    for write in (
        lambda: store.put("a", 2),
        lambda: store.put_many({"c": 3}),
        lambda: store.delete("a"),
        lambda: store.delete_many(["a"]),
        lambda: store.pop("a"),
        lambda: store.touch("t"),
        lambda: store.open("a", "wb"),
        lambda: store.open("a", "w"),
        lambda: store.lock("a"),
        lambda: store.cleanup(),
    ):
        with pytest.raises(ReadOnly, match="read-only"):
            write()
    assert plain.get("a") == 1 and sorted(plain.iterate_keys()) == ["a", "dir/b"]
    target = get_store(f"readonly::memory://{uuid.uuid4().hex}")
    with pytest.raises(ReadOnly):
        anystore.copy(plain, target)


def test_gzip_stores_real_gzip_and_streams_through_it(plain_uri: str) -> None:
    store = get_store(f"gzip::{plain_uri}")
    plain = get_store(plain_uri)
    text = b"the same line again\n" * 50_000  # 1 MB, compresses well
    with store.open("log.txt", "wb") as handle:
        for line in text.splitlines(keepends=True)[:25_000]:
            handle.write(line)
        handle.write(text[len(text) // 2 :])
    stored = plain.get("log.txt", serialization_mode="raw")
    assert len(stored) < len(text) // 50
    assert gzip.decompress(stored) == text
    assert store.info("log.txt").size == len(text)
    assert store.get("log.txt", serialization_mode="raw") == text
    assert list(store.stream("log.txt"))[:2] == ["the same line again"] * 2
    store.put("small", {"n": 1})
    assert gzip.decompress(plain.get("small", serialization_mode="raw")) == b'{"n":1}'
    assert store.get_many(["small", "missing"]) == {"small": {"n": 1}}


def test_gzip_refuses_values_written_without_it() -> None:
    uri = f"memory://{uuid.uuid4().hex}"
    get_store(uri).put("plain", "not compressed")
    store = get_store(f"gzip::{uri}")
    with pytest.raises(SerializationError, match="without the gzip layer"):
        store.get("plain")
    with pytest.raises(SerializationError, match="without the gzip layer"):
        store.open("plain", "rb").read()


def test_copy_through_layers(tmp_path: Path) -> None:
    source = get_store(f"memory://{uuid.uuid4().hex}")
    source.put_many({f"doc/{i}": {"i": i} for i in range(20)})
    target_uri = str(tmp_path / "archive")
    assert main(["copy", source.uri, f"gzip::{target_uri}"]) == 0
    packed = get_store(target_uri)
    assert gzip.decompress(packed.get("doc/3", serialization_mode="raw")) == b'{"i":3}'
    back = get_store(f"memory://{uuid.uuid4().hex}")
    report = anystore.copy(get_store(f"readonly::gzip::{target_uri}"), back)
    assert len(report.copied) == 20 and back.get("doc/7") == {"i": 7}


def test_layers_stack_outermost_first() -> None:
    store = get_store(f"readonly::gzip::memory://{uuid.uuid4().hex}")
    assert type(store.backend).__name__ == "ReadOnlyLayer"
    assert isinstance(store.backend.inner, GzipLayer)  # type: ignore[attr-defined]
    assert store.uri.startswith("readonly::gzip::memory://")


def test_unknown_layer_names_the_installed_ones(tmp_path: Path) -> None:
    with pytest.raises(BackendNotFound, match=r"gzpi::.*gzip::, readonly::"):
        get_store(f"gzpi::{tmp_path}")
    assert not (Path.cwd() / "gzpi::").exists()
    assert list(tmp_path.iterdir()) == []  # failed before the backend was opened


def test_a_path_with_double_colons_is_still_a_path(tmp_path: Path) -> None:
    store = get_store(str(tmp_path / "a::b"))
    store.put("k", 1)
    assert (tmp_path / "a::b" / "k").exists()


UPPER = """
    from anystore import hookimpl

    @hookimpl
    def anystore_register_layers(register):
        register("upper", "{module}_layer:UpperLayer")
"""

UPPER_LAYER = """
    from anystore.layer import ValueLayer

    class UpperLayer(ValueLayer):
        def encode(self, key, data):
            return data.upper()

        def decode(self, key, data):
            return data
"""


def test_a_third_party_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import textwrap

    (tmp_path / "upperplug_layer.py").write_text(textwrap.dedent(UPPER_LAYER))
    install_plugin(
        tmp_path, monkeypatch, "upperplug", "upperplug", UPPER.format(module="upperplug")
    )
    uri = f"memory://{uuid.uuid4().hex}"
    get_store(f"upper::{uri}").put("k", "shout")
    assert get_store(uri).get("k") == "SHOUT"
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "upperplug\tupperplug 1.2.3\tlayers: upper::" in out
    assert "layers: gzip::, readonly::" in out


def test_zstd_stores_real_frames_with_their_size(plain_uri: str) -> None:
    import zstandard

    store = get_store(f"zstd::{plain_uri}")
    plain = get_store(plain_uri)
    text = b"zstd line\n" * 100_000
    with store.open("big.txt", "wb") as handle:
        handle.write(text)
    stored = plain.get("big.txt", serialization_mode="raw")
    assert len(stored) < len(text) // 100
    assert zstandard.frame_content_size(stored) == len(text)
    assert zstandard.ZstdDecompressor().decompress(stored) == text
    assert store.info("big.txt").size == len(text)
    with store.open("big.txt", "rb") as handle:
        handle.seek(-10, 2)
        assert handle.read() == text[-10:]
        handle.seek(5)
        assert handle.read(4) == text[5:9]


def test_zstd_without_its_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from anystore.exceptions import NotSupported

    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(NotSupported, match=r'pip install "anystore-core\[zstd\]"'):
        get_store("zstd::memory://")


def test_zstd_never_returns_a_value_cut_short() -> None:
    import zstandard

    uri = f"memory://{uuid.uuid4().hex}"
    frame = zstandard.ZstdCompressor().compress(bytes(range(256)) * 1200)
    get_store(uri).put("cut", frame[: len(frame) // 2])
    get_store(uri).put("two", frame + zstandard.ZstdCompressor().compress(b"second"))
    store = get_store(f"zstd::{uri}")
    with pytest.raises(SerializationError, match="cut short"):
        store.get("cut")
    with pytest.raises(SerializationError, match="cut short"):
        store.open("cut", "rb").read()
    assert store.get("two", serialization_mode="raw") == bytes(range(256)) * 1200 + b"second"
