"""anystore-s3 against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import boto3
import pytest

from anystore import get_store
from anystore.exceptions import BackendUnavailable, InvalidOption, NotSupported
from anystore.store import Store
from anystore.testing import StoreTests
from tests.locks import assert_crashed_holder_lapses, assert_exclusive_across_processes
from tests.services import free_port
from tests.transfer import move_200mb


class TestS3(StoreTests):
    @pytest.fixture
    def store(self, bucket: str, s3_endpoint: str) -> Store:
        return get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)


class TestS3Child(StoreTests):
    @pytest.fixture
    def store(self, bucket: str, s3_endpoint: str) -> Store:
        get_store(f"s3://{bucket}/a", endpoint_url=s3_endpoint).put("outside", 1)
        return get_store(f"s3://{bucket}/a/child", endpoint_url=s3_endpoint)


def _client(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_values_are_plain_objects(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)
    store.put("data/x.json", {"a": 1})
    response = _client(s3_endpoint).get_object(Bucket=bucket, Key="pre/data/x.json")
    assert response["Body"].read() == b'{"a":1}'
    assert response["ContentType"] == "application/json"


def test_configuration_precedence(
    bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the AWS variable alone is enough for an S3-compatible endpoint...
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    assert get_store(f"s3://{bucket}").backend.endpoint == s3_endpoint
    # ...ANYSTORE_S3_ wins over it...
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("ANYSTORE_S3_ENDPOINT_URL", dead)
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
        get_store(f"s3://{bucket}", connect_timeout=1)
    # ...and a keyword wins over both.
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put("k", 1)
    assert store.get("k") == 1


def test_unknown_option_is_refused(bucket: str, s3_endpoint: str) -> None:
    with pytest.raises(InvalidOption, match="endpoint"):
        get_store(f"s3://{bucket}", endpoint=s3_endpoint)


def test_paging_past_1000_keys(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put_many((f"many/{i:05d}", i) for i in range(2345))
    keys = store.iterate_keys(prefix="many")
    assert next(keys) == "many/00000"
    assert len(list(keys)) == 2344


def test_batch_calls_run_concurrently(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put_many({f"c/{i}": i for i in range(64)})
    backend = store.backend
    in_flight = peak = 0
    original = backend._call

    async def counting(method: str, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.01)
            return await original(method, **kwargs)
        finally:
            in_flight -= 1

    backend._call = counting  # type: ignore[method-assign]
    values = store.get_many([f"c/{i}" for i in range(64)])
    assert len(values) == 64
    assert peak > 8


def test_ttl_markers_are_cleaned(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    store.put("t", 1, ttl=1)
    store.put("t", 2, ttl=1)  # a rewrite leaves a second marker
    time.sleep(1.2)
    assert list(store.iterate_keys()) == []
    listed = _client(s3_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed == []


def test_missing_bucket(s3_endpoint: str, aws_env: None) -> None:
    with pytest.raises(BackendUnavailable, match=r"no-such-bucket.*does not exist"):
        get_store("s3://no-such-bucket", endpoint_url=s3_endpoint)


def test_unreachable_endpoint_is_quick_and_masked(aws_env: None) -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}") as error:
        get_store(
            "s3://bucket",
            endpoint_url=f"http://127.0.0.1:{port}",
            secret_access_key="hunter2",
            connect_timeout=1,
        )
    assert time.monotonic() - start < 20
    assert "hunter2" not in str(error.value)


@pytest.mark.slow
def test_200mb_value_in_bounded_memory(bucket: str, s3_endpoint: str) -> None:
    baseline, peak = move_200mb(f'"s3://{bucket}", endpoint_url="{s3_endpoint}"')
    # botocore's S3 service model and s3fs alone take ~70 MB before any value moves, so the
    # bound that this backend controls is what moving 200 MB adds on top of that.
    assert peak - baseline < 64, f"moving 200 MB took {peak - baseline} MB (peak {peak} MB)"


def test_lock_is_exclusive_across_processes(bucket: str, s3_endpoint: str) -> None:
    assert_exclusive_across_processes(f"s3://{bucket}", {"endpoint_url": s3_endpoint})


def test_crashed_holder_lapses(bucket: str, s3_endpoint: str) -> None:
    assert_crashed_holder_lapses(f"s3://{bucket}", {"endpoint_url": s3_endpoint})


def test_lock_is_a_conditional_put(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}/pre", endpoint_url=s3_endpoint)
    with store.lock("a/job", ttl=30):
        head = _client(s3_endpoint).head_object(Bucket=bucket, Key="pre/a/.~anystore-lock~job")
        assert float(head["Metadata"]["anystore-expires"]) > time.time() + 25
        assert list(store.iterate_keys()) == []
    keys = _client(s3_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    assert keys == []  # the lock and the probe object are gone


def test_endpoint_ignoring_conditions_cannot_lock(
    bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    backend = store.backend
    call = backend._call  # type: ignore[attr-defined]

    async def ignoring_conditions(method: str, **kwargs: Any) -> Any:
        kwargs.pop("IfNoneMatch", None)
        kwargs.pop("IfMatch", None)
        return await call(method, **kwargs)

    monkeypatch.setattr(backend, "_call", ignoring_conditions)
    with pytest.raises(NotSupported, match="ignores conditional requests"):
        store.lock("job").acquire()
    store.put("k", "v")
    assert store.pop("k") == "v"  # read-then-delete instead
    assert not store.exists("k")


def test_pop_deletes_only_the_version_it_read(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    backend = store.backend
    call = backend._call  # type: ignore[attr-defined]
    store.put("k", "first")
    rewritten = []

    async def rewrite_after_get(method: str, **kwargs: Any) -> Any:
        result = await call(method, **kwargs)
        if method == "get_object" and not rewritten:
            rewritten.append(True)
            await call("put_object", Bucket=bucket, Key="k", Body=b"second")
        return result

    backend._conditions_honoured = True  # type: ignore[attr-defined]
    backend._call = rewrite_after_get  # type: ignore[attr-defined]
    # The first GET read "first", but the object changed before the DELETE: the pop must not
    # delete "second" unseen; it reads again and pops "second".
    assert store.pop("k") == "second"
    assert not store.exists("k")
