"""Time operations through a store's public API and print JSON; runs in any anystore version.

The benchmark scripts run this script in two interpreters (this project's, and a virtualenv with
anystore==1.5.5), so both do exactly the same calls; `compare.py` also calls `store_ops` in its
own process for this project's side.

    python store_ops.py single URI COUNT     put/get/exists/delete one by one, then iterate_keys
    python store_ops.py iterate URI COUNT    write COUNT keys, then time iterate_keys once
    python store_ops.py serve URI COUNT      compare.py's ops, one per line read (see `serve`)
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from common import VALUE, best_rate, best_time, time_op


def rep_keys(count: int) -> list[str]:
    """The keys of one repetition: 100 folders, so listings walk a tree."""
    return [f"{i % 100:02d}/{i:05d}" for i in range(count)]


def store_ops(store: Any) -> tuple[dict[str, Callable[[str], object]], Callable[[], int]]:
    """compare.py's ops through a store's public API, and its listing of every key."""
    ops: dict[str, Callable[[str], object]] = {
        "put": lambda k: store.put(k, VALUE),
        "get": store.get,
        "exists": store.exists,
        "delete": store.delete,
    }
    probe = f"probe-{uuid.uuid4().hex}"
    try:
        store.put(probe, VALUE)
        store.info(probe)
        ops["info"] = store.info
    except Exception:  # a version without a working info: the op is left out
        pass
    try:
        store.delete(probe)
    except Exception:  # nothing was written
        pass
    return ops, lambda: sum(1 for _ in store.iterate_keys())


# Starts every answer line of `serve`: a version may log to stdout too.
MARK = "@@ "


def serve(uri: str, count: int) -> None:
    """Answer op names read from stdin, one a line, each with a MARK line: {"seconds": s}
    (per call; "iterate": the whole listing) or {"error": text}. The first line out lists the
    ops this version can run. compare.py drives this, so that the sides take turns per op."""
    from anystore import get_store

    store = get_store(uri)
    ops, iterate = store_ops(store)
    keys = rep_keys(count)
    print(MARK + json.dumps([*ops, "iterate"]), flush=True)
    for line in sys.stdin:
        try:
            answer: dict[str, Any] = {"seconds": time_op(line.strip(), keys, ops, iterate)}
        except Exception as error:  # reported to the driver, which leaves this side out
            answer = {"error": f"{type(error).__name__}: {error}"[:300]}
        print(MARK + json.dumps(answer), flush=True)


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
    if command == "serve":
        serve(uri, count)
        sys.exit()
    figures = {"single": single, "iterate": iterate}[command](uri, count)
    print(json.dumps(figures))
