"""What a lock costs, per backend: uncontended acquire + release, next to one put of 100 bytes.

Also a contended run: PROCESSES processes each take the lock ROUNDS times around a read-modify-
write of a counter, and the script checks that no increment was lost (and says how long it took).

    uv run python benchmarks/lock_bench.py [--count 500] [--skip-services]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import VALUE, best_rate

from anystore import Store, get_store

PROCESSES = 4
ROUNDS = 25

WORKER = """
import sys, time
from anystore import Store, get_store
store = get_store(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
for _ in range({rounds}):
    with store.lock("counter", ttl=60, timeout=300):
        store.put("counter", store.get("counter") + 1)
"""


def cycle(store: Store, name: str) -> None:
    """Take and release one lock."""
    with store.lock(name):
        pass


def contended(uri: str) -> float:
    """Seconds for PROCESSES x ROUNDS locked increments; raises if any increment was lost."""
    store = get_store(uri)
    store.put("counter", 0)
    start = time.time() + 2
    script = WORKER.format(rounds=ROUNDS)
    workers = [
        subprocess.Popen([sys.executable, "-c", script, uri, str(start)]) for _ in range(PROCESSES)
    ]
    for worker in workers:
        if worker.wait() != 0:
            raise SystemExit(f"a worker failed on {uri}")
    elapsed = time.time() - start
    counted = store.get("counter")
    if counted != PROCESSES * ROUNDS:
        raise SystemExit(f"{uri}: {counted} increments counted, {PROCESSES * ROUNDS} made")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--skip-services", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lock-bench-"))
    table = f"t_{uuid.uuid4().hex[:12]}"
    uris = {"memory": "memory://lock-bench", "local files": str(folder / "store")}
    uris["sqlite"] = f"sqlite:///{folder}/store.db?table={table}"
    if not args.skip_services:
        uris["redis"] = f"redis://127.0.0.1:6379/0/lock-bench-{uuid.uuid4().hex[:8]}"
        uris["postgresql"] = f"postgresql://postgres@127.0.0.1:5432/test?table={table}"
        uris["mariadb"] = f"mysql://root@127.0.0.1:3306/test?table={table}"
    names = [f"n/{i:05d}" for i in range(args.count)]
    print(f"{'backend':<14}{'lock+unlock/s':>15}{'put/s':>10}{'contended':>26}")
    for backend, uri in uris.items():
        store = get_store(uri)
        locks = best_rate(lambda name, store=store: cycle(store, name), names, rounds=2)
        puts = best_rate(lambda name, store=store: store.put(name, VALUE), names, rounds=2)
        if backend == "memory":
            shared = "- (one process only)"
        else:
            shared = f"{PROCESSES}x{ROUNDS} in {contended(uri):.2f} s, none lost"
        print(f"{backend:<14}{locks:>15,.0f}{puts:>10,.0f}{shared:>26}")
        store.delete_many(names)
        if backend in ("postgresql", "mariadb"):
            drop_table(uri, table)


def drop_table(uri: str, table: str) -> None:
    """Remove the benchmark's table from a shared database."""
    from sqlalchemy import create_engine, text

    from anystore_sql.urls import parse_uri

    engine = create_engine(parse_uri(uri)[0])
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


if __name__ == "__main__":
    main()
