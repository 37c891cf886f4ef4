"""Issue 14 on S3 (moto's server on 127.0.0.1): compression on streams, smart IO by URI, local
paths, store conveniences, a configuration document on S3, and a 1.x-style script, unchanged."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import pytest
from pydantic import BaseModel

from anystore import (
    Store,
    get_store,
    get_virtual_path,
    smart_read,
    smart_stream_json,
    smart_write,
    smart_write_json,
)
from anystore.compression import COMPRESSIONS
from anystore.exceptions import DoesNotExist, InvalidOption
from anystore.smart import split_uri


class Item(BaseModel):
    name: str
    n: int = 0


@pytest.fixture
def endpoint_env(s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint as the environment names it, so that URIs alone reach it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return bucket


def _raw(s3_endpoint: str, bucket: str, key: str) -> bytes:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.mark.parametrize("codec", COMPRESSIONS)
def test_compressed_streams(s3_endpoint: str, bucket: str, codec: str) -> None:
    store = get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)
    data = b"".join(b"row %d\n" % i for i in range(5000))
    with store.open("rows.txt", "wb", compression=codec) as handle:
        handle.write(data)
    assert len(_raw(s3_endpoint, bucket, "pre/rows.txt")) < len(data)
    with store.open("rows.txt", "r", compression=codec) as handle:
        assert sum(1 for _ in handle) == 5000
    with store.open("rows.txt", "rb", compression=codec) as handle:
        assert handle.read() == data


def test_infer_writes_real_gzip(s3_endpoint: str, bucket: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    with store.open("a/b.json.gz", "wb", compression="infer") as handle:
        handle.write(b'{"ok": true}')
    assert gzip.decompress(_raw(s3_endpoint, bucket, "a/b.json.gz")) == b'{"ok": true}'


def test_smart_io_by_uri(endpoint_env: str, s3_endpoint: str) -> None:
    bucket = endpoint_env
    assert split_uri(f"s3://{bucket}/a/b.json") == (f"s3://{bucket}/a", "b.json")
    smart_write(f"s3://{bucket}/a/b.json", b'{"x": 1}')
    assert _raw(s3_endpoint, bucket, "a/b.json") == b'{"x": 1}'
    assert smart_read(f"s3://{bucket}/a/b.json") == b'{"x": 1}'
    smart_write_json(f"s3://{bucket}/rows.jsonl.zst", [{"i": 1}, {"i": 2}], compression="infer")
    assert list(smart_stream_json(f"s3://{bucket}/rows.jsonl.zst", compression="zst")) == [
        {"i": 1},
        {"i": 2},
    ]
    with pytest.raises(DoesNotExist):
        smart_read(f"s3://{bucket}/missing")
    # Options still reach the backend when the environment does not name the endpoint.
    assert smart_read(f"s3://{bucket}/a/b.json", endpoint_url=s3_endpoint) == b'{"x": 1}'


def test_local_path_is_a_temporary_copy(s3_endpoint: str, bucket: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put("docs/file.pdf", b"%PDF")
    with store.local_path("docs/file.pdf") as path:
        assert Path(path).read_bytes() == b"%PDF" and path.endswith("file.pdf")
    assert not Path(path).exists()
    with get_virtual_path(f"s3://{bucket}/docs/file.pdf", endpoint_url=s3_endpoint) as path:
        assert Path(path).read_bytes() == b"%PDF"


def test_conveniences(s3_endpoint: str, bucket: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put("items/one.json", {"name": "one"}, model=Item)
    assert json.loads(_raw(s3_endpoint, bucket, "items/one.json")) == {"name": "one", "n": 0}
    assert store.get("items/one.json", model=Item) == Item(name="one")
    assert store.info("items/one.json").name == "one.json"
    store.delete("items/one.json", ignore_errors=True)
    store.delete("items/one.json", ignore_errors=False)  # missing: still fine
    assert not store.exists("items/one.json")
    store.serialization_mode = "raw"
    store.put("raw", b"bytes")
    assert store.get("raw") == b"bytes"
    with pytest.raises(InvalidOption):
        store.serialization_mode = "nope"  # type: ignore[assignment]


def test_configuration_document_on_s3(
    endpoint_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = endpoint_env
    target = tmp_path / "configured"
    config = {"uri": str(target), "serialization_mode": "json", "default_ttl": 60}
    smart_write(f"s3://{bucket}/conf/store.json", json.dumps(config))
    smart_write(f"s3://{bucket}/conf/store.yml", f"uri: {target}\nraise_on_nonexist: false\n")
    store = Store.from_json_uri(f"s3://{bucket}/conf/store.json")
    assert store.options.serialization_mode == "json" and store.options.default_ttl == 60
    assert Store.from_yaml_uri(f"s3://{bucket}/conf/store.yml").get("missing") is None
    monkeypatch.setenv("ANYSTORE_YAML_URI", f"s3://{bucket}/conf/store.yml")
    default = get_store()
    default.put("k", "v")
    assert (target / "k").read_bytes() == b"v" and default.get("nope") is None


SCRIPT_1X = """
    from anystore import get_store, smart_open, smart_read, smart_write_json

    data = smart_read("s3://{bucket}/input/data.json")
    smart_write_json("{out}/rows.json", [{{"raw": data.decode()}}])
    with smart_open("{out}/rows.json.gz", "wb", compression="gz") as fh:
        fh.write(data)
    store = get_store("s3://{bucket}/input")
    with store.open("copy.txt.gz", "wb", compression="gz") as fh:
        fh.write(b"compressed on S3")
    with store.open("copy.txt.gz", "rb", compression="gz") as fh:
        print(fh.read().decode())
"""


def test_a_1x_style_script_runs_unchanged(endpoint_env: str, tmp_path: Path) -> None:
    bucket = endpoint_env
    smart_write(f"s3://{bucket}/input/data.json", b'{"hello": "world"}')
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT_1X.format(bucket=bucket, out=tmp_path)))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "compressed on S3"
    assert json.loads((tmp_path / "rows.json").read_text()) == {"raw": '{"hello": "world"}'}
    assert gzip.decompress((tmp_path / "rows.json.gz").read_bytes()) == b'{"hello": "world"}'
