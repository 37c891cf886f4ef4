"""The five fault runs of reliability.py, one function each, returning a row of figures.

Every run is bounded: worker processes are killed by PID at the end of their time, calls that may
hang run in daemon threads the caller waits for with a limit (a call still blocked is reported
as hung, never waited for). Figures are what was observed; nothing is retried to look better.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from anystore import copy, get_store
from anystore.exceptions import ConcurrentModification, DoesNotExist
from faults import leftovers
from faults.servers import MotoServer, reap, spawn
from faults.targets import Target, open_store
from faults.values import Torn, encode, kind, one_line, verify
from faults.worker import CHUNK

HERE = Path(__file__).resolve().parent.parent
WRITER_KEY = re.compile(r"w\d{3}/(s[0-7]|b[01])")


@dataclass
class Plan:
    """Sizes and durations of one script run (full or --quick)."""

    writers: int
    parallel: int
    small: int
    big: int
    big_every: int
    kill_after: tuple[float, float]
    read_seconds: float
    read_size: int
    outage: float
    stall_cap: float
    hammer_seconds: float
    operation_timeout: float = 3.0
    processes: int = 4
    threads: int = 8
    hammer_keys: int = 48


def spawn_worker(base: Path, log_name: str, *args: object) -> Any:
    """Start `python -m faults.worker ARGS`, its output kept in a log file under `base`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    with open(base / f"{log_name}.log", "ab") as log:
        return spawn([sys.executable, "-m", "faults.worker", *map(str, args)], log, env=env)


def last_line(path: Path) -> str:
    """The last non-empty line of a worker's log (its error, when it died by itself)."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def bounded(action: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
    """Run `action` in a daemon thread for at most `seconds`: (finished, result or exception)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive(), outcome[0] if outcome else None)


# -- (a) SIGKILLed writers ---------------------------------------------------------------------


def read_acks(path: Path) -> tuple[dict[str, int], tuple[str, int] | None, int]:
    """(latest acknowledged seq per key, the write in flight at the kill, count of acks)."""
    acked: dict[str, int] = {}
    begun: tuple[str, int] | None = None
    count = 0
    text = path.read_text() if path.exists() else ""
    # A line cut by the kill has no newline: it was not written whole, so it does not count.
    for line in text.split("\n")[:-1]:
        parts = line.split()
        if len(parts) != 3:
            continue
        key, seq = parts[1], int(parts[2])
        if parts[0] == "begin":
            begun = (key, seq)
        elif parts[0] == "ack":
            acked[key] = seq
            begun = None
            count += 1
    return acked, begun, count


def check_writer(
    store: Any, writer: str, ack_path: Path, figures: Counter[str], problems: list[str]
) -> None:
    """Check every key of a killed writer against what it acknowledged."""
    acked, in_flight, count = read_acks(ack_path)
    figures["acked writes"] += count
    if in_flight and "/b" in in_flight[0]:
        figures["killed mid-stream"] += 1
    for key in [f"{writer}/s{i}" for i in range(8)] + [f"{writer}/b{i}" for i in range(2)]:
        try:
            data = store.get(key, raise_on_nonexist=False)
        except Exception as error:
            figures[f"read error {kind(error)}"] += 1
            problems.append(f"get({key!r}) after the kill: {kind(error)}: {one_line(error)}")
            continue
        figures["keys checked"] += 1
        if data is None:
            if key in acked:
                figures["lost acked"] += 1
                problems.append(f"{key}: acknowledged seq {acked[key]}, now missing")
            continue
        try:
            version = verify(key, data)
        except Torn as error:
            figures["torn"] += 1
            problems.append(f"{key}: torn value: {error}")
            continue
        if version.writer != writer:
            figures["torn"] += 1
            problems.append(f"{key}: holds a value of writer {version.writer}")
        elif key in acked and version.seq < acked[key]:
            figures["lost acked"] += 1
            problems.append(f"{key}: acknowledged seq {acked[key]}, holds older {version.seq}")
        elif version.seq > acked.get(key, 0):
            if in_flight != (key, version.seq):
                figures["torn"] += 1
                problems.append(f"{key}: holds seq {version.seq}, never written")
            else:
                figures["unacked write visible"] += 1  # published, killed before the ack


