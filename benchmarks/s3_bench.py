"""Benchmark anystore-s3 against raw boto3 and anystore 1.5.5, on moto's S3 server (loopback).

1,000 small values put and read one by one and with put_many/get_many, iterate_keys over 5,000
keys; ratios measured in this one run. moto runs in its own process, so that it does not share
the client's interpreter.

    uv run python benchmarks/s3_bench.py
    uv run python benchmarks/s3_bench.py --latency-ms 20

On loopback a request costs only CPU (the client's and moto's), so concurrency can at best overlap
the two. `--latency-ms` puts a proxy in front of moto that delays each response, as a network round
trip to a real S3 region would, and measures the batch calls against loops through it.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

import boto3
from common import (
    VALUE,
    baseline_python,
    best_rate,
    best_time,
    free_port,
    start_moto,
    start_server,
    store_ops,
    table,
)

from anystore import Store, get_store


def batches_and_loops(
    store: Store, items: dict[str, str], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds for put_many/get_many of `items`, and for loops of single put/get."""
    batch = {
        "put_many_s": best_time(lambda: store.put_many(items), rounds=rounds),
        "get_many_s": best_time(lambda: store.get_many(list(items)), rounds=rounds),
    }
    loops = {
        "put_many_s": best_time(lambda: [store.put(k, v) for k, v in items.items()], 1),
        "get_many_s": best_time(lambda: [store.get(k) for k in items], 1),
    }
    return batch, loops


def latency_run(bucket: str, endpoint: str, count: int) -> None:
    """Batch calls against loops of single calls, through the delaying proxy."""
    store = get_store(f"s3://{bucket}", endpoint_url=endpoint)
    client = boto3.client("s3", endpoint_url=endpoint)
    items = {f"b/{i:05d}": VALUE for i in range(count)}
    batch, loops = batches_and_loops(store, items, rounds=1)
    raw = {
        "put_many_s": best_time(
            lambda: [client.put_object(Bucket=bucket, Key=k, Body=v) for k, v in items.items()], 1
        ),
        "get_many_s": best_time(
            lambda: [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in items], 1
        ),
    }
    table(
        f"batches of {count} values (seconds), each response delayed",
        batch,
        {"loop of single calls": loops, "boto3 loop": raw},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--iterate", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if args.latency_ms:
        proxy_port = free_port()
        script = str(Path(__file__).with_name("latency_proxy.py"))
        moto = start_moto(port)
        proxy = start_server(
            [sys.executable, script, str(proxy_port), str(port), str(args.latency_ms)], proxy_port
        )
        try:
            os.environ.update(
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
                AWS_DEFAULT_REGION="us-east-1",
            )
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            proxied = f"http://127.0.0.1:{proxy_port}"
            boto3.client("s3", endpoint_url=proxied).create_bucket(Bucket=bucket)
            print(f"each response delayed by {args.latency_ms:g} ms")
            latency_run(bucket, proxied, args.count)
        finally:
            for process in (proxy, moto):
                process.kill()
                process.wait()
        return
    moto = start_moto(port, environment=True)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        for name in (bucket, f"{bucket}-raw", f"{bucket}-old", f"{bucket}-iter"):
            client.create_bucket(Bucket=name)
        store = get_store(f"s3://{bucket}", endpoint_url=endpoint)
        value = VALUE.encode()
        keys = [f"k/{i:05d}" for i in range(args.count)]
        ours = {
            "put": best_rate(lambda k: store.put(k, VALUE), keys, rounds=2),
            "get": best_rate(store.get, keys, rounds=2),
        }
        raw = {
            "put": best_rate(
                lambda k: client.put_object(Bucket=f"{bucket}-raw", Key=k, Body=value), keys, 2
            ),
            "get": best_rate(
                lambda k: client.get_object(Bucket=f"{bucket}-raw", Key=k)["Body"].read(),
                keys,
                2,
            ),
        }
        old_python = baseline_python("s3fs")
        old = store_ops(old_python, "single", f"s3://{bucket}-old", str(args.count))
        table(
            f"single operations, {args.count} small values (ops/s)",
            ours,
            {"boto3": raw, "1.5.5": {"put": old["put"], "get": old["get"]}},
        )
        items = {f"b/{i:05d}": VALUE for i in range(args.count)}
        batch, loops = batches_and_loops(store, items, rounds=2)
        table(f"batches of {args.count} values (seconds)", batch, {"loop of single calls": loops})

        big = get_store(f"s3://{bucket}-iter", endpoint_url=endpoint)
        big.put_many({f"{i % 50:02d}/{i:05d}": VALUE for i in range(args.iterate)})
        listed = 0

        def iterate() -> None:
            nonlocal listed
            listed = sum(1 for _ in big.iterate_keys())

        ours_iter = {"iterate_keys_s": best_time(iterate, rounds=2)}
        assert listed == args.iterate

        def raw_iterate() -> None:
            paginator = client.get_paginator("list_objects_v2")
            sum(
                len(page.get("Contents", []))
                for page in paginator.paginate(Bucket=f"{bucket}-iter")
            )

        old_iter = store_ops(old_python, "iterate", f"s3://{bucket}-old/iter", str(args.iterate))
        table(
            f"iterate_keys over {args.iterate} keys (seconds)",
            ours_iter,
            {"boto3 paginator": {"iterate_keys_s": best_time(raw_iterate, 2)}, "1.5.5": old_iter},
        )
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    main()
