"""The S3 backend's guarantees (issue 10): literal keys, one version per read handle, a deleted
bucket is BackendUnavailable, cleanup of what crashed writers leave, the key limit."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from anystore import get_store
from anystore.exceptions import (
    BackendUnavailable,
    ConcurrentModification,
    DoesNotExist,
    InvalidKey,
)
from anystore.store import Store

MIB = 1024 * 1024
# Each is a key of its own, never the plain "a" (or "a b" / "a%20b" the same object).
LITERAL = [
    "a",
    "a?versionId=1",
    "a?versionId=null",
    "a?",
    "a#x",
    "a#",
    "a%20b",
    "a b",
    "a%3Fb",
    "a;b",
    "a;versionId=1",
    "a+b",
    "a&b=c",
    "d?x=1/e#f",
    "ünï/cödé 🎉",
]


def _client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _record(store: Store) -> list[tuple[str, dict[str, Any]]]:
    """Record every S3 request the store's backend sends, as (method, arguments)."""
    backend: Any = store.backend
    calls: list[tuple[str, dict[str, Any]]] = []
    original = backend._call

    async def recording(method: str, **kwargs: Any) -> Any:
        calls.append((method, kwargs))
        return await original(method, **kwargs)

    backend._call = recording
    return calls


@pytest.fixture
def store(bucket: str, s3_endpoint: str) -> Store:
    return get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)


# -- F3: keys are literal object names -------------------------------------------------------


def test_keys_are_literal_object_names(store: Store, bucket: str, s3_endpoint: str) -> None:
    for key in LITERAL:
        store.put(key, f"value of {key}")
    names = [
        item["Key"] for item in _client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    ]
    assert sorted(names) == sorted(f"pre/{key}" for key in LITERAL)
    assert sorted(store.iterate_keys()) == sorted(LITERAL)
    for key in LITERAL:
        assert store.get(key) == f"value of {key}", key
        assert store.exists(key)
        assert store.info(key).size == len(f"value of {key}".encode())
        with store.open(key, "rb") as handle:
            assert handle.read() == f"value of {key}".encode(), key
        assert list(store.iterate_keys(prefix=key)) == [key]
    assert store.get_many(LITERAL) == {key: f"value of {key}" for key in LITERAL}


def test_literal_names_through_open_pop_delete_and_locks(
    store: Store, bucket: str, s3_endpoint: str
) -> None:
    store.put("a", "plain")
    for key in LITERAL[1:]:
        with store.open(key, "wb") as handle:
            handle.write(key.encode())
        assert store.get("a") == "plain", f"open({key!r}, 'wb') wrote to 'a'"
        raw = _client(s3_endpoint).get_object(Bucket=bucket, Key=f"pre/{key}")
        assert raw["Body"].read() == key.encode()
        with store.lock(key, ttl=5):
            assert store.get("a") == "plain"
        with store.open(key, "rb") as handle:
            assert handle.read() == key.encode()
    for key in LITERAL[1:]:
        assert store.pop(key) == key
        assert store.get("a") == "plain"
        assert not store.exists(key)
    store.put("a?versionId=1", 1)
    store.delete("a?versionId=1")
    store.delete_many(["a#x", "a b"])
    assert list(store.iterate_keys()) == ["a"]


# -- F1: one version per read handle ---------------------------------------------------------


def test_overwrite_mid_read_serves_the_old_version_whole(store: Store) -> None:
    old, new = b"A" * (12 * MIB), b"B" * (12 * MIB)
    store.put("k", old)
    with store.open("k", "rb") as handle:
        first = handle.read(MIB)
        store.put("k", new)
        try:
            rest = handle.read()
        except ConcurrentModification:
            rest = None
    if rest is not None:
        assert first + rest == old, "bytes of two versions"
    assert store.get("k", serialization_mode="raw") == new


@pytest.mark.parametrize("change", ["overwrite", "delete"])
def test_a_seek_after_a_change_raises(store: Store, change: str) -> None:
    store.put("k", bytes(range(256)) * 8192)  # 2 MiB
    with store.open("k", "rb") as handle:
        assert handle.read(10) == bytes(range(10))
        if change == "overwrite":
            store.put("k", b"x" * (2 * MIB))
        else:
            store.delete("k")
        handle.seek(MIB + 3)
        with pytest.raises(ConcurrentModification, match="open it again"):
            handle.read(10)


