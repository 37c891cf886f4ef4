"""Reaching the loopback services the plugin tests need: skip on a laptop, fail in CI."""

from __future__ import annotations

import os
import socket

import pytest


def in_ci() -> bool:
    """True when running under CI (CI=true), where a missing service is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_port(host: str, port: int, what: str) -> None:
    """Skip (or fail, under CI) unless `host:port` accepts TCP connections."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{what} is not reachable at {host}:{port} ({error})"
    if in_ci():
        pytest.fail(f"{message}; CI needs it running")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
