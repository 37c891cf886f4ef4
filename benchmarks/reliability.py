"""Fault runs against every backend: what survives killed writers, killed and stalled servers,
and a hammer of concurrent processes and threads.

    uv run python benchmarks/reliability.py [--backends local,sqlite,postgresql,mariadb,redis,s3]
        [--writers N] [--seconds T] [--quick]

Run kinds, one table each:
  writers  N writer processes per backend, SIGKILLed at random moments, writing self-verifying
           values (put of small ones, open(key, "wb") of multi-MiB ones); after each kill every
           key the writer acknowledged must hold that value or a later one of the same writer,
           whole. Counts torn values, lost acknowledged writes, and what a crash left behind.
  reads    open(key, "rb") read in 1 MiB chunks while two processes overwrite and delete the
           values: clean reads, ConcurrentModification, torn reads (mixed versions, short).
  restart  the private server SIGKILLed mid-run and restarted on the same port and data:
           errors by type during the outage, seconds until operations succeed again on the same
           store object, acknowledged writes lost.
  stall    the private server SIGSTOPped: seconds until get and put give up, and with what, with
           the backend's timeout options set to known values (the table says which).
  hammer   4 processes x 8 threads of put/get/delete/put_many/get_many/iterate_keys/pop on
           shared keys for T seconds: ops/s, errors by type, then a consistency check.

PostgreSQL, MariaDB, Redis and S3 (moto) run as private instances on free ports of 127.0.0.1 in a
temporary folder, killed by PID at the end whatever happens; the shared services are never used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faults.runs import RUNS, SKIP, Plan
from faults.servers import install_cleanup, kill_all
from faults.targets import ALL, Target, make_target, other_settings

CONNECT_TIMEOUT = 2.0
OPERATION_TIMEOUT = 3.0
MIB = 1 << 20


def make_plan(args: argparse.Namespace) -> Plan:
    """Sizes and durations: small in --quick mode (under 3 minutes), larger otherwise."""
    if args.quick:
        return Plan(
            writers=args.writers or 4,
            parallel=4,
            small=2000,
            big=2 * MIB,
            big_every=4,
            kill_after=(0.2, 0.8),
            read_seconds=2.0,
            read_size=3 * MIB,
            outage=1.0,
            stall_cap=8.0,
            hammer_seconds=args.seconds or 3.0,
        )
    return Plan(
        writers=args.writers or 30,
        parallel=4,
        small=4000,
        big=6 * MIB,
        big_every=4,
        kill_after=(0.2, 1.5),
        read_seconds=max(2.0, (args.seconds or 20.0) / 2),
        read_size=6 * MIB,
        outage=2.0,
        stall_cap=30.0,
        hammer_seconds=args.seconds or 20.0,
    )


def start_targets(names: list[str], base: Path) -> tuple[dict[str, Target], dict[str, str]]:
    """Prepare and start the private servers in parallel; (ready targets, failures by name)."""
    targets: dict[str, Target] = {}
    failed: dict[str, str] = {}

    def prepare(name: str) -> None:
        try:
            target = make_target(name, base, CONNECT_TIMEOUT, OPERATION_TIMEOUT)
            if target.server is not None:
                target.server.start()
            targets[name] = target
        except Exception as error:
            failed[name] = f"{type(error).__name__}: {error}"

    threads = [threading.Thread(target=prepare, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {n: targets[n] for n in names if n in targets}, failed


def counts(counter: Counter[str] | dict[str, int], limit: int = 6) -> str:
    """`name n, name n, ...` for the largest entries, or '-'."""
    items = sorted(counter.items(), key=lambda item: -item[1])
    text = ", ".join(f"{name} {count}" for name, count in items[:limit] if count)
    if len(items) > limit:
        text += f", ... ({len(items) - limit} more)"
    return text or "-"


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """A plain-text table; columns as wide as their widest cell."""
    print(f"\n{title}")
    # A short row (a failed run) is padded with empty cells.
    cells = [header] + [
        [str(cell) for cell in row] + [""] * (len(header) - len(row)) for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for index, row in enumerate(cells):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("  " + "  ".join("-" * width for width in widths))


def left(found: tuple[int, int] | None) -> str:
    """`n (size)` of temp entries found on the medium, or n/a."""
    if found is None:
        return "n/a"
    return f"{found[0]} ({found[1] / MIB:.1f} MiB)" if found[0] else "0"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def result_rows(
    results: dict[str, Any], row: Callable[[str, dict[str, Any]], list[Any]]
) -> list[list[Any]]:
    """One table row per backend: `row(name, result)`, or the reason its run failed."""
    return [
        [name, f"run failed: {result['failed']}"] if "failed" in result else row(name, result)
        for name, result in results.items()
    ]


def report_writers(results: dict[str, Any], plan: Plan) -> None:
    def row(name: str, result: dict[str, Any]) -> list[Any]:
        f = result["figures"]
        return [
            name,
            f["writers killed"],
            f["writer errors"],
            f["acked writes"],
            f["killed mid-stream"],
            f["keys checked"],
            f["torn"],
            f["lost acked"],
            f["unacked write visible"],
            f["stray keys listed"],
            left(result["left"]["before"]),
            result["cleaned"],
            left(result["left"]["after"]),
        ]

    rows = result_rows(results, row)
    print_table(
        f"(a) SIGKILLed writers: {plan.writers} per backend, {plan.parallel} at a time, put of "
        f"<= {plan.small} B and open(wb) of {plan.big // MIB} MiB every {plan.big_every}th write",
        [
            "backend",
            "killed",
            "writer errors",
            "acked",
            "mid-stream",
            "keys checked",
            "TORN",
            "LOST ACKED",
            "unacked visible",
            "stray listed",
            "temp left by crashes",
            "cleanup(0) removed",
            "temp left after",
        ],
        rows,
    )
    print(
        "  unacked visible: the write in flight at the kill was published (allowed, whole).\n"
        "  temp left: reserved temp names (.~anystore-tmp~) and incomplete multipart uploads\n"
        "  counted on the medium itself, before and after store.cleanup(older_than=0)."
    )
    problems(results)


def report_reads(results: dict[str, Any], plan: Plan) -> None:
    def row(name: str, result: dict[str, Any]) -> list[Any]:
        f = result["figures"]
        other = Counter({k: v for k, v in f.items() if k.startswith("error ")})
        copy_errors = Counter({k[11:]: v for k, v in f.items() if k.startswith("copy error ")})
        copy_text = (
            f"{f['copy runs']} runs, {f['values copied']} copied, TORN {f['copy torn']}, "
            f"errors: {counts(copy_errors)}"
        )
        det = result["deterministic"]
        return [
            name,
            f["clean"] + f["torn"] + f["ConcurrentModification"] + sum(other.values()),
            f["clean"],
            f["ConcurrentModification"],
            f["torn"],
            counts(other),
            f"{2 - f['writer errors']} of 2",
            det["overwrite"],
            det["delete"],
            copy_text,
        ]

    rows = result_rows(results, row)
    print_table(
        f"(a') streamed reads: open(rb) of {plan.read_size // MIB} MiB values in 1 MiB chunks "
        f"for {plan.read_seconds:.0f} s, two processes overwriting/deleting them",
        [
            "backend",
            "reads",
            "clean",
            "ConcurrentModification",
            "TORN",
            "other errors",
            "overwriters up to the end",
            "overwrite after 1 MiB read",
            "delete after 1 MiB read",
            "anystore.copy() of the keys meanwhile",
        ],
        rows,
    )
    problems(results)


def report_restart(results: dict[str, Any], plan: Plan) -> None:
    def row(name: str, result: dict[str, Any]) -> list[Any]:
        errors = result["errors"]
        lost = result["lost"]
        acked = result["acked"]
        # Calls that started before the kill and failed with it count with the outage.
        outage: Counter[str] = Counter()
        for phase in ("before", "outage", "restarting", "no bucket"):
            outage.update(errors.get(phase, {}))
        slowest = max(result["slowest"].get(p, 0.0) for p in ("before", "outage", "no bucket"))
        lost_text = ", ".join(f"{phase} {lost.get(phase, 0)}/{acked[phase]}" for phase in acked)
        unreadable = {k: v for k, v in lost.items() if "(" in k}
        if unreadable:
            lost_text += "; " + counts(unreadable)
        return [
            name,
            counts(outage),
            f"{slowest:.2f}",
            seconds(result["recovery"]) if result["recovery"] is not None else "NEVER",
            counts(errors.get("after", {})),
            lost_text,
            "yes" if result["hung"] else "no",
        ]

    rows = result_rows(results, row)
    print_table(
        f"(b) server SIGKILLed after 1 s, restarted after {plan.outage:.0f} s "
        "(same port and data), one client put/get loop on the same store object",
        [
            "backend",
            "errors during outage",
            "slowest call (s)",
            "recovered after (s)",
            "errors after restart",
            "LOST ACKED by phase (lost/acked)",
            "client hung",
        ],
        rows,
    )
    print(
        "  Errors during outage: calls in flight at the kill, while the server was down and\n"
        "  while it started again. Recovered after: seconds from the restarted server answering\n"
        "  (S3: from the bucket created again) to the store's first successful call. Redis runs\n"
        "  with --save '' --appendonly no and moto keeps everything in memory: their writes\n"
        "  acknowledged before the kill are lost by configuration. 'no bucket' (S3): moto\n"
        "  restarted without the bucket for 1 s, then the bucket was created again."
    )
    for name, result in results.items():
        for phase_error, text in sorted(result.get("samples", {}).items()):
            print(f"  {name} {phase_error}: {text}")


def report_stall(results: dict[str, Any], plan: Plan) -> None:
    def row(name: str, result: dict[str, Any]) -> list[Any]:
        cells = [name, ", ".join(f"{k}={v}" for k, v in result["options"].items()) or "(none)"]
        for op in ("get", "put"):
            took, what = result["outcomes"][op]
            cells.append(f"{seconds(took)} s {what}" if took is not None else what)
        cells.append(seconds(result["recovered"]) if result["recovered"] is not None else "NEVER")
        return cells

    rows = result_rows(results, row)
    print_table(
        f"(c) server SIGSTOPped (SIGCONT after {plan.stall_cap:.0f} s at most; SQLite: another "
        "connection holds BEGIN EXCLUSIVE): seconds until the call gave up, and how",
        ["backend", "timeout options passed", "get", "put", "ok again after SIGCONT/unlock (s)"],
        rows,
    )


def report_hammer(results: dict[str, Any], plan: Plan) -> None:
    def row(name: str, result: dict[str, Any]) -> list[Any]:
        total = sum(result["ops"].values())
        final = result["final"]
        if result["ran"] == 0:
            final_text = "n/a: no hammer process ran"
        else:
            final_text = counts(final) if sum(final.values()) else "consistent"
        failed = sum(result["errors"].values())
        torn = sum(result["torn"].values())
        return [
            name,
            total,
            f"{total / plan.hammer_seconds:,.0f}",
            failed,
            torn,
            result["hung"],
            f"{result['ran']} of {plan.processes}",
            final_text,
        ]

    rows = result_rows(results, row)
    print_table(
        f"(d) hammer: {plan.processes} processes x {plan.threads} threads, "
        f"{plan.hammer_seconds:.0f} s, {plan.hammer_keys} shared keys",
        [
            "backend",
            "ops ok",
            "ops/s",
            "errors",
            "TORN",
            "hung threads",
            "processes ran",
            "final check",
        ],
        rows,
    )
    for name, result in results.items():
        if result.get("errors"):
            print(f"  {name} errors by type: {counts(result['errors'], limit=12)}")
            for error, text in sorted(result["samples"].items()):
                print(f"    {error}: {text}")
        if result.get("torn"):
            print(f"  {name} torn/stray: {counts(result['torn'])}")
    problems(results)


def problems(results: dict[str, Any], limit: int = 8) -> None:
    """Print the first problems each backend's run noted."""
    for name, result in results.items():
        found = result.get("problems", [])
        for text in found[:limit]:
            print(f"  {name}: {text}")
        if len(found) > limit:
            print(f"  {name}: ... {len(found) - limit} more")


