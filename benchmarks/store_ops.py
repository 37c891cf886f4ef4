"""Time operations through a store's public API and print JSON; runs in any anystore version.

`core.py` and `redis_bench.py` run this script in two interpreters (this project's, and a
virtualenv with anystore==1.5.5), so both do exactly the same calls.

    python store_ops.py single URI COUNT     put/get/exists/delete one by one, then iterate_keys
    python store_ops.py iterate URI COUNT    write COUNT keys, then time iterate_keys once
"""

from __future__ import annotations

import json
import sys
import time

from common import VALUE, best_rate, best_time


def single(uri: str, count: int) -> dict[str, float]:
    from anystore import get_store

    store = get_store(uri)
    keys = [f"{i % 100:02d}/{i:05d}" for i in range(count)]
    results = {
        "put": best_rate(lambda k: store.put(k, VALUE), keys),
        "get": best_rate(store.get, keys),
        "exists": best_rate(store.exists, keys),
    }
    listed = 0

    def iterate() -> None:
        nonlocal listed
        listed = sum(1 for _ in store.iterate_keys())

    results["iterate_keys_s"] = best_time(iterate)
    assert listed == count, (listed, count)
    results["delete"] = best_rate(store.delete, keys, rounds=1)
    return results


def iterate(uri: str, count: int) -> dict[str, float]:
    from anystore import get_store

    store = get_store(uri)
    for i in range(count):
        store.put(f"{i % 100:02d}/{i:06d}", VALUE)
    listed = 0

    def run() -> None:
        nonlocal listed
        listed = sum(1 for _ in store.iterate_keys())

    # One round: anystore 1.5.5 takes minutes here. The caller removes the keys.
    seconds = best_time(run, rounds=1)
    assert listed == count, (listed, count)
    return {"iterate_keys_s": seconds}


if __name__ == "__main__":
    command, uri, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    started = time.perf_counter()
    figures = {"single": single, "iterate": iterate}[command](uri, count)
    print(json.dumps(figures))
