"""Helpers shared by the benchmark scripts: timing, the 1.5.5 baseline venv, result tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    # A neutral folder and no ANYSTORE_* variables: each interpreter imports its own anystore.
    result = subprocess.run(
        [str(python), str(HERE / "store_ops.py"), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
        env={k: v for k, v in os.environ.items() if not k.startswith("ANYSTORE_")},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


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
