"""The `anystore` command: put, get, delete, exists, keys, info, copy, cleanup on any store.

Values move as raw bytes (what `put` reads is exactly what `get` prints). A missing key exits 1,
bad input exits 2, each with one line on stderr; never a traceback for a user's mistake.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from anystore.exceptions import AnystoreError, DoesNotExist

EXIT_MISSING = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anystore", description="Store and read values in any anystore backend."
    )
    parser.add_argument(
        "--store",
        metavar="URI",
        default=None,
        help="store URI (default: ANYSTORE_URI or .anystore)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    put = commands.add_parser("put", help="write VALUE (or stdin with '-' or no VALUE) at KEY")
    put.add_argument("key")
    put.add_argument("value", nargs="?", default="-")
    put.add_argument("--ttl", type=float, default=None, help="seconds until the key expires")
    commands.add_parser("get", help="print the value at KEY").add_argument("key")
    commands.add_parser("pop", help="print the value at KEY and delete it").add_argument("key")
    commands.add_parser("delete", help="delete KEY (missing keys are fine)").add_argument("key")
    commands.add_parser("exists", help="exit 0 if KEY exists, else 1").add_argument("key")
    commands.add_parser("info", help="print KEY's size, times and mimetype as JSON").add_argument(
        "key"
    )
    keys = commands.add_parser("keys", help="list keys, one per line")
    keys.add_argument("--prefix", default=None)
    keys.add_argument("--exclude-prefix", default=None)
    keys.add_argument("--glob", default=None)
    keys.add_argument("--info", action="store_true", help="one JSON line of Stats per key")
    copy = commands.add_parser("copy", help="copy keys from SOURCE to TARGET (resumable)")
    copy.add_argument("source", metavar="SOURCE_URI")
    copy.add_argument("target", metavar="TARGET_URI")
    copy.add_argument("--prefix", default=None)
    copy.add_argument("--glob", default=None)
    copy.add_argument("--overwrite", action="store_true", help="replace keys that differ")
    cleanup = commands.add_parser(
        "cleanup", help="remove what crashed writers left behind (temp files, partial uploads)"
    )
    cleanup.add_argument(
        "--older-than",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="only leftovers at least this old (default 3600: spares writes in progress)",
    )
    commands.add_parser("backends", help="list installed plugins, their schemes and versions")
    commands.add_parser("settings", help="print the effective settings as JSON (secrets masked)")
    return parser


def _run(args: argparse.Namespace) -> int:
    from anystore.store import get_store

    out = sys.stdout.buffer
    if args.command == "settings":
        import json

        from anystore.exceptions import mask_uri
        from anystore.settings import Settings

        settings = Settings()
        if args.store:
            settings.uri = args.store
        values = settings.model_dump(mode="json")
        values["uri"] = mask_uri(values["uri"])
        print(json.dumps(values, indent=2, sort_keys=True))
        return 0
    if args.command == "backends":
        from anystore.plugins import installed_plugins

        for plugin in installed_plugins():
            if plugin.error:
                where = f"{plugin.distribution} {plugin.version}"
                print(f"{plugin.name}\t{where}\tnot loaded: {plugin.error}")
                continue
            schemes = ", ".join(
                "(other fsspec protocols)" if s == "*" else f"{s}://"
                for s in sorted(plugin.schemes)
            )
            layers = ", ".join(f"{name}::" for name in sorted(plugin.layers))
            if layers:
                schemes = f"{schemes}; layers: {layers}" if schemes else f"layers: {layers}"
            print(f"{plugin.name}\t{plugin.distribution} {plugin.version}\t{schemes}")
        return 0
    if args.command == "copy":
        return _copy(args)
    store = get_store(args.store, serialization_mode="raw")
    if args.command == "put":
        if args.value == "-":
            with store.open(args.key, "wb", ttl=args.ttl) as handle:
                while chunk := sys.stdin.buffer.read(1024 * 1024):
                    handle.write(chunk)
        else:
            store.put(args.key, args.value.encode("utf-8"), ttl=args.ttl)
    elif args.command == "pop":
        out.write(store.pop(args.key))
        out.flush()
    elif args.command == "get":
        handle = store.open(args.key, "rb")
        with handle:
            while chunk := handle.read(1024 * 1024):
                out.write(chunk)
        out.flush()
    elif args.command == "delete":
        store.delete(args.key)
    elif args.command == "exists":
        found = store.exists(args.key)
        print("true" if found else "false")
        return 0 if found else EXIT_MISSING
    elif args.command == "info":
        print(store.info(args.key).model_dump_json())
    elif args.command == "cleanup":
        removed = store.cleanup(older_than=args.older_than)
        print(f"{removed} orphan{'s' if removed != 1 else ''} removed")
    elif args.command == "keys":
        for key in store.iterate_keys(args.prefix, args.exclude_prefix, args.glob):
            if args.info:
                stats = store.info(key, raise_on_nonexist=False)
                if stats is not None:  # vanished between listing and reading
                    print(stats.model_dump_json())
            else:
                print(key)
    return 0


def _copy(args: argparse.Namespace) -> int:
    from anystore.copying import copy
    from anystore.store import get_store

    source, target = get_store(args.source), get_store(args.target)
    counts = {"copied": 0, "skipped": 0, "kept": 0}
    bar = _progress_bar() if sys.stderr.isatty() else None

    def progress(key: str, outcome: str) -> None:
        counts[outcome] += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(counts, refresh=False)
        elif sys.stderr.isatty():  # no tqdm: one line of counts, rewritten in place
            done = ", ".join(f"{n} {name}" for name, n in counts.items())
            print(f"\r{done}: {key[-60:]}\033[K", end="", file=sys.stderr, flush=True)

    try:
        report = copy(
            source,
            target,
            prefix=args.prefix,
            glob=args.glob,
            overwrite=args.overwrite,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
        elif sys.stderr.isatty():
            print(file=sys.stderr)
    print(report)
    return 0


def _progress_bar() -> Any:
    """A tqdm bar on stderr if tqdm is installed (`pip install anystore-core[progress]`).

    The total is unknown: listings are lazy, and counting first would list every key twice.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(desc="copy", unit="key", file=sys.stderr, dynamic_ncols=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 missing key, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except DoesNotExist as error:
        print(f"anystore: {error}", file=sys.stderr)
        return EXIT_MISSING
    except BrokenPipeError:
        return 0
    except (AnystoreError, ValueError, OSError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"anystore: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
