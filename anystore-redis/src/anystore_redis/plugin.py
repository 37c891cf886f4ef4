"""The entry-point module of anystore-redis: tiny on purpose, it imports neither redis nor the
backend; `anystore_redis.backend` is imported only when a redis store is opened."""

from __future__ import annotations

from anystore import hookimpl
from anystore.hookspecs import RegisterBackend


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Serve `redis://`, `rediss://` (TLS) and `unix://` (a local socket)."""
    register(["redis", "rediss", "unix"], "anystore_redis.backend:RedisBackend")
