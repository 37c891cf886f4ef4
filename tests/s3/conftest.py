"""A real S3 HTTP endpoint on 127.0.0.1: moto's server, started once for the test session (once
per worker under pytest-xdist)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from anystore import get_store
from tests.services import free_port

# Fake credentials, and no profile or endpoint from the developer's machine.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def _set_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


def _start_moto(port: int) -> subprocess.Popen[bytes] | None:
    """moto's server (with atomic writes: atomic_moto.py) in a process of its own on `port`, or
    None if it exited (port taken)."""
    # A process of its own, not moto's in-process thread: the server then neither shares the
    # tests' GIL nor waits on it, which made every request several times slower.
    server = str(Path(__file__).with_name("atomic_moto.py"))
    process = subprocess.Popen(
        [sys.executable, server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # a loaded machine imports moto slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait(10)
    pytest.fail("moto's S3 server did not start within 60 s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    for _ in range(3):  # another process may take the free port before moto binds it
        port = free_port()
        process = _start_moto(port)
        if process is not None:
            break
    else:
        pytest.fail("moto's S3 server exited at start three times")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # by PID: only the server this fixture started
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def _s3_admin(s3_endpoint: str) -> Iterator[Any]:
    """One boto3 client for the fixtures' own requests, and one anystore store held open for
    the session, so that the tests' stores (same endpoint, environment and options) share its
    pooled client instead of each building one (a botocore session and the S3 model, ~0.1 s)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _set_aws_env(monkeypatch)
        client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
        keeper = f"keep-{uuid.uuid4().hex[:20]}"
        client.create_bucket(Bucket=keeper)
        store = get_store(f"s3://{keeper}", endpoint_url=s3_endpoint)
        yield client
        store.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and no profile or endpoint from the developer's machine."""
    _set_aws_env(monkeypatch)


@pytest.fixture
def bucket(_s3_admin: Any, aws_env: None) -> str:
    """A new, empty bucket of this test's own."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    _s3_admin.create_bucket(Bucket=name)
    return name
