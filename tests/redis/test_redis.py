"""anystore-redis against the real Redis server on 127.0.0.1:6379."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from anystore import get_store
from anystore.exceptions import AnystoreError, BackendUnavailable
from anystore.store import Store
from anystore.testing import StoreTests
from anystore_redis.backend import parse_uri
from tests.locks import (
    assert_anycache_computes_once_across_processes,
    assert_crashed_holder_lapses,
    assert_exclusive_across_processes,
)
from tests.redis.servers import HOST, PORT, start_redis
from tests.services import free_port
from tests.transfer import move_200mb


class TestRedis(StoreTests):
    @pytest.fixture
    def store(self, prefix: str) -> Store:
        return get_store(f"redis://{HOST}:{PORT}/0/{prefix}")


class TestRedisChild(StoreTests):
    @pytest.fixture
    def store(self, prefix: str) -> Store:
        get_store(f"redis://{HOST}:{PORT}/0/{prefix}").put("outside", "not in the child")
        return get_store(f"redis://{HOST}:{PORT}/0/{prefix}/child/store")


@pytest.mark.parametrize(
    ("uri", "url", "prefix"),
    [
        ("redis://localhost", "redis://localhost/0", ""),
        ("redis://localhost:6380/2", "redis://localhost:6380/2", ""),
        ("redis://u:pw@h/3/a/b/", "redis://u:pw@h/3", "a/b"),
        ("redis://h/cache", "redis://h/0", "cache"),
        ("rediss://h:6390/1/p?prefix=q", "rediss://h:6390/1", "p/q"),
        ("unix:///run/redis.sock?db=2&prefix=x", "unix:///run/redis.sock?db=2", "x"),
    ],
)
def test_uri_forms(uri: str, url: str, prefix: str) -> None:
    assert parse_uri(uri) == (url, prefix)


def test_values_are_plain_strings(client: redis.Redis, prefix: str) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put("a/b", "hello")
    store.put("n", {"x": 1})
    assert client.get(f"{prefix}/a/b") == b"hello"
    assert client.get(f"{prefix}/n") == b'{"x":1}'


def test_nothing_outside_the_prefix_is_touched(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}-sibling", "keep")
    client.set(f"{prefix}x/y", "keep")
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put("k", 1)
    assert list(store.iterate_keys()) == ["k"]
    store.delete_many(list(store.iterate_keys()))
    assert client.get(f"{prefix}-sibling") == b"keep"
    assert client.get(f"{prefix}x/y") == b"keep"


def test_glob_characters_in_prefix_are_escaped(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}/a?/x", "1")
    client.set(f"{prefix}/ab/x", "2")
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    assert list(store.iterate_keys(prefix="a?")) == ["a?/x"]


def test_ttl_is_native(client: redis.Redis, prefix: str) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put("t", "v", ttl=30)
    assert 0 < client.pttl(f"{prefix}/t") <= 30_000
    assert 0 < client.pttl(f"{prefix}/.~anystore-meta~t") <= 30_000
    store.put("t", "w")
    assert client.pttl(f"{prefix}/t") == -1
    assert client.pttl(f"{prefix}/.~anystore-meta~t") == -1


def test_wrong_type_is_a_clear_error(client: redis.Redis, prefix: str) -> None:
    client.hset(f"{prefix}/hash", "field", "value")
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    with pytest.raises(AnystoreError, match="not a string"):
        store.get("hash")
    assert store.exists("hash")


def test_streaming_write_uses_a_temp_key_until_close(client: redis.Redis, prefix: str) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put("big", b"old")
    handle = store.open("big", "wb")
    handle.write(b"x" * (3 << 20))
    assert store.get("big", serialization_mode="raw") == b"old"
    assert list(store.iterate_keys()) == ["big"]
    handle.close()
    assert store.info("big").size == 3 << 20
    assert client.pttl(f"{prefix}/big") == -1
    assert [k for k in client.scan_iter(match=f"{prefix}/*tmp*")] == []


def test_pools_are_shared(prefix: str) -> None:
    one = get_store(f"redis://{HOST}:{PORT}/0/{prefix}/a")
    two = get_store(f"redis://{HOST}:{PORT}/0/{prefix}/b")
    assert one.backend.client.connection_pool is two.backend.client.connection_pool


def test_options_from_environment(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("ANYSTORE_REDIS_SOCKET_TIMEOUT", "3.5")
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    assert store.backend.client.connection_pool.connection_kwargs["socket_timeout"] == 3.5
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}", socket_timeout=1.5)
    assert store.backend.client.connection_pool.connection_kwargs["socket_timeout"] == 1.5


def test_unreachable_server_is_quick_and_masked() -> None:
    port = free_port()
    store = get_store(f"redis://user:hunter2@127.0.0.1:{port}/0/x", socket_connect_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable) as error:
        store.get("k")
    assert time.monotonic() - start < 5
    assert f"127.0.0.1:{port}" in str(error.value)
    assert "hunter2" not in str(error.value) and "***" in str(error.value)


def test_wrong_password(client: redis.Redis) -> None:
    store = get_store(f"redis://nobody:wrong@{HOST}:{PORT}/0/x")
    with pytest.raises(BackendUnavailable, match=r"credentials|Cannot reach") as error:
        store.put("k", 1)
    assert "wrong@" not in str(error.value)


def test_recovers_after_server_restart() -> None:
    port = free_port()
    server = start_redis(port)
    try:
        store = get_store(f"redis://127.0.0.1:{port}/0/restart", socket_connect_timeout=0.5)
        store.put("k", "before")
        server.stop()
        with pytest.raises(BackendUnavailable, match=str(port)):
            store.get("k")
        server = start_redis(port)
        store.put("k", "after")  # same store object, same pool
        assert store.get("k") == "after"
    finally:
        server.stop()


def test_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = start_redis(free_port(), "--unixsocket", str(socket_path))
    try:
        store = get_store(f"unix://{socket_path}?db=1&prefix=via/socket")
        store.put("k", "over the socket")
        assert store.get("k") == "over the socket"
        assert list(store.iterate_keys()) == ["k"]
        raw = redis.Redis(unix_socket_path=str(socket_path), db=1)
        assert raw.get("via/socket/k") == b"over the socket"
    finally:
        server.stop()


@pytest.mark.slow
def test_200mb_value_in_bounded_memory(prefix: str) -> None:
    _, peak = move_200mb(f'"redis://{HOST}:{PORT}/0/{prefix}"')
    assert peak < 64, f"peak memory {peak} MB"


def test_lock_is_exclusive_across_processes(prefix: str) -> None:
    assert_exclusive_across_processes(f"redis://{HOST}:{PORT}/0/{prefix}")


def test_crashed_holder_lapses(prefix: str) -> None:
    assert_crashed_holder_lapses(f"redis://{HOST}:{PORT}/0/{prefix}")


def test_anycache_computes_once_across_processes(prefix: str, tmp_path: Path) -> None:
    uri = f"redis://{HOST}:{PORT}/0/{prefix}"
    assert_anycache_computes_once_across_processes(uri, tmp_path / "calls")


def test_lock_is_a_native_expiring_key(client: redis.Redis, prefix: str) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    with store.lock("a/job", ttl=30):
        name = f"{prefix}/a/.~anystore-lock~job"
        assert 0 < client.pttl(name) <= 30_000
        assert list(store.iterate_keys()) == []
    assert not client.exists(name)


def _count_round_trips(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[str]:
    """Record every command or pipeline the store's client sends, as a list of names."""
    client = store.backend.client
    sent: list[str] = []
    command, pipeline = client.execute_command, client.pipeline

    def counted_command(*args: object, **kwargs: object) -> object:
        sent.append(str(args[0]))
        return command(*args, **kwargs)

    def counted_pipeline(*args: object, **kwargs: object) -> object:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        def counted_execute(*a: object, **k: object) -> object:
            sent.append("pipeline:" + ",".join(str(c[0][0]) for c in pipe.command_stack))
            return execute(*a, **k)

        pipe.execute = counted_execute  # type: ignore[method-assign]
        return pipe

    monkeypatch.setattr(client, "execute_command", counted_command)
    monkeypatch.setattr(client, "pipeline", counted_pipeline)
    return sent


