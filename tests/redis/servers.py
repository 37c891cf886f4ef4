"""The Redis servers of the tests: the shared one on 127.0.0.1:6379, and private ones.

A private redis-server runs on a free loopback port for tests that stall, kill or restart it.
The shared server is never stopped, stalled or flushed; private instances are, by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.services import in_ci, stop_processes

HOST, PORT = "127.0.0.1", 6379


@dataclass
class PrivateRedis:
    """A running private redis-server: its port and process."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stall(self) -> None:
        """SIGSTOP the server (and wait until it is stopped): it keeps accepting TCP connections
        but answers nothing."""
        stop_processes(lambda: [self.process.pid])

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Resume (a stopped process ignores SIGTERM until then) and terminate it, by PID."""
        if self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_redis(port: int, *extra: str) -> PrivateRedis:
    """Start `redis-server` on 127.0.0.1:`port` without persistence; skip if not installed."""
    server = shutil.which("redis-server")
    if server is None:
        if in_ci():
            pytest.fail("redis-server is not installed; CI needs it")
        pytest.skip("redis-server is not installed")
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", *extra]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    # No retries with backoff inside ping: this loop is the retry, and it ends in 60 s (a loaded
    # machine may take seconds to start a process), as the other private servers' do.
    probe = redis.Redis(port=port, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"a private redis-server exited at once ({process.returncode}): {command}")
        try:
            if probe.ping():
                probe.close()
                return PrivateRedis(port, process)
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    process.wait(10)
    pytest.fail("a private redis-server did not start")