def killed_writers(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """(a) N writers SIGKILLed at random moments; torn values and lost acknowledged writes."""
    spec = target.spec("writers")
    store = open_store(spec)
    figures: Counter[str] = Counter()
    problems: list[str] = []
    rng = random.Random(f"{target.name}-kills")
    for first in range(0, plan.writers, plan.parallel):
        batch = [f"w{i:03d}" for i in range(first, min(plan.writers, first + plan.parallel))]
        running = {}
        for writer in batch:
            ack = base / f"acks-{target.name}-{writer}"
            process = spawn_worker(
                base,
                f"writer-{target.name}-{writer}",
                "writer",
                json.dumps(spec),
                writer,
                ack,
                plan.small,
                plan.big,
                plan.big_every,
            )
            running[writer] = (process, ack)
        kill_at: dict[str, float] = {}
        give_up = time.monotonic() + 60
        while running:
            now = time.monotonic()
            for writer, (process, ack) in list(running.items()):
                if process.poll() is not None:
                    # It died by itself: a writer error (the backend raised), not a kill.
                    figures["writer errors"] += 1
                    log = base / f"writer-{target.name}-{writer}.log"
                    problems.append(f"writer {writer} exited by itself: {last_line(log)}")
                    del running[writer]
                elif writer not in kill_at and ack.exists() and ack.stat().st_size > 6:
                    kill_at[writer] = now + rng.uniform(*plan.kill_after)
                elif now >= kill_at.get(writer, give_up):
                    reap(process)
                    figures["writers killed"] += 1
                    del running[writer]
            time.sleep(0.02)
        for writer in batch:
            check_writer(store, writer, base / f"acks-{target.name}-{writer}", figures, problems)
    listed = list(store.iterate_keys())
    figures["stray keys listed"] = sum(1 for key in listed if not WRITER_KEY.fullmatch(key))
    figures_left = {"before": leftovers.count(target, "writers", store)}
    try:
        cleaned: Any = store.cleanup(older_than=0)
        after = sorted(store.iterate_keys())
        if after != sorted(k for k in listed if WRITER_KEY.fullmatch(k)):
            problems.append(f"cleanup changed the listing: {len(listed)} keys before, {len(after)}")
    except Exception as error:
        cleaned = kind(error)
    figures_left["after"] = leftovers.count(target, "writers", store)
    store.close()
    return {"figures": figures, "cleaned": cleaned, "left": figures_left, "problems": problems}


# -- (a') streamed reads while writers overwrite -------------------------------------------------


def read_whole(store: Any, key: str, pause: float = 0.0) -> bytes:
    """Read `key` through open(key, "rb") in 1 MiB chunks."""
    parts = []
    with store.open(key, "rb") as handle:
        while chunk := handle.read(CHUNK):
            parts.append(chunk)
            if pause:
                time.sleep(pause)
    return b"".join(parts)


def mid_read(store: Any, size: int, change: str) -> str:
    """Open a value, read 1 MiB, overwrite or delete it, read the rest: what the reader got."""
    key = f"det/{change}"
    store.put(key, encode(key, "old", 1, size))
    try:
        with store.open(key, "rb") as handle:
            first = handle.read(CHUNK)
            if change == "overwrite":
                store.put(key, encode(key, "new", 2, size))
            else:
                store.delete(key)
            data = first + handle.read()
    except ConcurrentModification:
        return "ConcurrentModification"
    except Exception as error:
        return kind(error)
    try:
        return f"whole {verify(key, data).writer} value"
    except Torn as error:
        return f"TORN: {error}"


def streamed_reads(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """(a') chunked reads of large values while two processes overwrite and delete them."""
    spec = target.spec("reads")
    store = open_store(spec)
    figures: Counter[str] = Counter()
    problems: list[str] = []
    size = plan.read_size
    deterministic = {c: mid_read(store, size, c) for c in ("overwrite", "delete")}
    for i in range(3):
        store.put(f"r/{i}", encode(f"r/{i}", "seed", 0, size))
    writers = [
        spawn_worker(
            base, f"overwrite-{target.name}-{i}", "overwrite", json.dumps(spec), f"o{i}", 3, size
        )
        for i in range(2)
    ]
    rng = random.Random(target.name)

    def reads() -> None:
        deadline = time.monotonic() + plan.read_seconds
        while time.monotonic() < deadline:
            key = f"r/{rng.randrange(3)}"
            try:
                data = read_whole(store, key, pause=0.005)
            except ConcurrentModification:
                figures["ConcurrentModification"] += 1
                continue
            except DoesNotExist:
                figures["missing at open"] += 1
                continue
            except Exception as error:
                figures[f"error {kind(error)}"] += 1
                if len(problems) < 5:
                    problems.append(f"read {key}: {kind(error)}: {one_line(error)}")
                continue
            try:
                verify(key, data)
                figures["clean"] += 1
            except Torn as error:
                figures["torn"] += 1
                if len(problems) < 5:
                    problems.append(f"read {key}: torn: {error}")

    copied = base / f"copies-{target.name}"

    def copies() -> None:
        # anystore.copy() from the keys being overwritten into a local folder: every value it
        # publishes there must be one whole version.
        destination = get_store(str(copied), serialization_mode="raw")
        deadline = time.monotonic() + max(1.0, plan.read_seconds / 2)
        while time.monotonic() < deadline:
            try:
                report = copy(store, destination, prefix="r", overwrite=True)
            except Exception as error:
                figures[f"copy error {kind(error)}"] += 1
                continue
            figures["copy runs"] += 1
            figures["values copied"] += len(getattr(report, "copied", []) or [])
            for key in destination.iterate_keys():
                data = destination.get(key, raise_on_nonexist=False)
                if data is None:
                    continue
                try:
                    verify(key, data)
                except Torn as error:
                    figures["copy torn"] += 1
                    if len(problems) < 8:
                        problems.append(f"copy() published a torn {key}: {error}")

    try:
        finished, _ = bounded(reads, plan.read_seconds + 60)
        if finished:
            finished, _ = bounded(copies, plan.read_seconds + 60)
        if not finished:
            problems.append("a read or copy hung for 60 s past the run's end")
            figures["hung"] += 1
    finally:
        for i, process in enumerate(writers):
            if process.poll() is not None:
                log = base / f"overwrite-{target.name}-{i}.log"
                problems.append(f"overwriting writer {i} died: {last_line(log)}")
                figures["writer errors"] += 1
            reap(process)
    store.close()
    return {"figures": figures, "deterministic": deterministic, "problems": problems}


# -- (b) server killed and restarted -------------------------------------------------------------


class Client:
    """A loop of put/get on one store, in a daemon thread, logging each call by phase.

    Each put writes a new key, so every acknowledged write can be checked at the end; a get reads
    a key acknowledged in the current phase (keys from before a kill may be gone by design).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.phase = "before"
        self.errors: dict[str, Counter[str]] = {}
        self.samples: dict[str, str] = {}
        self.ok: Counter[str] = Counter()
        self.slowest: dict[str, float] = {}
        self.acked: dict[str, tuple[int, str]] = {}
        self.recent: dict[str, list[str]] = {}
        self.first_ok_at: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rng = random.Random(1)
        seq = 0
        while not self.stop.is_set():
            seq += 1
            phase = self.phase
            recent = self.recent.setdefault(phase, [])
            started = time.monotonic()
            try:
                if seq % 2 or not recent:
                    key = f"c/{seq:06d}"
                    self.store.put(key, encode(key, "client", seq, 300))
                    self.acked[key] = (seq, phase)
                    recent.append(key)
                else:
                    key = rng.choice(recent)
                    verify(key, self.store.get(key))
            except Exception as error:
                name = kind(error)
                self.errors.setdefault(phase, Counter())[name] += 1
                self.samples.setdefault(f"{phase}:{name}", one_line(error))
                time.sleep(0.02)  # a refused connection fails at once: do not spin
            else:
                self.ok[phase] += 1
                if phase == "after" and self.first_ok_at is None:
                    self.first_ok_at = time.monotonic()
            # By the phase the call started in: a call that hangs over the kill shows as slow.
            elapsed = time.monotonic() - started
            self.slowest[phase] = max(self.slowest.get(phase, 0.0), elapsed)


def lost_writes(store: Any, acked: dict[str, tuple[int, str]]) -> Counter[str]:
    """Acknowledged writes that are missing or not whole now, by the phase they were made in."""
    lost: Counter[str] = Counter()
    keys = sorted(acked)
    for first in range(0, len(keys), 200):
        batch = keys[first : first + 200]
        finished, found = bounded(partial(store.get_many, batch), 60)
        if not finished or isinstance(found, BaseException):
            for key in batch:
                lost[f"{acked[key][1]} (unreadable)"] += 1
            continue
        for key in batch:
            phase = acked[key][1]
            if key not in found:
                lost[phase] += 1
                continue
            try:
                verify(key, found[key])
            except Torn:
                lost[f"{phase} (torn)"] += 1
    return lost


def restarted_server(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """(b) SIGKILL the server mid-run, restart it on the same port and data folder."""
    server = target.server
    assert server is not None
    store = open_store(target.spec("restart", timeouts=True))
    client = Client(store)
    client.thread.start()
    time.sleep(1.0)
    server.kill()
    client.phase = "outage"
    time.sleep(plan.outage)
    if isinstance(server, MotoServer):
        # moto keeps everything in memory: the restarted server has no bucket until an operator
        # creates it again. Measure what the store does meanwhile.
        server.create_bucket = False
        server.start()
        client.phase = "no bucket"
        time.sleep(1.0)
        server.make_bucket()
        server.create_bucket = True
    else:
        client.phase = "restarting"
        server.start()
    restarted = time.monotonic()
    client.phase = "after"
    while client.first_ok_at is None and time.monotonic() - restarted < 30:
        time.sleep(0.05)
    time.sleep(1.0)
    client.stop.set()
    client.thread.join(plan.stall_cap + 10)
    recovery = None if client.first_ok_at is None else client.first_ok_at - restarted
    lost = lost_writes(store, client.acked)
    store.close()
    return {
        "errors": client.errors,
        "samples": client.samples,
        "ok": client.ok,
        "slowest": client.slowest,
        "recovery": recovery,
        "hung": client.thread.is_alive(),
        "lost": lost,
        "acked": Counter(phase for _, phase in client.acked.values()),
    }


# -- (c) stalled server ---------------------------------------------------------------------------


def race_calls(calls: dict[str, Callable[[], Any]], cap: float) -> dict[str, Any]:
    """Start every call at once; (seconds, outcome) of each, or no answer within `cap`."""
    started = time.monotonic()
    threads = {}
    for name, call in calls.items():
        record: list[Any] = []

        def run(call: Callable[[], Any] = call, record: list[Any] = record) -> None:
            try:
                call()
                record.append(("returned", time.monotonic()))
            except BaseException as error:
                record.append((kind(error), time.monotonic()))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads[name] = (thread, record)
    outcomes: dict[str, Any] = {}
    for name, (thread, record) in threads.items():
        thread.join(max(0.0, started + cap - time.monotonic()))
        if record:
            outcomes[name] = (record[0][1] - started, record[0][0])
        else:
            outcomes[name] = (None, f"no answer after {cap:.0f} s")
    outcomes["_threads"] = threads
    return outcomes


def settle(outcomes: dict[str, Any], store: Any, probe: Callable[[], Any]) -> float | None:
    """After the stall ends: seconds until `probe` works again; let blocked calls finish."""
    resumed = time.monotonic()
    recovered: float | None = None
    while time.monotonic() - resumed < 30:
        finished, result = bounded(probe, 10)
        if finished and not isinstance(result, BaseException):
            recovered = time.monotonic() - resumed
            break
        time.sleep(0.1)
    for name, (thread, record) in outcomes.pop("_threads").items():
        thread.join(5)
        if outcomes[name][0] is None:
            late = f"{record[0][0]} after SIGCONT" if record else "still blocked 5 s after"
            outcomes[name] = (None, f"{outcomes[name][1]} ({late})")
    return recovered


def stalled_server(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """(c) SIGSTOP the server: seconds until get and put fail, and with which error."""
    if target.name == "sqlite":
        return locked_sqlite(target, plan, base)
    server = target.server
    assert server is not None
    store = open_store(target.spec("stall", timeouts=True))
    store.put("s/warm", b"x" * 100)
    store.get("s/warm")
    calls = {"get": lambda: store.get("s/warm"), "put": lambda: store.put("s/new", b"y" * 100)}
    server.pause()
    try:
        outcomes = race_calls(calls, plan.stall_cap)
    finally:
        server.resume()
    recovered = settle(outcomes, store, lambda: store.get("s/warm"))
    store.close()
    return {"outcomes": outcomes, "recovered": recovered, "options": target.timeouts}


def locked_sqlite(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """SQLite's stall: another connection holds the write lock (BEGIN EXCLUSIVE) meanwhile."""
    import sqlite3

    spec = target.spec("stall", timeouts=True)
    busy = {"busy_timeout": int(plan.operation_timeout * 1000)}
    spec["options"].update(busy)
    store = open_store(spec)
    store.put("s/warm", b"x" * 100)
    holder = sqlite3.connect(spec["uri"].removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        calls = {"get": lambda: store.get("s/warm"), "put": lambda: store.put("s/new", b"y")}
        outcomes = race_calls(calls, plan.stall_cap)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    recovered = settle(outcomes, store, lambda: store.put("s/new", b"z"))
    store.close()
    options = {**target.timeouts, **busy, "(lock held by)": "BEGIN EXCLUSIVE"}
    return {"outcomes": outcomes, "recovered": recovered, "options": options}


# -- (d) hammer --------------------------------------------------------------------------------


def hammer(target: Target, plan: Plan, base: Path) -> dict[str, Any]:
    """(d) processes x threads of mixed operations on shared keys; then a consistency check."""
    spec = target.spec("hammer")
    results = [base / f"hammer-{target.name}-{i}.json" for i in range(plan.processes)]
    processes = [
        spawn_worker(
            base,
            f"hammer-{target.name}-{i}",
            "hammer",
            json.dumps(spec),
            f"p{i}",
            plan.threads,
            plan.hammer_seconds,
            plan.hammer_keys,
            results[i],
        )
        for i in range(plan.processes)
    ]
    started = time.monotonic()
    ops: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    torn: Counter[str] = Counter()
    samples: dict[str, str] = {}
    problems: list[str] = []
    hung = ran = 0
    for i, process in enumerate(processes):
        try:
            process.wait(max(1.0, started + plan.hammer_seconds + 60 - time.monotonic()))
        except Exception:
            problems.append(f"hammer process {i} did not finish; killed")
        reap(process)
        if not results[i].exists():
            log = base / f"hammer-{target.name}-{i}.log"
            problems.append(f"hammer process {i} wrote no result: {last_line(log)}")
            continue
        result = json.loads(results[i].read_text())
        ran += 1
        ops.update(result["ops"])
        errors.update(result["errors"])
        torn.update(result["torn"])
        hung += result["hung"]
        for name, text in result["samples"].items():
            samples.setdefault(name, text)
    elapsed = time.monotonic() - started
    store = open_store(spec)
    names = [f"h/{i % 4}/{i:03d}" for i in range(plan.hammer_keys)]
    final: Counter[str] = Counter()
    try:
        listed = set(store.iterate_keys(prefix="h"))
        present = {}
        for name in names:
            data = store.get(name, raise_on_nonexist=False)
            if data is not None:
                present[name] = data
                try:
                    verify(name, data)
                except Torn:
                    final["torn"] += 1
        final["listed but missing"] = len(listed & set(names) - set(present))
        final["present but not listed"] = len(set(present) - listed)
        final["stray keys listed"] = len(listed - set(names))
        many = store.get_many(names)
        final["get_many differs from get"] = sum(1 for n in names if many.get(n) != present.get(n))
    except Exception as error:
        final[f"check failed: {kind(error)}"] += 1
        problems.append(f"final check: {kind(error)}: {one_line(error)}")
    store.close()
    return {
        "ops": ops,
        "errors": errors,
        "samples": samples,
        "torn": torn,
        "hung": hung,
        "ran": ran,
        "seconds": elapsed,
        "final": final,
        "problems": problems,
    }


RUNS: dict[str, Callable[[Target, Plan, Path], dict[str, Any]]] = {
    "writers": killed_writers,
    "reads": streamed_reads,
    "restart": restarted_server,
    "stall": stalled_server,
    "hammer": hammer,
}
# Backends a run does not apply to: nothing to kill; SQLite's stall is a held lock instead.
SKIP = {"restart": {"local", "sqlite"}, "stall": {"local"}}
