"""Worker processes of the fault runs, started by reliability.py (never by hand):

    python -m faults.worker writer SPEC_JSON WRITER_ID ACK_FILE SMALL BIG BIG_EVERY
    python -m faults.worker overwrite SPEC_JSON WRITER_ID KEYS SIZE
    python -m faults.worker hammer SPEC_JSON PROCESS_ID THREADS SECONDS KEYS RESULT_FILE

A writer runs until it is killed; before each write it notes `begin KEY SEQ`, after the store
acknowledged it `ack KEY SEQ`, each line one write(2) to an append-only file, so what the parent
reads after the SIGKILL is exactly what was acknowledged.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections import Counter
from typing import Any

from faults.targets import open_store
from faults.values import Torn, encode, kind, one_line, verify

CHUNK = 1 << 20
OPS = ["put", "get", "delete", "put_many", "get_many", "iterate_keys", "pop"]
WEIGHTS = [30, 30, 10, 8, 8, 4, 10]


def stream_write(store: Any, key: str, value: bytes) -> None:
    """Write `value` through `open(key, "wb")`, 1 MiB at a time."""
    with store.open(key, "wb") as handle:
        for start in range(0, len(value), CHUNK):
            handle.write(value[start : start + CHUNK])


def writer(
    spec: dict[str, Any], writer_id: str, ack_file: str, small: int, big: int, big_every: int
) -> None:
    """Overwrite 8 small keys (put) and 2 large ones (streamed) of this writer, forever."""
    store = open_store(spec)
    rng = random.Random(writer_id)
    fd = os.open(ack_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(fd, b"ready\n")
    seq = 0
    while True:
        seq += 1
        if big and seq % big_every == 0:
            key = f"{writer_id}/b{rng.randrange(2)}"
            os.write(fd, f"begin {key} {seq}\n".encode())
            stream_write(store, key, encode(key, writer_id, seq, big))
        else:
            key = f"{writer_id}/s{rng.randrange(8)}"
            os.write(fd, f"begin {key} {seq}\n".encode())
            store.put(key, encode(key, writer_id, seq, rng.randint(small // 2, small)))
        os.write(fd, f"ack {key} {seq}\n".encode())


def overwrite(spec: dict[str, Any], writer_id: str, keys: int, size: int) -> None:
    """Overwrite `keys` shared large keys forever: streamed writes, puts, and a few deletes."""
    store = open_store(spec)
    rng = random.Random(writer_id)
    seq = 0
    while True:
        seq += 1
        key = f"r/{rng.randrange(keys)}"
        roll = rng.random()
        if roll < 0.1:
            store.delete(key)
        elif roll < 0.55:
            stream_write(store, key, encode(key, writer_id, seq, size))
        else:
            store.put(key, encode(key, writer_id, seq, size))
        time.sleep(0.02)


class Tally:
    """Counts of operations, errors by type (with one message each) and torn values; locked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.samples: dict[str, str] = {}
        self.torn: Counter[str] = Counter()

    def error(self, op: str, error: BaseException) -> None:
        name = f"{op}:{kind(error)}"
        with self.lock:
            self.errors[name] += 1
            self.samples.setdefault(name, one_line(error))

    def check(self, key: str, data: bytes | None) -> None:
        if data is None:
            return
        try:
            verify(key, data)
        except Torn as error:
            with self.lock:
                self.torn[str(error)] += 1


def hammer(
    spec: dict[str, Any], process_id: str, threads: int, seconds: float, keys: int, result_file: str
) -> None:
    """`threads` threads doing a random mix of operations on `keys` shared keys for `seconds`."""
    store = open_store(spec)
    names = [f"h/{i % 4}/{i:03d}" for i in range(keys)]
    tally = Tally()
    deadline = time.monotonic() + seconds

    def one(op: str, rng: random.Random, thread: str, seq: int) -> None:
        key = rng.choice(names)
        if op == "put":
            store.put(key, encode(key, thread, seq, rng.randint(50, 4000)))
        elif op == "get":
            tally.check(key, store.get(key, raise_on_nonexist=False))
        elif op == "delete":
            store.delete(key)
        elif op == "put_many":
            chosen = rng.sample(names, rng.randint(2, 6))
            store.put_many({k: encode(k, thread, seq, rng.randint(50, 2000)) for k in chosen})
        elif op == "get_many":
            for name, data in store.get_many(rng.sample(names, rng.randint(2, 8))).items():
                tally.check(name, data)
        elif op == "iterate_keys":
            for listed in store.iterate_keys(prefix="h"):
                if listed not in names:
                    with tally.lock:
                        tally.torn[f"stray key in listing: {listed[:80]}"] += 1
        else:
            tally.check(key, store.pop(key, raise_on_nonexist=False))

    def run(index: int) -> None:
        thread = f"{process_id}.{index}"
        rng = random.Random(thread)
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            op = rng.choices(OPS, weights=WEIGHTS)[0]
            try:
                one(op, rng, thread, seq)
            except Exception as error:
                tally.error(op, error)
                continue
            with tally.lock:
                tally.ops[op] += 1

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(max(0.1, deadline + 30 - time.monotonic()))
    with open(result_file, "w") as handle:
        json.dump(
            {
                "ops": tally.ops,
                "errors": tally.errors,
                "samples": tally.samples,
                "torn": tally.torn,
                "hung": sum(t.is_alive() for t in workers),
            },
            handle,
        )
    os._exit(0)  # threads still stuck in a call must not keep the process alive


def main(argv: list[str]) -> None:
    command, spec = argv[0], json.loads(argv[1])
    if command == "writer":
        writer(spec, argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6]))
    elif command == "overwrite":
        overwrite(spec, argv[2], int(argv[3]), int(argv[4]))
    elif command == "hammer":
        hammer(spec, argv[2], int(argv[3]), float(argv[4]), int(argv[5]), argv[6])
    else:
        raise SystemExit(f"unknown worker command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
