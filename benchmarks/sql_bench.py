"""Benchmark anystore-sql on SQLite, PostgreSQL and MariaDB against raw SQLAlchemy Core, the
stdlib sqlite3 module and anystore 1.5.5; ratios measured in this one run.

Raw Core runs the very statements the backend prepared (upsert, select), without the Store
layers. 1.5.5 is timed on SQLite only: on PostgreSQL its put fails when a key already exists
(its insert-then-update runs inside an aborted transaction), and its MySQL support needs
mysqlclient.

    uv run python benchmarks/sql_bench.py [--single 2000] [--batch 10000] [--iterate 100000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
import tracemalloc
import uuid

from common import VALUE, baseline_python, best_rate, best_time, store_ops, table
from sqlalchemy import text

from anystore import get_store

DATABASES = {
    "sqlite": "sqlite:///{tmp}/bench.db",
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql://root@127.0.0.1:3306/test",
}
OLD_URIS = {"sqlite": "sqlite:///{tmp}/old.db"}


def raw_core(store, keys: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    backend = store.backend
    engine, value = backend.engine, VALUE.encode()

    def put(key: str) -> None:
        now = time.time()
        with engine.begin() as connection:
            connection.execute(
                backend._upsert, {"k": "raw/" + key, "v": value, "now": now, "exp": None}
            )

    def get(key: str) -> str:
        with engine.connect() as connection:
            return (
                connection.execute(backend._get, {"k": "raw/" + key, "now": time.time()})
                .scalar()
                .decode()
            )

    def exists(key: str) -> bool:
        with engine.connect() as connection:
            return (
                connection.execute(backend._exists, {"k": "raw/" + key, "now": time.time()}).first()
                is not None
            )

    return {
        "put": best_rate(put, keys),
        "get": best_rate(get, keys),
        "exists": best_rate(exists, keys),
    }


def raw_sqlite3(path: str, keys: list[str]) -> dict[str, float]:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS raw (key TEXT PRIMARY KEY, value BLOB)")
    value = VALUE.encode()

    def put(key: str) -> None:
        connection.execute(
            "INSERT INTO raw VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def get(key: str) -> str:
        return (
            connection.execute("SELECT value FROM raw WHERE key=?", (key,)).fetchone()[0].decode()
        )

    def exists(key: str) -> bool:
        return connection.execute("SELECT 1 FROM raw WHERE key=?", (key,)).fetchone() is not None

    figures = {
        "put": best_rate(put, keys),
        "get": best_rate(get, keys),
        "exists": best_rate(exists, keys),
    }
    connection.close()
    return figures


def iterate_memory(store, count: int, size: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(seconds, peak MiB of Python allocations) to list `count` keys holding `size` bytes each."""
    payload = os.urandom(size)
    for start in range(0, count, 1000):
        store.put_many(
            {f"mem{size}/{i:06d}": payload for i in range(start, min(count, start + 1000))},
            serialization_mode="raw",
        )
    tracemalloc.start()
    started = time.perf_counter()
    listed = sum(1 for _ in store.iterate_keys(prefix=f"mem{size}"))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert listed == count
    return seconds, peak


def bench_database(
    name: str, uri: str, args: argparse.Namespace, old_python: object, tmp: str
) -> None:
    """Print the figures for one database."""
    tablename = f"bench_{uuid.uuid4().hex[:10]}"
    store = get_store(f"{uri}?table={tablename}")
    try:
        keys = [f"k/{i:06d}" for i in range(args.single)]
        ours = {
            "put": best_rate(lambda k: store.put(k, VALUE), keys),
            "get": best_rate(store.get, keys),
            "exists": best_rate(store.exists, keys),
        }
        others = {"raw Core": raw_core(store, keys)}
        if name == "sqlite":
            others["sqlite3"] = raw_sqlite3(f"{tmp}/raw.db", keys)
        if name in OLD_URIS:
            old = store_ops(old_python, "single", OLD_URIS[name].format(tmp=tmp), str(args.single))
            others["1.5.5"] = {k: old[k] for k in ("put", "get", "exists")}
        table(f"{name}: single operations, {args.single} keys (ops/s)", ours, others)

        items = {f"b/{i:06d}": VALUE for i in range(args.batch)}
        batch = {
            "put_many_s": best_time(lambda: store.put_many(items)),
            "get_many_s": best_time(lambda: store.get_many(list(items))),
        }
        raw_rows = [
            {"k": f"rawb/{k}", "v": VALUE.encode(), "now": time.time(), "exp": None} for k in items
        ]

        def raw_put_many() -> None:
            with store.backend.engine.begin() as connection:
                connection.execute(store.backend._upsert, raw_rows)

        batch_others = {"raw executemany": {"put_many_s": best_time(raw_put_many)}}
        if "1.5.5" in others:
            # 1.5.5 has no put_many: a loop of its puts, at the rate measured above
            batch_others["1.5.5 put loop"] = {"put_many_s": args.batch / others["1.5.5"]["put"]}
        table(f"{name}: batches of {args.batch} values (seconds)", batch, batch_others)

        for start in range(0, args.iterate, 10_000):
            store.put_many({f"it/{i:06d}": VALUE for i in range(start, start + 10_000)})
        listed = 0

        def iterate() -> None:
            nonlocal listed
            listed = sum(1 for _ in store.iterate_keys(prefix="it"))

        seconds = best_time(iterate, rounds=1)
        assert listed == args.iterate
        small = iterate_memory(store, 2000, 100)
        large = iterate_memory(store, 2000, 1 << 20)
        print(f"  iterate_keys over {args.iterate} keys: {seconds:.2f} s")
        print(
            f"  iterate_keys peak Python memory, 2000 keys: {small[1]:.2f} MiB with 100 B "
            f"values, {large[1]:.2f} MiB with 1 MiB values"
        )
    finally:
        with store.backend.engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {tablename}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--iterate", type=int, default=100_000)
    args = parser.parse_args()
    old_python = baseline_python("sqlalchemy", "psycopg[binary]")
    with tempfile.TemporaryDirectory() as tmp:
        for name, template in DATABASES.items():
            bench_database(name, template.format(tmp=tmp), args, old_python, tmp)


if __name__ == "__main__":
    main()
