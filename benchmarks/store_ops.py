"""Time put/get/exists/delete/iterate_keys through a store's public API; print JSON.

Run by `core.py` in two interpreters: this project's and a virtualenv with `anystore==1.5.5`,
so both do exactly the same calls. Usage: python store_ops.py URI COUNT
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

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


def main() -> None:
    from anystore import get_store

    uri, count = sys.argv[1], int(sys.argv[2])
    store = get_store(uri)
    keys = [f"{i % 100:02d}/{i:05d}" for i in range(count)]
    results = {
        "put": best_rate(lambda k: store.put(k, VALUE), keys),
        "get": best_rate(store.get, keys),
        "exists": best_rate(store.exists, keys),
    }
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        listed = sum(1 for _ in store.iterate_keys())
        best = min(best, time.perf_counter() - start)
    assert listed == count, (listed, count)
    results["iterate_keys_s"] = best
    start = time.perf_counter()
    for key in keys:
        store.delete(key)
    results["delete"] = count / (time.perf_counter() - start)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
