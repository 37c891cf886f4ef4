"""Helpers shared by the benchmark scripts: timing, the 1.5.5 baseline venv, loopback servers,
result tables. Everything a baseline interpreter runs (store_ops.py, bigvalue.py) imports only the
standard library from here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent / ".bench"
BASELINE = "anystore==1.5.5"

VALUE = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs!!!"
VALUE = (VALUE * 2)[:100]


def best_rate(action: Callable[[str], object], keys: list[str], rounds: int = 3) -> float:
    """Operations per second of `action` over `keys`, best of `rounds`."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for key in keys:
            action(key)
        best = min(best, time.perf_counter() - start)
    return len(keys) / best


def best_time(action: Callable[[], object], rounds: int = 3) -> float:
    """Seconds of the fastest of `rounds` calls of `action`."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


# The ops of one repetition, in the order they run: every key is there from put to delete.
REP_OPS = ("put", "get", "exists", "iterate", "info", "delete")


def time_op(
    name: str, keys: list[str], ops: dict[str, Callable[[str], object]], iterate: Callable[[], int]
) -> float:
    """Seconds per call of `ops[name]` over `keys`; for "iterate", seconds of one `iterate()`
    (which returns how many keys it listed: all of them, or AssertionError)."""
    if name == "iterate":
        start = time.perf_counter()
        listed = iterate()
        elapsed = time.perf_counter() - start
        assert listed == len(keys), (listed, len(keys))
        return elapsed
    action = ops[name]
    start = time.perf_counter()
    for key in keys:
        action(key)
    return (time.perf_counter() - start) / len(keys)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(command: list[str], port: int) -> subprocess.Popen[bytes]:
    """Start a server process and wait until it accepts connections on 127.0.0.1:`port`."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command[0]} did not start")


def start_moto(port: int, *, environment: bool = False) -> subprocess.Popen[bytes]:
    """moto's S3 server on 127.0.0.1:`port`, in its own process (stop it with kill + wait).

    `environment=True` also points this process's AWS environment at it (fake credentials), so
    that every client made afterwards, ours and the raw ones, talks to it."""
    if environment:
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        )
    server = Path(sys.executable).parent / "moto_server"
    return start_server([str(server), "-H", "127.0.0.1", "-p", str(port)], port)


def run_json(python: Path | str, script: str, *args: str, timeout: float = 900) -> Any:
    """Run benchmarks/`script` with `args` in `python`; return the JSON its last line prints."""
    # A neutral folder and no ANYSTORE_* variables: each interpreter imports its own anystore.
    result = subprocess.run(
        [str(python), str(HERE / script), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if not k.startswith("ANYSTORE_")},
        timeout=timeout,
    )
    if result.returncode:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{script} {' '.join(args)} failed: {tail[0]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def baseline_python(*extras: str) -> Path:
    """The interpreter of a virtualenv holding anystore 1.5.5 (and `extras`), made on first use."""
    venv = BENCH / "venv-1.5.5"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"installing {BASELINE} into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    packages = [BASELINE, *extras]
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
        check=True,
        cwd=tempfile.gettempdir(),
        stderr=subprocess.DEVNULL,
    )
    return python


def store_ops(python: Path | str, *args: str) -> dict[str, float]:
    """Run store_ops.py with `args` in `python`; return the JSON figures it prints."""
    figures: dict[str, float] = run_json(python, "store_ops.py", *args)
    return figures


def table(title: str, ours: dict[str, float], others: dict[str, dict[str, float]]) -> None:
    """Print ours next to each other column with a ratio; keys ending in _s are seconds."""
    print(f"\n{title}")
    names = list(others)
    print(f"  {'op':<18}{'anystore':>14}" + "".join(f"{n:>16}{'ratio':>9}" for n in names))
    for op in ours:
        seconds = op.endswith("_s")
        row = f"  {op:<18}" + (f"{ours[op]:>14.4f}" if seconds else f"{ours[op]:>14,.0f}")
        for name in names:
            theirs = others[name].get(op)
            if theirs is None:
                row += f"{'-':>16}{'':>9}"
                continue
            # ratio > 1: anystore is faster (more ops/s, or fewer seconds)
            ratio = theirs / ours[op] if seconds else ours[op] / theirs
            row += (f"{theirs:>16.4f}" if seconds else f"{theirs:>16,.0f}") + f"{ratio:>8.2f}x"
        print(row)
