"""The `anystore` command: put, get, delete, exists, keys, info, copy, cleanup on any store, and
`io` from any URI to any URI.

Values move as raw bytes (what `put` reads is exactly what `get` prints). Every error is one line
on stderr and a documented exit code (`EXIT_*`); never a traceback, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from anystore.exceptions import AnystoreError, DoesNotExist

# Exit codes, as documented in the README (and `anystore --help`).
EXIT_MISSING = 1  # a missing key, or a local source folder that does not exist
EXIT_USAGE = 2  # bad input: a bad key, option, URI or argument
EXIT_UNAVAILABLE = 3  # the backend cannot be reached (or a plugin is broken)
EXIT_FAILED = 4  # anything else the backend reported
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells count it

EPILOG = """exit codes: 0 ok, 1 missing key (or source folder), 2 bad input, 3 backend unavailable,
4 other backend error, 130 interrupted"""

STORE_HELP = "store URI (default: ANYSTORE_URI, else the folder .anystore); also after COMMAND"

COMMANDS = {
    "put": (
        "write VALUE (or stdin with '-' or no VALUE, or the file/URI given by -i) at KEY",
        "anystore put greeting hello",
    ),
    "get": (
        "print the value at KEY (raw bytes), or write it to the file/URI given by -o",
        "anystore get greeting -o greeting.txt",
    ),
    "pop": ("print the value at KEY and delete it", "anystore pop jobs/next"),
    "delete": ("delete KEY (missing keys are fine)", "anystore delete greeting"),
    "exists": ("print true or false; exit 0 if KEY exists, else 1", "anystore exists greeting"),
    "info": ("print KEY's size, times and mimetype as JSON", "anystore info data.json"),
    "keys": ("list keys, one per line", "anystore keys --prefix topic --glob '*.json'"),
    "copy": (
        "copy keys from SOURCE_URI to TARGET_URI (streaming, resumable)",
        "anystore copy ./data s3://bucket/data --glob '**/*.csv'",
    ),
    "cleanup": (
        "remove what crashed writers left behind (temp files, partial uploads)",
        "anystore --store s3://bucket/x cleanup --older-than 86400",
    ),
    "io": (
        "stream IN to OUT: any URI of one value, a path, or '-' for stdin/stdout",
        "anystore io -i s3://bucket/data.csv.gz -o - --input-compression infer",
    ),
    "backends": ("list installed plugins, their schemes, layers and versions", "anystore backends"),
    "settings": ("print the effective settings as JSON (secrets masked)", "anystore settings"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, as every other error of the CLI (argparse prints
    the usage first; `--help` still shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from anystore import __version__

    parser = _Parser(
        prog="anystore",
        description="Store and read values in any anystore backend.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"anystore {__version__}")
    parser.add_argument("--store", metavar="URI", default=None, help=STORE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub: dict[str, argparse.ArgumentParser] = {}
    for name, (summary, example) in COMMANDS.items():
        sub[name] = commands.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"example:\n  {example}\n\n{EPILOG}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS: a --store given before the command is not overwritten by this default.
        sub[name].add_argument("--store", metavar="URI", default=argparse.SUPPRESS, help=STORE_HELP)
    for name in ("get", "pop", "delete", "exists", "info"):
        sub[name].add_argument("key")
    sub["put"].add_argument("key")
    sub["put"].add_argument("value", nargs="?", default="-", help="the value ('-': stdin)")
    sub["put"].add_argument("--ttl", type=float, default=None, help="seconds until KEY expires")
    sub["put"].add_argument("-i", "--input", default=None, help="read the value from this file/URI")
    sub["get"].add_argument("-o", "--output", default=None, help="write the value to this file/URI")
    io_command = sub["io"]
    io_command.add_argument("-i", "--input", default="-", help="where to read (default '-': stdin)")
    io_command.add_argument("-o", "--output", default="-", help="where to write ('-': stdout)")
    for side in ("input", "output"):
        io_command.add_argument(
            f"--{side}-compression",
            default=None,
            metavar="CODEC",
            help=f"{'decompress' if side == 'input' else 'compress'} with gz, bz2, xz, zst, lz4 "
            "or infer (from the extension)",
        )
    keys = sub["keys"]
    keys.add_argument("--prefix", default=None, help="only keys below this (whole segments)")
    keys.add_argument("--exclude-prefix", default=None, help="leave out keys below this")
    keys.add_argument("--glob", default=None, help="'*' within a segment, '**' across them")
    keys.add_argument("--info", action="store_true", help="one JSON line of Stats per key")
    copy = sub["copy"]
    copy.add_argument("source", metavar="SOURCE_URI")
    copy.add_argument("target", metavar="TARGET_URI")
    copy.add_argument("--prefix", default=None, help="only keys below this (whole segments)")
    copy.add_argument("--glob", default=None, help="only keys matching this")
    copy.add_argument("--overwrite", action="store_true", help="replace keys that differ")
    copy.add_argument(
        "--count",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count the keys first, for a total and ETA on a terminal (default: only where "
        "listing is cheap: memory:// and local folders)",
    )
    sub["cleanup"].add_argument(
        "--older-than",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="only leftovers at least this old (default 3600: spares writes in progress)",
    )
    return parser


def _require_local_folder(uri: str | None) -> None:
    """A listing or copy from a local folder that does not exist is an error, as in rclone."""
    from anystore.options import DEFAULT_URI, environment_options
    from anystore.plugins import split_layers, uri_scheme

    uri = uri or environment_options(with_document=True)[0] or DEFAULT_URI
    path = split_layers(uri)[1]
    if uri_scheme(path) not in ("file", "local"):
        return
    import os

    folder = path.partition("://")[2] if "://" in path else path
    if not os.path.isdir(os.path.expanduser(folder or ".")):
        raise DoesNotExist(
            f"No such folder: {folder} (a local store's folder is made by its first write)"
        )


def _run(args: argparse.Namespace) -> int:
    from anystore.store import get_store

    out = sys.stdout.buffer
    if args.command == "settings":
        import json

        from anystore.exceptions import mask_uri
        from anystore.options import effective_values
        from anystore.settings import Settings

        values = effective_values(Settings())
        if args.store:
            values["uri"] = args.store
        for name in ("uri", "yaml_uri", "json_uri"):
            if values[name]:
                values[name] = mask_uri(values[name])
        print(json.dumps(values, indent=2, sort_keys=True, default=str))
        return 0
    if args.command == "io":
        return _io(args)
    if args.command == "backends":
        from anystore.plugins import installed_plugins

        for plugin in installed_plugins():
            if plugin.disabled:
                where = f"{plugin.distribution} {plugin.version}"
                print(f"{plugin.name}\t{where}\tdisabled (ANYSTORE_DISABLE_PLUGINS)")
                continue
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
        from anystore.cli_copy import run_copy

        _require_local_folder(args.source)
        return run_copy(args)
    store = get_store(args.store, serialization_mode="raw")
    if args.command == "put":
        if args.input is not None or args.value == "-":
            from contextlib import nullcontext

            from anystore.smart import smart_open

            try:
                with (
                    nullcontext(sys.stdin.buffer)
                    if args.input is None
                    else smart_open(args.input, "rb") as source,
                    store.open(args.key, "wb", ttl=args.ttl) as handle,
                ):
                    while chunk := source.read(1024 * 1024):
                        handle.write(chunk)
            except KeyboardInterrupt:
                raise Interrupted(f"interrupted; nothing was written to {args.key!r}") from None
        else:
            store.put(args.key, args.value.encode("utf-8"), ttl=args.ttl)
    elif args.command == "pop":
        out.write(store.pop(args.key))
        out.flush()
    elif args.command == "get":
        handle = store.open(args.key, "rb")
        with handle:
            if args.output is not None:
                _stream(handle, args.output, None)
            else:
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
        listing = store.iterate_keys(args.prefix, args.exclude_prefix, args.glob)  # checks them
        _require_local_folder(args.store)
        for key in listing:
            if args.info:
                stats = store.info(key, raise_on_nonexist=False)
                if stats is not None:  # vanished between listing and reading
                    print(stats.model_dump_json())
            else:
                print(key)
    return 0


def _stream(source: Any, target: str, compression: str | None) -> None:
    """Copy the open binary `source` to the URI `target`, published whole on success."""
    from anystore.smart import smart_open

    try:
        with smart_open(target, "wb", compression) as handle:
            while chunk := source.read(1024 * 1024):
                handle.write(chunk)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; nothing was written to {target}") from None


def _io(args: argparse.Namespace) -> int:
    from anystore.smart import smart_open

    # A missing input fails here, before the output is opened: nothing is written then.
    with smart_open(args.input, "rb", args.input_compression) as source:
        _stream(source, args.output, args.output_compression)
    return 0


class Interrupted(Exception):
    """Ctrl-C, with what was (not) done, for one line on stderr."""


def _one_line(error: BaseException) -> str:
    """The error's whole message on one line (a cut at the first line lost the reason of
    messages that end it with a colon, such as pydantic's and botocore's)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _say(error: BaseException) -> None:
    print(f"anystore: {_one_line(error) or type(error).__name__}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (see `EXIT_*`): one line on stderr for any error."""
    from anystore.exceptions import BackendUnavailable, PluginError

    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except DoesNotExist as error:
        _say(error)
        return EXIT_MISSING
    except BrokenPipeError:
        return 0
    except Interrupted as error:
        _say(error)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("anystore: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (BackendUnavailable, PluginError) as error:
        _say(error)
        return EXIT_UNAVAILABLE
    except (AnystoreError, ValueError) as error:
        _say(error)
        return EXIT_USAGE
    except Exception as error:  # a backend's own error: still one line, with its type
        print(f"anystore: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
