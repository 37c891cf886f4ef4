"""Fixtures of the Redis tests: the shared server on 127.0.0.1:6379 (own keys only) and private
servers for fault tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.redis.servers import HOST, PORT, PrivateRedis, start_redis
from tests.services import free_port, require_port


@pytest.fixture
def client() -> redis.Redis:
    """A raw client on the shared server (never flushed: tests delete their own keys only)."""
    require_port(HOST, PORT, "Redis")
    return redis.Redis(host=HOST, port=PORT, db=0)


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    name = f"anystore-test-{uuid.uuid4().hex}"
    yield name
    for key in client.scan_iter(match=f"{name}*", count=1000):
        client.delete(key)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port, stopped (by PID) afterwards."""
    server = start_redis(free_port())
    try:
        yield server
    finally:
        server.stop()
