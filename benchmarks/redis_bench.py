"""Benchmark anystore-redis against raw redis-py and anystore 1.5.5, on 127.0.0.1:6379.

Single put/get/exists next to raw SET/GET/EXISTS, put_many/get_many of 10,000 values next to a
raw pipeline and MGET, iterate_keys over 100,000 keys; ratios measured in this one run.

    uv run python benchmarks/redis_bench.py [--url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import uuid

import redis
from common import VALUE, baseline_python, best_rate, best_time, store_ops, table

from anystore import get_store


def clean(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--single", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--iterate", type=int, default=100_000)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.url)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    store = get_store(f"{args.url}/{prefix}/ours")
    value = VALUE.encode()
    try:
        keys = [f"k/{i:06d}" for i in range(args.single)]
        raw_keys = [f"{prefix}/raw/{k}" for k in keys]
        ours = {
            "put": best_rate(lambda k: store.put(k, VALUE), keys),
            "get": best_rate(store.get, keys),
            "exists": best_rate(store.exists, keys),
        }
        raw = {
            "put": best_rate(lambda k: client.set(k, value), raw_keys),
            "get": best_rate(lambda k: client.get(k).decode(), raw_keys),
            "exists": best_rate(client.exists, raw_keys),
        }
        old_python = baseline_python("redis")
        old = store_ops(old_python, "single", f"{args.url}/{prefix}/old", str(args.single))
        old.pop("iterate_keys_s", None)
        old.pop("delete", None)
        table(
            f"single operations, {args.single} keys (ops/s)", ours, {"redis-py": raw, "1.5.5": old}
        )

        items = {f"b/{i:06d}": VALUE for i in range(args.batch)}
        names = list(items)
        raw_names = [f"{prefix}/raw/{k}" for k in names]

        def raw_put_many() -> None:
            pipe = client.pipeline(transaction=False)
            for name in raw_names:
                pipe.set(name, value)
            pipe.execute()

        batch_ours = {
            "put_many_s": best_time(lambda: store.put_many(items)),
            "get_many_s": best_time(lambda: store.get_many(names)),
        }
        batch_raw = {
            "put_many_s": best_time(raw_put_many),
            "get_many_s": best_time(lambda: [v.decode() for v in client.mget(raw_names)]),
        }
        table(f"batches of {args.batch} values (seconds)", batch_ours, {"pipeline/MGET": batch_raw})

        big = get_store(f"{args.url}/{prefix}/iter")
        for start in range(0, args.iterate, 10_000):
            big.put_many({f"{i % 100:02d}/{i:06d}": VALUE for i in range(start, start + 10_000)})
        listed = 0

        def iterate() -> None:
            nonlocal listed
            listed = sum(1 for _ in big.iterate_keys())

        iter_ours = {"iterate_keys_s": best_time(iterate, rounds=2)}
        assert listed == args.iterate, listed
        iter_raw = {
            "iterate_keys_s": best_time(
                lambda: sum(1 for _ in client.scan_iter(match=f"{prefix}/iter/*", count=1000)),
                rounds=2,
            )
        }
        clean(client, f"{prefix}/iter")
        iter_old = store_ops(
            old_python, "iterate", f"{args.url}/{prefix}/olditer", str(args.iterate)
        )
        table(
            f"iterate_keys over {args.iterate} keys (seconds)",
            iter_ours,
            {"raw SCAN": iter_raw, "1.5.5": iter_old},
        )
    finally:
        clean(client, prefix)


if __name__ == "__main__":
    main()
