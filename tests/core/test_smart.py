"""Smart IO by URI (`anystore.smart`): splitting URIs through the registry, reading and writing
on memory, local, SQLite and Redis, typed streams, stdin/stdout, http read-only, virtual paths.
S3 cases are in tests/s3/test_smart_s3.py."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import anystore
from anystore import (
    get_store,
    get_virtual_path,
    open_virtual,
    smart_open,
    smart_read,
    smart_stream,
    smart_stream_csv,
    smart_stream_json,
    smart_stream_models,
    smart_write,
    smart_write_csv,
    smart_write_json,
    smart_write_models,
)
from anystore.exceptions import (
    BackendNotFound,
    DoesNotExist,
    InvalidKey,
    InvalidOption,
    ReadOnly,
    SerializationError,
)
from anystore.smart import split_uri
from tests.core.test_compression import store_uri  # noqa: F401  (the per-backend fixture)
from tests.core.test_plugins import install_plugin


class Row(BaseModel):
    name: str
    n: int


def test_names_are_exported_lazily() -> None:
    for name in ("smart_open", "smart_read", "smart_write_json", "get_virtual_path", "anycache"):
        assert name in anystore.__all__ and callable(getattr(anystore, name))


@pytest.mark.parametrize(
    ("uri", "store", "key"),
    [
        ("s3://bucket/a/b.json", "s3://bucket/a", "b.json"),
        ("s3://bucket/b.json", "s3://bucket", "b.json"),
        ("redis://host/0/x/y", "redis://host/0/x", "y"),
        ("redis://host:6380/1/x?socket_timeout=3", "redis://host:6380/1?socket_timeout=3", "x"),
        ("/data/x.csv", "/data", "x.csv"),
        ("/x.csv", "/", "x.csv"),
        ("x.csv", ".", "x.csv"),
        ("rel/dir/x.csv", "rel/dir", "x.csv"),
        ("file:///data/x.csv", "/data", "x.csv"),
        ("file:///a/sub%20dir/f%23.txt", "/a/sub dir", "f#.txt"),
        ("/a/lit%20eral?#.txt", "/a", "lit%20eral?#.txt"),  # a plain path is literal
        ("memory://name/a/b", "memory://name/a", "b"),
        ("https://host/file.txt", "https://host", "file.txt"),
        ("sqlite:///tmp/v.db?prefix=a/b.json", "sqlite:///tmp/v.db?prefix=a", "b.json"),
        ("sqlite:///tmp/v.db?table=t&prefix=k", "sqlite:///tmp/v.db?table=t", "k"),
        ("gzip::memory://name/a/b", "gzip::memory://name/a", "b"),
    ],
)
def test_split_uri(uri: str, store: str, key: str) -> None:
    assert split_uri(uri) == (store, key)


@pytest.mark.parametrize("uri", ["memory://name", "s3://bucket/", "/data/"])
def test_a_uri_without_a_key_is_refused(uri: str) -> None:
    with pytest.raises(InvalidKey, match=r"not a value|names a folder"):
        split_uri(uri)


def test_unserved_scheme_names_what_to_install() -> None:
    with pytest.raises(BackendNotFound, match="No backend serves nosuch://"):
        smart_read("nosuch://x/y")


def test_a_plugin_splits_its_own_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "splitplug"
    folder.mkdir()
    (folder / "splitplug_backend.py").write_text(
        "from anystore.backends.memory import MemoryBackend\n\n"
        "class SplitBackend(MemoryBackend):\n"
        "    @classmethod\n"
        "    def split_uri(cls, uri):\n"
        "        # 'split://space:key' keeps the key after a colon\n"
        "        head, _, key = uri.rpartition(':')\n"
        "        return 'memory://' + head.partition('://')[2], key\n"
    )
    install_plugin(
        folder,
        monkeypatch,
        "splitplug",
        "splitplug",
        "from anystore import hookimpl\n\n@hookimpl\ndef anystore_register_backends(register):\n"
        "    register('split', 'splitplug_backend:SplitBackend')\n",
    )
    space = uuid.uuid4().hex
    assert split_uri(f"split://{space}:the/key") == (f"memory://{space}", "the/key")
    smart_write(f"split://{space}:the/key", b"via the plugin")
    assert get_store(f"memory://{space}").get("the/key") == "via the plugin"


def _uri(store_uri: str, key: str) -> str:  # noqa: F811
    if store_uri.startswith("sqlite:"):
        return f"{store_uri}?prefix={key}"
    return f"{store_uri}/{key}"


def test_read_write_on_every_backend(store_uri: str) -> None:  # noqa: F811
    uri = _uri(store_uri, "dir/data.bin")
    smart_write(uri, b"\x00binary\xff")
    assert smart_read(uri) == b"\x00binary\xff"
    smart_write(uri, "text ✓")  # str in "wb" is written as UTF-8
    assert smart_read(uri, "r") == "text ✓"
    smart_write(uri, "again", mode="w")
    assert smart_read(uri) == b"again"
    with smart_open(uri, "rb") as handle:
        assert handle.read(2) == b"ag" and handle.seekable()
    with pytest.raises(DoesNotExist):
        smart_read(_uri(store_uri, "dir/missing"))


def test_the_value_lands_in_the_store(store_uri: str) -> None:  # noqa: F811
    smart_write(_uri(store_uri, "a/b/c.txt"), b"hello")
    assert get_store(store_uri).get("a/b/c.txt", serialization_mode="raw") == b"hello"


def test_a_failed_write_keeps_the_old_value(store_uri: str) -> None:  # noqa: F811
    uri = _uri(store_uri, "kept")
    smart_write(uri, b"old")
    with pytest.raises(RuntimeError), smart_open(uri, "wb") as handle:
        handle.write(b"new")
        raise RuntimeError("stop")
    assert smart_read(uri) == b"old"


def test_lines_json_csv_and_models(store_uri: str) -> None:  # noqa: F811
    lines = _uri(store_uri, "lines.txt")
    smart_write(lines, b"one\r\ntwo\nthree")
    assert list(smart_stream(lines)) == [b"one", b"two", b"three"]
    assert list(smart_stream(lines, "r")) == ["one", "two", "three"]

    rows = [{"name": "a", "n": 1}, {"name": 'b, quoted "x"', "n": 2}]
    jsonl = _uri(store_uri, "rows.jsonl")
    smart_write_json(jsonl, rows)
    assert smart_read(jsonl) == b'{"name":"a","n":1}\n{"name":"b, quoted \\"x\\"","n":2}\n'
    assert list(smart_stream_json(jsonl)) == rows
    assert list(smart_stream_models(jsonl, Row)) == [Row(**r) for r in rows]

    table = _uri(store_uri, "rows.csv")
    smart_write_csv(table, rows)
    assert list(smart_stream_csv(table)) == [{"name": r["name"], "n": str(r["n"])} for r in rows]
    assert list(smart_stream_models(table, Row, input_format="csv")) == [Row(**r) for r in rows]

    models = _uri(store_uri, "models.jsonl")
    smart_write_models(models, [Row(name="m", n=3)])
    assert list(smart_stream_json(models)) == [{"name": "m", "n": 3}]
    smart_write_models(table, [Row(name="c", n=4)], output_format="csv")
    assert smart_read(table) == b"name,n\r\nc,4\r\n"


def test_compression_on_smart_io(store_uri: str) -> None:  # noqa: F811
    uri = _uri(store_uri, "rows.jsonl.gz")
    smart_write_json(uri, [{"i": i} for i in range(100)], compression="infer")
    stored = get_store(store_uri).get("rows.jsonl.gz", serialization_mode="raw")
    assert gzip.decompress(stored).startswith(b'{"i":0}\n{"i":1}\n')
    assert list(smart_stream_json(uri, compression="gz"))[-1] == {"i": 99}
    assert smart_read(uri, compression="infer").count(b"\n") == 100


def test_typed_errors(tmp_path: Path) -> None:
    uri = str(tmp_path / "bad.jsonl")
    smart_write(uri, b'{"name": "a", "n": 1}\nnot json\n')
    with pytest.raises(SerializationError, match=r"Line 2 .* is not JSON"):
        list(smart_stream_json(uri))
    smart_write(uri, b'{"name": "a"}\n')
    with pytest.raises(SerializationError, match=r"Item 1 .* not a valid Row"):
        list(smart_stream_models(uri, Row))
    with pytest.raises(SerializationError, match="Cannot write"):
        smart_write_json(str(tmp_path / "x.jsonl"), [object()])
    assert not (tmp_path / "x.jsonl").exists()  # nothing half-written
    with pytest.raises(InvalidOption, match="does not fit"):
        smart_write_csv(str(tmp_path / "x.csv"), [{"a": 1}, {"b": 2}])
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(InvalidOption, match="mode"):
        smart_read(uri, "wb")  # type: ignore[call-overload]
    with pytest.raises(InvalidOption, match="pass a str"):
        smart_write(uri, b"bytes", mode="w")


def test_local_paths_and_file_uris(tmp_path: Path) -> None:
    folder = tmp_path / "sub dir"
    smart_write(f"file://{tmp_path}/sub%20dir/f.txt", b"decoded")
    assert (folder / "f.txt").read_bytes() == b"decoded"
    assert smart_read(str(folder / "f.txt")) == b"decoded"
    assert smart_read(folder / "f.txt") == b"decoded"  # a PathLike too


def test_stdin_and_stdout(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a\nb\n")))
    assert list(smart_stream("-")) == [b"a", b"b"]
    smart_write("-", b"to stdout\n")
    smart_write_json("-", [{"x": 1}])
    assert capsysbinary.readouterr().out == b'to stdout\n{"x":1}\n'
    packed = gzip.compress(b"zipped")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(packed)))
    assert smart_read("-", compression="gz") == b"zipped"
    assert not sys.stdout.closed


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[str]:
    """A local http.server on 127.0.0.1 serving tmp_path/www, in a thread."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "file.txt").write_bytes(b"served over http\n" * 10)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_is_read_only(http_root: str) -> None:
    assert smart_read(f"{http_root}/file.txt") == b"served over http\n" * 10
    assert list(smart_stream(f"{http_root}/file.txt", "r"))[:2] == ["served over http"] * 2
    with get_virtual_path(f"{http_root}/file.txt") as path:
        assert Path(path).read_bytes().startswith(b"served over http")
    with pytest.raises(ReadOnly, match="read-only"):
        smart_write(f"{http_root}/new.txt", b"nope")


