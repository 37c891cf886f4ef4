"""anystore next to each backend's raw client (and anystore 1.5.5), in one run, as ratios.

    uv run python benchmarks/compare.py [--quick] [--backends memory,redis] [--baseline-python P]

Per backend (memory, local, sqlite, postgresql, mariadb, redis, s3 on a moto server this script
starts on 127.0.0.1), each repetition puts, gets, tests, lists, stats and deletes the same keys of
100 bytes on every side; each op runs on every side in turn (A B C, then B C A, ...) before the
next op, so the times of one ratio are taken seconds apart on a machine whose load changes. The
table shows ours / raw time per call (lower is better): the median over the repetitions of the
ratio within each repetition, with its min and max. Then 200 MB through `open()` in 1 MiB chunks
(each side in a process of its own: MB/s and peak RSS), and the start-up time.

`--baseline-python` names the interpreter of a separate virtualenv holding anystore==1.5.5
(`python -m venv /tmp/v && /tmp/v/bin/pip install anystore==1.5.5 redis s3fs psycopg[binary]
pymysql`); never install it into this project's environment. Without it the 1.5.5 columns are
left out. Services: PostgreSQL 127.0.0.1:5432 (db test), MariaDB 127.0.0.1:3306 (db test), Redis
127.0.0.1:6379; a backend whose server does not answer is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import raw_clients
from common import REP_OPS, free_port, run_json, start_moto, time_op
from store_ops import MARK, rep_keys, store_ops

from anystore import get_store

DIRECTIONS = ("write", "read")
OPS = ["put", "get", "exists", "info", "delete", "iterate"]
BACKENDS = ["memory", "local", "sqlite", "postgresql", "mariadb", "redis", "s3"]
RAW_NAMES = {
    "memory": "dict",
    "local": "open/os.replace/scandir",
    "sqlite": "sqlite3",
    "postgresql": "psycopg 3",
    "mariadb": "PyMySQL",
    "redis": "redis-py",
    "s3": "boto3",
}
# Keys per repetition (full run); --quick divides by 5. The network servers are slower per call.
COUNTS = {"postgresql": 2000, "mariadb": 2000, "s3": 300}
PG = "postgresql://postgres@127.0.0.1:5432/test"
Figures = dict[str, float]


class Setup:
    """One backend's sides: `ours` (a Store URI), `raw` (a factory), `old` (a 1.5.5 URI)."""

    def __init__(self, ours: str, raw: Callable[[], raw_clients.Raw], old: str | None) -> None:
        self.ours, self.raw, self.old = ours, raw, old
        self.big_ours, self.big_raw = ours, ""
        self.big_old = old


def setups(name: str, tmp: str, tag: str, endpoint: str) -> Setup:
    """The URIs and raw client of backend `name`, in `tmp`, with names marked by `tag`."""
    table, raw_table = f"bench_{tag}", f"raw_{tag}"
    os.makedirs(tmp, exist_ok=True)
    if name == "memory":
        setup = Setup(f"memory://ours-{tag}", raw_clients.RawMemory, f"memory://old-{tag}")
    elif name == "local":
        setup = Setup(f"{tmp}/ours", lambda: raw_clients.RawFiles(f"{tmp}/raw"), f"{tmp}/old")
        os.makedirs(f"{tmp}/bigraw", exist_ok=True)
        setup.big_raw = f"{tmp}/bigraw"
    elif name == "sqlite":
        setup = Setup(
            f"sqlite:///{tmp}/ours.db?table={table}",
            lambda: raw_clients.RawSQLite(f"{tmp}/raw.db", raw_table),
            f"sqlite:///{tmp}/old.db",
        )
        setup.big_raw = f"{tmp}/bigraw.db"
    elif name == "postgresql":
        # 1.5.5's put fails on PostgreSQL (its insert-then-update runs in an aborted
        # transaction), even on a new key: left out.
        setup = Setup(f"{PG}?table={table}", lambda: raw_clients.RawPostgres(PG, raw_table), None)
        setup.big_raw = PG
    elif name == "mariadb":
        maria = "mysql://root@127.0.0.1:3306/test"
        # 1.5.5 reaches MySQL only through mysqlclient, which needs a C build: left out.
        setup = Setup(f"{maria}?table={table}", lambda: raw_clients.RawMariaDB(raw_table), None)
    elif name == "redis":
        url = "redis://127.0.0.1:6379/0"
        setup = Setup(
            f"{url}/bench-{tag}/ours",
            lambda: raw_clients.RawRedis(url, f"bench-{tag}/raw/"),
            f"{url}/bench-{tag}/old",
        )
        setup.big_raw = url
    else:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint)
        for side in ("ours", "raw", "old"):
            client.create_bucket(Bucket=f"bench-{tag}-{side}")
        setup = Setup(
            f"s3://bench-{tag}-ours",
            lambda: raw_clients.RawS3(endpoint, f"bench-{tag}-raw"),
            f"s3://bench-{tag}-old",
        )
        setup.big_raw = f"{endpoint}/bench-{tag}-raw"
    if name in ("sqlite", "postgresql", "mariadb"):
        setup.big_ours = setup.ours.replace(table, f"big_{tag}")
    return setup