def test_an_endpoint_ignoring_if_match_is_caught_by_the_etag(store: Store) -> None:
    store.put("k", b"A" * (2 * MIB))
    backend: Any = store.backend
    call = backend._call

    async def ignoring_if_match(method: str, **kwargs: Any) -> Any:
        kwargs.pop("IfMatch", None)
        return await call(method, **kwargs)

    backend._call = ignoring_if_match
    with store.open("k", "rb") as handle:
        handle.read(5)
        store.put("k", b"B" * (2 * MIB))  # same size: only the ETag tells
        handle.seek(MIB + MIB // 2)  # past what the first GET has sent: a ranged GET
        with pytest.raises(ConcurrentModification):
            handle.read(5)


def test_a_read_is_one_streaming_get_and_a_seek_one_ranged_get(store: Store) -> None:
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB
    store.put("k", data)
    calls = _record(store)
    with store.open("k", "rb") as handle:
        assert handle.read() == data
    assert [method for method, _ in calls] == ["get_object"]
    assert "Range" not in calls[0][1]
    calls.clear()
    with store.open("k", "rb") as handle:
        assert handle.seekable()
        assert handle.seek(-100, io.SEEK_END) == len(data) - 100
        assert handle.read(50) == data[-100:-50]
        assert handle.tell() == len(data) - 50
        handle.seek(-60, io.SEEK_CUR)
        assert handle.read(20) == data[-110:-90]
        handle.seek(2 * MIB)
        assert handle.read() == data[2 * MIB :]
    gets = [arguments for method, arguments in calls if method == "get_object"]
    assert len(calls) == len(gets) == 4  # the opening GET, then one ranged GET per seek
    etag = store.backend._run(  # type: ignore[attr-defined]
        store.backend._call("head_object", Bucket=store.backend.bucket, Key="pre/k")  # type: ignore[attr-defined]
    )["ETag"]
    for arguments in gets[1:]:
        assert arguments["IfMatch"] == etag
    assert gets[1]["Range"].startswith(f"bytes={len(data) - 100}-")
    assert gets[3]["Range"].startswith(f"bytes={2 * MIB}-")


def test_a_body_that_breaks_off_is_resumed_on_the_same_version(store: Store) -> None:
    data = bytes(range(256)) * (12 * 1024)  # 3 MiB
    store.put("k", data)
    backend: Any = store.backend
    call = backend._call

    class Breaking:
        """A body that sends 1 MiB, then fails like a reset connection."""

        def __init__(self, body: Any) -> None:
            self.body, self.sent = body, 0

        async def read(self, amount: int) -> bytes:
            if self.sent >= MIB:
                raise ConnectionResetError("reset by peer")
            chunk = await self.body.read(min(amount, MIB - self.sent))
            self.sent += len(chunk)
            return chunk

        def close(self) -> None:
            self.body.close()

    broken: list[str] = []

    async def breaking_first_get(method: str, **kwargs: Any) -> Any:
        response = await call(method, **kwargs)
        if method == "get_object" and not broken:
            broken.append(kwargs["Key"])
            response["Body"] = Breaking(response["Body"])
        return response

    backend._call = breaking_first_get
    calls = _record(store)
    with store.open("k", "rb") as handle:
        assert handle.read() == data
    assert broken and [arguments.get("Range") for _, arguments in calls] == [
        None,
        f"bytes={MIB}-{len(data) - 1}",
    ]


# -- F7: the bucket went away after the store was opened -------------------------------------


def _operations(store: Store) -> dict[str, Callable[[], Any]]:
    def write_stream() -> None:
        with store.open("w", "wb") as handle:
            handle.write(b"data")

    return {
        "put": lambda: store.put("k", 1),
        "put ttl": lambda: store.put("k", 1, ttl=60),
        "put_many": lambda: store.put_many({"k": 1, "l": 2}),
        "get": lambda: store.get("k"),
        "get none": lambda: store.get("k", raise_on_nonexist=False),
        "get_many": lambda: store.get_many(["k", "l"]),
        "exists": lambda: store.exists("k"),
        "info": lambda: store.info("k"),
        "delete": lambda: store.delete("k"),
        "delete_many": lambda: store.delete_many(["k", "l"]),
        "pop": lambda: store.pop("k"),
        "iterate_keys": lambda: list(store.iterate_keys()),
        "iterate prefix": lambda: list(store.iterate_keys(prefix="x")),
        "open rb": lambda: store.open("k", "rb"),
        "open wb": write_stream,
        "lock": lambda: store.lock("k").acquire(),
        "cleanup": lambda: store.cleanup(0),
    }


def test_a_deleted_bucket_is_unavailable_on_every_operation(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)
    store.put("k", 1)
    client = _client(s3_endpoint)
    client.delete_object(Bucket=bucket, Key="pre/k")
    client.delete_bucket(Bucket=bucket)
    for name, operation in _operations(store).items():
        with pytest.raises(BackendUnavailable, match=f"{bucket}.*does not exist"):
            operation()
            pytest.fail(f"{name} did not raise")


def test_a_missing_key_in_an_existing_bucket_stays_missing(store: Store) -> None:
    assert store.get("nope", raise_on_nonexist=False) is None
    assert store.get_many(["nope"]) == {}
    assert store.exists("nope") is False
    assert store.info("nope", raise_on_nonexist=False) is None
    assert store.pop("nope", raise_on_nonexist=False) is None
    assert store.open("nope", "rb", raise_on_nonexist=False) is None
    with pytest.raises(DoesNotExist):
        store.get("nope")
    store.delete("nope")
    assert list(store.iterate_keys(prefix="nope")) == []


# -- F9: what crashed writers leave ----------------------------------------------------------

KILLED_WRITER = """
import os, sys
from anystore import get_store
store = get_store(sys.argv[1], endpoint_url=sys.argv[2])
handle = store.open("killed", "wb")
handle.write(b"k" * (9 * 1024 * 1024))  # past one part: the multipart upload has begun
os.kill(os.getpid(), 9)
"""


def _uploads(endpoint: str, bucket: str) -> list[str]:
    listed = _client(endpoint).list_multipart_uploads(Bucket=bucket)
    return sorted(upload["Key"] for upload in listed.get("Uploads", []))


def test_cleanup_aborts_uploads_of_killed_writers(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, f"s3://{bucket}/pre", s3_endpoint], check=False
    )
    assert killed.returncode == -9
    # An upload outside the store's prefix is someone else's.
    client = _client(s3_endpoint)
    other = client.create_multipart_upload(Bucket=bucket, Key="elsewhere/x")["UploadId"]
    client.upload_part(Bucket=bucket, Key="elsewhere/x", UploadId=other, PartNumber=1, Body=b"1")
    assert _uploads(s3_endpoint, bucket) == ["elsewhere/x", "pre/killed"]
    assert not store.exists("killed")
    assert store.cleanup(older_than=3600) == 0  # it is too young to call abandoned
    assert _uploads(s3_endpoint, bucket) == ["elsewhere/x", "pre/killed"]
    assert store.cleanup(older_than=0) == 1
    assert _uploads(s3_endpoint, bucket) == ["elsewhere/x"]