def test_virtual_paths(store_uri: str) -> None:  # noqa: F811
    store = get_store(store_uri)
    store.put("docs/report.pdf", b"%PDF-fake")
    with store.local_path("docs/report.pdf") as path:
        assert path.endswith("report.pdf") and Path(path).read_bytes() == b"%PDF-fake"
        local = store_uri.startswith("/")
        if local:  # the file itself
            assert Path(path) == Path(store_uri) / "docs" / "report.pdf"
    assert Path(path).exists() == local  # a temporary copy is gone after the block
    with get_virtual_path(_uri(store_uri, "docs/report.pdf")) as path:
        assert Path(path).read_bytes() == b"%PDF-fake"
    with open_virtual(_uri(store_uri, "docs/report.pdf")) as handle:
        assert handle.read() == b"%PDF-fake" and os.path.isfile(handle.name)
    with pytest.raises(DoesNotExist), store.local_path("docs/none.pdf"):
        pass
    with pytest.raises(InvalidKey):
        store.local_path("../escape").__enter__()


def test_local_path_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    store = get_store(str(root))
    with pytest.raises((InvalidKey, DoesNotExist)), store.local_path("link"):
        pass


def test_1x_spellings_of_the_typed_helpers(store_uri: str) -> None:  # noqa: F811
    from anystore import (
        smart_stream_csv_models,
        smart_stream_data,
        smart_stream_json_models,
        smart_write_data,
        smart_write_model,
    )

    rows = _uri(store_uri, "rows.csv")
    smart_write_data(rows, [{"name": "x", "n": 1}], output_format="csv")
    assert list(smart_stream_data(rows, input_format="csv")) == [{"name": "x", "n": "1"}]
    assert list(smart_stream_csv_models(rows, Row)) == [Row(name="x", n=1)]
    one = _uri(store_uri, "one.json")
    smart_write_model(one, Row(name="y", n=2))
    assert smart_read(one) == b'{"name":"y","n":2}'
    assert list(smart_stream_json_models(one, Row)) == [Row(name="y", n=2)]
    with pytest.raises(InvalidOption):
        smart_write_data(rows, [], output_format="xml")  # type: ignore[arg-type]


def test_the_1x_import_path_still_works(tmp_path: Path) -> None:
    from anystore.io import smart_read, smart_write

    smart_write(str(tmp_path / "x.txt"), b"1.x style")
    assert smart_read(str(tmp_path / "x.txt")) == b"1.x style"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import anystore.io

        anystore.io.nothing  # noqa: B018


def test_a_compressed_file_read_as_it_is_says_how_to_decompress_it(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    hint = r"its name says gz: pass compression='infer'"
    with pytest.raises(SerializationError, match=rf"Line 1 of .* is not JSON: .*{hint}"):
        list(smart_stream_json(str(path)))
    with pytest.raises(SerializationError, match=rf"Line 1 of .* is not UTF-8 text .*{hint}"):
        list(smart_stream(str(path), "r"))  # a raw UnicodeDecodeError before
    assert list(smart_stream_json(str(path), compression="infer")) == [{"a": 1}, {"a": 2}]
    plain = tmp_path / "rows.jsonl"
    plain.write_bytes(b"not json\n")
    with pytest.raises(SerializationError, match="is not JSON") as error:
        list(smart_stream_json(str(plain)))
    assert "compression" not in str(error.value)  # no hint for a file not named compressed