def reachable(name: str) -> str | None:
    """None if backend `name`'s server answers, else why not."""
    import socket

    port = {"postgresql": 5432, "mariadb": 3306, "redis": 6379}.get(name)
    if port is None:
        return None
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return None
    except OSError as error:
        return f"127.0.0.1:{port} does not answer ({error})"


class InProcess:
    """A side run in this process: its ops by name and its listing."""

    def __init__(
        self, ops: dict[str, Callable[[str], object]], iterate: Callable[[], int], keys: list[str]
    ) -> None:
        self.ops, self.iterate, self.keys = ops, iterate, keys
        self.names = [*ops, "iterate"]

    def run(self, op: str) -> float:
        return time_op(op, self.keys, self.ops, self.iterate)

    def close(self) -> None:
        pass


class Worker:
    """A side in another interpreter (store_ops.py serve), driven one op at a time."""

    def __init__(self, python: str, uri: str, count: int) -> None:
        script = str(Path(__file__).with_name("store_ops.py"))
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [python, script, "serve", uri, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            cwd=tempfile.gettempdir(),
            env={k: v for k, v in os.environ.items() if not k.startswith("ANYSTORE_")},
        )
        self.names = self._answer()

    def _answer(self) -> Any:
        assert self.process.stdout is not None
        while line := self.process.stdout.readline():
            if line.startswith(MARK):  # anything else is the baseline's own output (logs)
                return json.loads(line[len(MARK) :])
        self.errors.seek(0)
        tail = self.errors.read().decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"the worker exited ({self.process.wait()}): {tail[0]}")

    def run(self, op: str) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(op + "\n")
        self.process.stdin.flush()
        answer = self._answer()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return float(answer["seconds"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.errors.close()


def run_backend(name: str, setup: Setup, args: argparse.Namespace) -> dict[str, list[Figures]]:
    """Every repetition of one backend: per op, each side in turn (who goes first rotates), so
    that the two times of a ratio are taken seconds apart. {side: [figures per repetition]}."""
    count = COUNTS.get(name, 10_000) // (5 if args.quick else 1)
    store = get_store(setup.ours)
    raw = setup.raw()
    keys = rep_keys(count)
    sides: dict[str, InProcess | Worker] = {
        "ours": InProcess(*store_ops(store), keys),
        "raw": InProcess(raw.ops, raw.iterate, keys),
    }
    if args.baseline_python and setup.old:
        try:
            sides["1.5.5"] = Worker(args.baseline_python, setup.old, count)
        except Exception as error:  # reported; the run goes on without it
            print(f"  {name} 1.5.5: {error}", file=sys.stderr)
    results: dict[str, list[Figures]] = {side: [] for side in sides}
    try:
        for rep in range(args.reps):
            figures: dict[str, Figures] = {side: {} for side in sides}
            for step, op in enumerate(REP_OPS):
                order = list(sides)
                turn = (rep + step) % len(order)
                for side in order[turn:] + order[:turn]:
                    if op not in sides[side].names:
                        continue
                    try:
                        figures[side][op] = sides[side].run(op)
                    except Exception as error:  # a baseline that cannot: left out from here on
                        if side == "ours":
                            raise
                        print(f"  {name} {side} {op}: {error}", file=sys.stderr)
                        sides.pop(side).close()
            for side, values in figures.items():
                if side in sides:
                    results[side].append(values)
    finally:
        for side in sides.values():
            side.close()
        raw.close()
        store.close()
    print(f"  {name}: {count} keys x {args.reps} repetitions done", file=sys.stderr)
    return results


def ratios(ours: list[Figures], other: list[Figures], op: str) -> list[float]:
    """ours / other time of `op` within each repetition both sides ran."""
    return [a[op] / b[op] for a, b in zip(ours, other, strict=False) if op in a and op in b]


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.3g}x"
    return f"{median:.3g}x ({min(values):.3g}-{max(values):.3g})"


def big_values(name: str, setup: Setup, args: argparse.Namespace) -> dict[str, Figures]:
    """200 MB (--quick: 50) through open(): each side in its own process, once each."""
    mb = 50 if args.quick else 200
    runs: dict[str, list[str]] = {
        "ours": [sys.executable, "ours", setup.big_ours, str(mb)],
        "raw": [sys.executable, "raw", name, setup.big_raw or setup.big_ours, str(mb)],
    }
    if args.baseline_python and setup.big_old:
        runs["1.5.5"] = [args.baseline_python, "ours", setup.big_old, str(mb)]
    figures: dict[str, Figures] = {}
    for side, (python, *rest) in runs.items():
        try:
            figures[side] = run_json(python, "bigvalue.py", *rest)
        except Exception as error:  # reported, the run goes on
            print(f"  {name} {side} 200 MB: {error}", file=sys.stderr)
    return figures


def startup(python: str, code: str, runs: int) -> float:
    """Median wall time of `python -c code` in a new process, in ms."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


@contextmanager
def services(names: list[str]) -> Iterator[str]:
    """moto's S3 server (if s3 is asked for), with credentials in the environment."""
    if "s3" not in names:
        yield ""
        return
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = start_moto(port, environment=True)
    try:
        yield endpoint
    finally:
        moto.kill()
        moto.wait()


def drop_tables(tag: str, names: list[str]) -> None:
    """The tables anystore made for the run (its small-op and 200 MB stores, and their chunks)."""
    tables = [f"{base}_{tag}{end}" for base in ("bench", "big") for end in ("_chunks", "")]
    if "postgresql" in names and not reachable("postgresql"):
        import psycopg

        with psycopg.connect(PG, autocommit=True) as connection:
            for table in tables:
                connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    if "mariadb" in names and not reachable("mariadb"):
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", user="root", database="test")
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        connection.close()


def print_tables(results: dict[str, dict[str, list[Figures]]], big: dict[str, Any]) -> None:
    """The markdown tables: ours / raw, ours / 1.5.5, ours in µs, the 200 MB runs."""
    header = "| backend (raw client) | " + " | ".join(OPS[:-1]) + " | iterate all |"
    rule = "|---" * (len(OPS) + 1) + "|"
    print("\nours / raw client, time per call (median of repetitions, min-max):\n")
    print(header + "\n" + rule)
    for name, sides in results.items():
        cells = [cell(ratios(sides["ours"], sides["raw"], op)) for op in OPS]
        print(f"| {name} ({RAW_NAMES[name]}) | " + " | ".join(cells) + " |")
    if any("1.5.5" in sides for sides in results.values()):
        print("\nours / anystore 1.5.5 (below 1: ours is faster):\n")
        print(header.replace("(raw client)", "") + "\n" + rule)
        for name, sides in results.items():
            old = sides.get("1.5.5", [])
            print(
                f"| {name} | "
                + " | ".join(cell(ratios(sides["ours"], old, op)) for op in OPS)
                + " |"
            )
    print("\nours, µs per call (median; iterate all: ms for every key):\n")
    print(header.replace(" (raw client)", "") + "\n" + rule)
    for name, sides in results.items():
        values = []
        for op in OPS:
            median = statistics.median(rep[op] for rep in sides["ours"])
            values.append(f"{median * 1000:.1f}" if op == "iterate" else f"{median * 1e6:.1f}")
        print(f"| {name} | " + " | ".join(values) + " |")
    if big:
        print("\nthrough open() in 1 MiB chunks: MB/s ours / raw (ratio raw/ours), peak RSS MiB:\n")
        print("| backend | write | read | peak RSS ours / raw | 1.5.5 write / read (RSS) |")
        print("|---|---|---|---|---|")
        for name, sides in big.items():
            ours, raw, old = sides.get("ours"), sides.get("raw"), sides.get("1.5.5")
            if not ours or not raw:
                print(f"| {name} | failed: see stderr | | | |")
                continue
            cols = [
                f"{ours[d]:,.0f} / {raw[d]:,.0f} ({raw[d] / ours[d]:.2f}x)"
                for d in ("write", "read")
            ]
            cols.append(f"{ours['rss']:,.0f} / {raw['rss']:,.0f}")
            cols.append(
                f"{old['write']:,.0f} / {old['read']:,.0f} ({old['rss']:,.0f} MiB)" if old else "-"
            )
            print(f"| {name} | " + " | ".join(cols) + " |")


# The targets (#13), ours / raw: single ops on these backends, memory's, every listing.
SINGLE_OPS = ("put", "get", "exists", "info", "delete")
TARGETS = {
    **{
        (name, op): 1.5
        for name in ("sqlite", "postgresql", "mariadb", "redis", "local")
        for op in SINGLE_OPS
    },
    ("memory", "put"): 5.0,
    ("memory", "get"): 5.0,
    ("memory", "exists"): 5.0,
    ("memory", "info"): 20.0,
    **{(name, "iterate"): 2.0 for name in BACKENDS},
}


def print_misses(results: dict[str, dict[str, list[Figures]]], big: dict[str, Any]) -> None:
    """Every target of the issue that this run's medians miss."""
    misses = []
    for name, sides in results.items():
        for op in OPS:
            median = statistics.median(ratios(sides["ours"], sides["raw"], op) or [0.0])
            limit = TARGETS.get((name, op))
            if limit is not None and median > limit:
                misses.append(f"{name} {op}: {median:.3g}x of {RAW_NAMES[name]} (target {limit}x)")
            old = ratios(sides["ours"], sides.get("1.5.5", []), op)
            if old and statistics.median(old) > 1:
                misses.append(f"{name} {op}: {statistics.median(old):.3g}x of 1.5.5 (target 1x)")
    for name, sides in big.items():
        if "ours" in sides and "raw" in sides:
            for way in DIRECTIONS:
                slower = sides["raw"][way] / sides["ours"][way]
                if slower > 1.5:
                    misses.append(f"{name} open() {way}: raw is {slower:.3g}x faster (target 1.5x)")
                if "1.5.5" in sides and sides["1.5.5"][way] > sides["ours"][way]:
                    slower = sides["1.5.5"][way] / sides["ours"][way]
                    misses.append(f"{name} open() {way}: 1.5.5 is {slower:.3g}x faster (target 1x)")
    print("\ntargets missed in this run:" if misses else "\nevery target held in this run")
    for miss in misses:
        print(f"- {miss}")


def profile(spec: str, tmp: str, tag: str, endpoint: str, quick: bool) -> None:
    """cProfile of ours for `backend.op` (op: one of OPS, or "open" for the large value written
    and read through open()); prints the top frames by own time."""
    import cProfile
    import pstats

    import bigvalue

    name, op = spec.split(".")
    setup = setups(name, f"{tmp}/profile-{name}", tag, endpoint)
    profiler = cProfile.Profile()
    if op == "open":
        profiler.runcall(bigvalue.ours, setup.big_ours, 50 if quick else 200)
    else:
        count = COUNTS.get(name, 10_000) // (5 if quick else 1)
        store = get_store(setup.ours)
        ops, iterate = store_ops(store)
        keys = rep_keys(count)
        for before in REP_OPS[: REP_OPS.index(op)]:
            if before != "iterate":
                time_op(before, keys, ops, iterate)
        profiler.runcall(time_op, op, keys, ops, iterate)
        if op != "delete":
            time_op("delete", keys, ops, iterate)
        store.close()
    print(f"\nprofile of ours, {spec}:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def main() -> None:
    """Parse the options, run every backend asked for, print the tables and the missed targets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/5 of the keys, 3 reps, 50 MB")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--reps", type=int, default=None, help="repetitions (5; --quick 3)")
    parser.add_argument("--baseline-python", default=None, help="a python with anystore 1.5.5")
    parser.add_argument("--no-big", action="store_true", help="leave out the 200 MB runs")
    parser.add_argument(
        "--profile", default="", help="only profile ours: backend.op[,...], op put..iterate|open"
    )
    args = parser.parse_args()
    args.reps = args.reps or (3 if args.quick else 5)
    names = [n for n in args.backends.split(",") if n]
    tag = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    results: dict[str, dict[str, list[Figures]]] = {}
    big: dict[str, dict[str, Figures]] = {}
    if args.profile:
        specs = args.profile.split(",")
        names = sorted({spec.split(".")[0] for spec in specs})
        with tempfile.TemporaryDirectory() as tmp, services(names) as endpoint:
            try:
                for spec in specs:
                    profile(spec, tmp, tag, endpoint, args.quick)
            finally:
                drop_tables(tag, names)
        return
    with tempfile.TemporaryDirectory() as tmp, services(names) as endpoint:
        try:
            for name in names:
                why = reachable(name)
                if why:
                    print(f"  {name}: skipped, {why}", file=sys.stderr)
                    continue
                setup = setups(name, f"{tmp}/{name}", tag, endpoint)
                results[name] = run_backend(name, setup, args)
                if not args.no_big:
                    big[name] = big_values(name, setup, args)
        finally:
            drop_tables(tag, names)
    runs = 5 if args.quick else 15
    code = "import anystore; anystore.get_store('memory://')"
    times = {"ours": [], "bare": [], "1.5.5": []}  # type: dict[str, list[float]]
    for _ in range(3):  # interleaved, three rounds of `runs` processes each
        times["ours"].append(startup(sys.executable, code, runs))
        times["bare"].append(startup(sys.executable, "pass", runs))
        if args.baseline_python:
            times["1.5.5"].append(startup(args.baseline_python, code, runs))
    print_tables(results, big)
    print_misses(results, big)
    line = "\nstart-up (import anystore + get_store('memory://'), median ms): "
    line += f"ours {statistics.median(times['ours']):.0f}"
    line += f", bare interpreter {statistics.median(times['bare']):.0f}"
    if times["1.5.5"]:
        line += f", 1.5.5 {statistics.median(times['1.5.5']):.0f}"
    print(line)
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