def revive(target: Target) -> None:
    """After a run, make sure the target's server runs (a failed run may have left it down)."""
    server = target.server
    if server is None:
        return
    server.resume()
    if server.process is None or server.process.poll() is not None:
        server.kill()
        server.start()


REPORTS = {
    "writers": report_writers,
    "reads": report_reads,
    "restart": report_restart,
    "stall": report_stall,
    "hammer": report_hammer,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default=",".join(ALL), help="comma-separated subset")
    parser.add_argument("--writers", type=int, default=0, help="killed writers per backend")
    parser.add_argument("--seconds", type=float, default=0.0, help="hammer duration")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated run kinds")
    parser.add_argument("--quick", action="store_true", help="small sizes, under 3 minutes")
    args = parser.parse_args()
    names = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL)) + sorted(set(args.runs.split(",")) - set(RUNS))
    if unknown:
        raise SystemExit(f"unknown backend(s) or run(s): {', '.join(unknown)}")
    plan = make_plan(args)
    install_cleanup()
    # Fake credentials for moto, and no profile or endpoint of the machine's own.
    os.environ.update(
        AWS_ACCESS_KEY_ID="reliability",
        AWS_SECRET_ACCESS_KEY="reliability",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "ANYSTORE_URI"):
        os.environ.pop(variable, None)
    base = Path(tempfile.mkdtemp(prefix="anystore-reliability-"))
    base.chmod(0o755)  # the postgres and mysql users must reach their folders inside
    began = time.monotonic()
    try:
        targets, failed = start_targets(names, base)
        print(
            f"backends: {', '.join(targets)}; private servers ready after "
            f"{time.monotonic() - began:.0f} s; temporary folder {base}"
        )
        print(
            f"timeout options asked for the restart and stall runs: connect {CONNECT_TIMEOUT:g} s,"
            f" operation {OPERATION_TIMEOUT:g} s; passed as:"
        )
        for name, target in targets.items():
            if target.server is not None or name == "sqlite":
                used = ", ".join(f"{k}={v}" for k, v in target.timeouts.items()) or "(none)"
                print(f"  {name}: {used}; left at defaults: {other_settings(name) or '-'}")
        for name, reason in failed.items():
            print(f"  {name}: could not start, skipped: {reason}")
        print(
            f"plan: {plan.writers} killed writers per backend, reads {plan.read_seconds:g} s, "
            f"outage {plan.outage:g} s, stall cap {plan.stall_cap:g} s, hammer "
            f"{plan.hammer_seconds:g} s{' (--quick)' if args.quick else ''}"
        )
        down: dict[str, str] = {}
        for run in args.runs.split(","):
            results: dict[str, Any] = {}
            run_began = time.monotonic()
            for name, target in targets.items():
                if name in SKIP.get(run, ()):
                    continue
                if name in down:
                    results[name] = {"failed": down[name]}
                    continue
                try:
                    results[name] = RUNS[run](target, plan, base)
                except Exception as error:
                    results[name] = {"failed": f"{type(error).__name__}: {error}"[:300]}
                try:
                    revive(target)
                except Exception as error:
                    down[name] = f"its server could not be started again: {error}"[:300]
            if results:
                try:
                    REPORTS[run](results, plan)
                except Exception as error:  # a bug of this script: show the raw figures
                    print(f"\n{run}: report failed ({type(error).__name__}: {error}): {results}")
                print(f"  ({run} run: {time.monotonic() - run_began:.0f} s)")
                sys.stdout.flush()
        print(f"\ntotal {time.monotonic() - began:.0f} s")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the private servers and workers", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        kill_all()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