def test_info_is_one_round_trip(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put("a/b", "hello", ttl=60)
    store.put("plain", "x")
    sent = _count_round_trips(monkeypatch, store)
    info = store.info("a/b")
    assert sent == ["EVALSHA"]
    assert info.size == 5 and info.expires_at is not None
    assert info.created_at <= info.updated_at
    assert store.info("plain").expires_at is None
    assert store.info("missing", raise_on_nonexist=False) is None
    assert sent == ["EVALSHA"] * 3


def test_info_without_metadata_hash(client: redis.Redis, prefix: str) -> None:
    client.set(f"{prefix}/foreign", "written by another tool")
    info = get_store(f"redis://{HOST}:{PORT}/0/{prefix}").info("foreign")
    assert info.size == len("written by another tool")
    assert info.created_at == info.updated_at


def test_delete_many_is_one_pipelined_unlink(
    monkeypatch: pytest.MonkeyPatch, client: redis.Redis, prefix: str
) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    keys = [f"d/{i:04d}" for i in range(2500)]
    store.put_many(dict.fromkeys(keys, "v"))
    sent = _count_round_trips(monkeypatch, store)
    store.delete_many(keys)
    # Store batches 1,000 keys per backend call: one pipeline each, two names (value, hash) a key.
    assert sent == ["pipeline:UNLINK"] * 3
    assert list(client.scan_iter(match=f"{prefix}/*", count=1000)) == []


def test_listing_never_receives_metadata_hashes(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put_many({f"x/{i:03d}": "v" for i in range(300)})
    client = store.backend.client
    received: list[bytes] = []
    scan = client.scan

    def recorded(*args: object, **kwargs: object) -> object:
        cursor, names = scan(*args, **kwargs)  # type: ignore[arg-type]
        received.extend(names)
        return cursor, names

    monkeypatch.setattr(client, "scan", recorded)
    assert sorted(store.iterate_keys()) == [f"x/{i:03d}" for i in range(300)]
    assert sorted(store.iterate_keys(prefix="x")) == [f"x/{i:03d}" for i in range(300)]
    assert len(received) == 600  # the values, twice; not a single metadata hash


def test_listing_on_a_server_without_scan_type(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    store = get_store(f"redis://{HOST}:{PORT}/0/{prefix}")
    store.put_many({"a": 1, "b/c": 2})
    client = store.backend.client
    scan = client.scan

    def old_server(*args: object, **kwargs: object) -> object:
        if kwargs.get("_type"):
            raise redis.ResponseError("syntax error")
        return scan(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "scan", old_server)
    assert sorted(store.iterate_keys()) == ["a", "b/c"]  # the hashes are skipped by name
    assert store.backend._scan_strings is False
    assert sorted(store.iterate_keys(prefix="b")) == ["b/c"]
