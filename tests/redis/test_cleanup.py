"""What a crashed streaming writer leaves on Redis, and `cleanup()` removing it (issue 10, F9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from anystore import get_store
from anystore.exceptions import ConcurrentModification
from anystore_redis.streams import TEMP_KEY_TTL_MS, TEMP_PREFIX
from tests.redis.servers import HOST, PORT

MIB = 1 << 20

WRITER = """
import sys, time
from anystore import get_store
handle = get_store(sys.argv[1]).open(sys.argv[2], "wb")
handle.write(b"x" * (3 << 20))  # three chunks are on the server now
print("written", flush=True)
time.sleep(60)
"""


def _kill_a_writer(uri: str, key: str) -> None:
    """Start a streaming write of `key` in another process and SIGKILL it mid-write."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, uri, key], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "written"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)


def _temp_keys(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}/*{TEMP_PREFIX}*"))


@pytest.fixture
def uri(prefix: str) -> str:
    return f"redis://{HOST}:{PORT}/0/{prefix}"


def test_a_killed_writer_leaves_one_hidden_temp_key(
    uri: str, client: redis.Redis, prefix: str
) -> None:
    store = get_store(uri)
    store.put("d/big", b"old")
    _kill_a_writer(uri, "d/big")
    [temp] = _temp_keys(client, prefix)
    assert temp.startswith(f"{prefix}/d/{TEMP_PREFIX}")
    assert client.strlen(temp) == 3 * MIB
    assert 0 < client.pttl(temp) <= TEMP_KEY_TTL_MS  # it would expire on its own, in 24 h
    # Never listed, never read: the old value is intact.
    assert list(store.iterate_keys()) == ["d/big"]
    assert list(store.iterate_keys(prefix="d")) == ["d/big"]
    assert list(store.iterate_keys(glob="**")) == ["d/big"]
    assert store.get("d/big") == "old"


def test_cleanup_removes_a_killed_writers_temp_key_and_spares_a_live_one(
    uri: str, client: redis.Redis, prefix: str
) -> None:
    store = get_store(uri)
    _kill_a_writer(uri, "killed")
    assert store.cleanup(older_than=3600) == 0
    assert len(_temp_keys(client, prefix)) == 1
    live = store.open("live", "wb")
    live.write(b"a" * MIB)
    time.sleep(2.0)
    live.write(b"b" * MIB)  # each chunk renews the lease: the live write is idle ~0 s now
    assert len(_temp_keys(client, prefix)) == 2
    # The killed one has been idle for over 2 s; the live one for the time since its last chunk,
    # which a loaded machine can stretch, hence the wide margin.
    assert store.cleanup(older_than=1.5) == 1
    [left] = _temp_keys(client, prefix)
    assert client.strlen(left) == 2 * MIB
    live.write(b"c" * 10)
    live.close()
    assert store.get("live", serialization_mode="raw") == b"a" * MIB + b"b" * MIB + b"c" * 10
    assert _temp_keys(client, prefix) == []
    _kill_a_writer(uri, "killed")
    assert store.cleanup(older_than=0) == 1
    assert _temp_keys(client, prefix) == []
    assert not store.exists("killed")


def test_cleanup_touches_nothing_else(uri: str, client: redis.Redis, prefix: str) -> None:
    store = get_store(uri)
    look_alike = f"x{TEMP_PREFIX}y"  # a valid key: its segment does not start with .~anystore
    store.put_many({look_alike: 1, "a/b": 2})
    store.put("t", 3, ttl=600)
    client.set(f"{prefix}-sibling/{TEMP_PREFIX}x", b"not ours", px=60_000)
    with store.lock("job", ttl=30):
        assert store.cleanup(older_than=0) == 0
        assert client.exists(f"{prefix}/.~anystore-lock~job")
    assert store.get_many([look_alike, "a/b", "t"]) == {look_alike: 1, "a/b": 2, "t": 3}
    assert store.info("a/b").created_at  # the metadata hashes are still there
    assert client.get(f"{prefix}-sibling/{TEMP_PREFIX}x") == b"not ours"


def test_a_temp_key_without_expiry_gets_a_lease_first(
    uri: str, client: redis.Redis, prefix: str
) -> None:
    # Left by another tool or an older writer: its age is unknown, so cleanup starts its clock.
    client.set(f"{prefix}/child/{TEMP_PREFIX}foreign", b"x")
    client.set(f"{prefix}/{TEMP_PREFIX}outside-the-child", b"x", px=60_000)
    child = get_store(f"{uri}/child")
    assert child.cleanup(older_than=0) == 0
    assert 0 < client.pttl(f"{prefix}/child/{TEMP_PREFIX}foreign") <= TEMP_KEY_TTL_MS
    assert child.cleanup(older_than=0) == 1
    assert _temp_keys(client, prefix) == [f"{prefix}/{TEMP_PREFIX}outside-the-child"]


def test_a_write_whose_temp_key_was_cleaned_up_publishes_nothing(
    uri: str, client: redis.Redis, prefix: str
) -> None:
    store = get_store(uri)
    store.put("k", b"old")
    # Removed between two chunks: the next chunk notices.
    handle = store.open("k", "wb")
    handle.write(b"x" * (2 * MIB))
    assert store.cleanup(older_than=0) == 1
    with pytest.raises(ConcurrentModification, match="write it again"):
        handle.write(b"y" * MIB)
    handle.discard()
    # Removed after the last chunk: the commit notices.
    handle = store.open("k", "wb")
    handle.write(b"x" * MIB)
    assert store.cleanup(older_than=0) == 1
    with pytest.raises(ConcurrentModification, match="nothing was published"):
        handle.close()
    assert store.get("k", serialization_mode="raw") == b"old"
    assert _temp_keys(client, prefix) == []