def test_cleanup_spares_an_upload_in_progress(store: Store, bucket: str, s3_endpoint: str) -> None:
    handle = store.open("big", "wb")
    handle.write(b"p" * (9 * MIB))
    assert _uploads(s3_endpoint, bucket) == ["pre/big"]
    assert store.cleanup(older_than=60) == 0
    handle.write(b"q")
    handle.close()
    assert store.get("big", serialization_mode="raw") == b"p" * (9 * MIB) + b"q"
    assert _uploads(s3_endpoint, bucket) == []


def test_a_discarded_write_aborts_its_upload(store: Store, bucket: str, s3_endpoint: str) -> None:
    store.put("v", "old")
    with pytest.raises(RuntimeError), store.open("v", "wb") as handle:
        handle.write(b"n" * (17 * MIB))
        raise RuntimeError("changed my mind")
    assert store.get("v") == "old"
    assert _uploads(s3_endpoint, bucket) == []


def test_cleanup_sweeps_expired_values_and_markers(
    store: Store, bucket: str, s3_endpoint: str
) -> None:
    store.put("gone", 1, ttl=1)
    store.put("kept", 2, ttl=600)
    store.put("plain", 3)
    time.sleep(1.1)
    # A crash in the middle of the endpoint's condition probe leaves its scratch object.
    probe = "pre/.~anystore-lock~probe-0123456789abcdef"
    _client(s3_endpoint).put_object(Bucket=bucket, Key=probe, Body=b"1")
    assert store.cleanup(older_than=3600) == 2  # the expired object and its marker
    assert store.cleanup(older_than=0) == 1  # the probe, now
    _client(s3_endpoint).head_object(Bucket=bucket, Key="pre/kept")
    names = [
        item["Key"] for item in _client(s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]
    ]
    assert sorted(name for name in names if ".~anystore-ttl" not in name) == [
        "pre/kept",
        "pre/plain",
    ]
    assert store.get_many(["gone", "kept", "plain"]) == {"kept": 2, "plain": 3}


# -- key limit -------------------------------------------------------------------------------


def test_key_limit_counts_the_prefix_and_is_checked_before_any_request(
    bucket: str, s3_endpoint: str
) -> None:
    root = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    child = get_store(f"s3://{bucket}/some/prefix", endpoint_url=s3_endpoint)
    # 1024 bytes of S3, less the TTL marker's additions, less the prefix.
    assert root.backend.max_key_bytes == 1024 - 29
    assert child.backend.max_key_bytes == 1024 - 29 - len("some/prefix/")
    longest = "é" * ((child.backend.max_key_bytes or 0) // 2)
    child.put(longest, 1, ttl=600)
    with child.lock(longest, ttl=5):
        pass
    assert list(child.iterate_keys()) == [longest]
    calls = _record(child)
    with pytest.raises(InvalidKey, match="bytes"):
        child.put(longest + "xx", 1)
    with pytest.raises(InvalidKey, match="bytes"):
        child.get(longest + "xx")
    assert calls == []
