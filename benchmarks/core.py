"""Benchmark anystore-core: memory and local files against the raw medium and anystore 1.5.5.

Prints ops/s for put/get/exists/delete over COUNT keys of 100 bytes, `iterate_keys` time, and the
start-up time (import plus first get_store), each as a ratio measured in this one run. The
published anystore==1.5.5 is installed into .bench/venv-1.5.5 (a separate virtualenv; never a
dependency of this project).

    uv run python benchmarks/core.py [--count 10000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import VALUE, baseline_python, best_rate, store_ops, table


def raw_memory(count: int) -> dict[str, float]:
    data: dict[str, bytes] = {}
    value = VALUE.encode()
    keys = [f"{i % 100:02d}/{i:05d}" for i in range(count)]
    results = {
        "put": best_rate(lambda k: data.__setitem__(k, value), keys),
        "get": best_rate(lambda k: data[k].decode(), keys),
        "exists": best_rate(lambda k: k in data, keys),
    }
    start = time.perf_counter()
    listed = sum(1 for _ in list(data))
    results["iterate_keys_s"] = time.perf_counter() - start
    assert listed == count
    results["delete"] = best_rate(lambda k: data.pop(k, None), keys, rounds=1)
    return results


def raw_files(root: Path, count: int) -> dict[str, float]:
    """The same work with open()/os.replace()/os.scandir(): atomic writes, plain reads."""
    value = VALUE.encode()
    keys = [f"{i % 100:02d}/{i:05d}" for i in range(count)]
    for folder in {k.split("/")[0] for k in keys}:
        (root / folder).mkdir(parents=True, exist_ok=True)

    def put(key: str) -> None:
        path = os.path.join(root, key)
        temp = path + ".tmp"
        with open(temp, "wb") as handle:
            handle.write(value)
        os.replace(temp, path)

    def get(key: str) -> str:
        with open(os.path.join(root, key), "rb") as handle:
            return handle.read().decode()

    def walk(folder: str, prefix: str = ""):  # type: ignore[no-untyped-def]
        for entry in os.scandir(folder):
            name = f"{prefix}/{entry.name}" if prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from walk(entry.path, name)
            else:
                yield name

    results = {
        "put": best_rate(put, keys),
        "get": best_rate(get, keys),
        "exists": best_rate(lambda k: os.path.isfile(os.path.join(root, k)), keys),
    }
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        listed = sum(1 for _ in walk(str(root)))
        best = min(best, time.perf_counter() - start)
    assert listed == count
    results["iterate_keys_s"] = best
    results["delete"] = best_rate(lambda k: os.unlink(os.path.join(root, k)), keys, rounds=1)
    return results


def startup(python: Path | str, runs: int = 15) -> float:
    """Median wall time of `import anystore; anystore.get_store('memory://')` in a new process."""
    code = "import anystore; anystore.get_store('memory://')"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    count = args.count
    ours_python = sys.executable
    old_python = baseline_python()
    print(f"{count} keys of 100 bytes; ops/s (higher is better), iterate_keys in seconds")
    print("ratio = anystore / other for ops/s, other / anystore for seconds: >1 means faster")

    table(
        "memory://",
        store_ops(ours_python, "single", "memory://bench", str(count)),
        {
            "raw dict": raw_memory(count),
            "1.5.5": store_ops(old_python, "single", "memory://bench", str(count)),
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        ours = store_ops(ours_python, "single", f"{tmp}/ours", str(count))
        raw = raw_files(Path(tmp) / "raw", count)
        old = store_ops(old_python, "single", f"{tmp}/old", str(count))
    table("local files", ours, {"raw open()": raw, "1.5.5": old})

    ours_start, old_start = startup(ours_python), startup(old_python)
    print("\nstart-up: import anystore + get_store('memory://'), median of 15 processes")
    print(
        f"  anystore {ours_start * 1000:.0f} ms, 1.5.5 {old_start * 1000:.0f} ms, "
        f"ratio {ours_start / old_start:.2f} (target <= 0.25)"
    )


if __name__ == "__main__":
    main()
