"""Reaching the loopback services the plugin tests need: skip on a laptop, fail in CI."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable

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


def stop_processes(list_pids: Callable[[], list[int]], timeout: float = 30.0) -> None:
    """SIGSTOP the processes `list_pids()` names (the server's main process first, then its
    children) and return once every thread of each is stopped.

    A process stops only as each of its threads next runs: on a loaded machine a request sent
    right after the kill could still be answered (measured: none of a private mariadbd's 14
    threads stopped at once, all within 20 ms), and a stall test would see no stall. The pids
    are listed again until no new one appears (a child forked meanwhile). A main process that is
    gone or a zombie fails the test: a dead server must not pass for a stalled one.
    """
    import signal
    import time

    deadline = time.monotonic() + timeout
    stopped: set[int] = set()
    while True:
        pids = list_pids()
        main = pids[0]
        if _state(main) in (None, "Z", "X"):
            pytest.fail(f"the server (pid {main}) has exited: it cannot be stalled")
        fresh = [pid for pid in pids if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue  # a child that exited (a PostgreSQL backend of a closed connection)
        stopped.update(fresh)
    while any(_running_threads(pid) for pid in stopped):
        if time.monotonic() > deadline:
            pytest.fail(f"processes {sorted(stopped)} did not stop within {timeout} s of SIGSTOP")
        time.sleep(0.005)


def _state(pid: int, task: int | None = None) -> str | None:
    """The state letter of a process (or one of its threads); None once it is gone."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        with open(path) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def _running_threads(pid: int) -> int:
    """How many threads of `pid` are not stopped yet (0 for a process that is gone)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    states = (_state(pid, int(task)) for task in tasks)
    return sum(state not in (None, "T", "t", "Z", "X") for state in states)


# Private servers listen below the kernel's ephemeral range (32768-60999 here), so that no
# client connection's source port can take a port between free_port() and the server's bind, and
# each pytest-xdist worker draws from a band of its own, so two workers never get the same port.
_BAND_START, _BAND_SIZE, _BANDS = 20000, 1500, 8


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, in this worker's own band."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    band = int(worker) % _BANDS if worker.isdigit() else 0
    first = _BAND_START + band * _BAND_SIZE
    for port in random.sample(range(first, first + _BAND_SIZE), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {first}-{first + _BAND_SIZE - 1}")
