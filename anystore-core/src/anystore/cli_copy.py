"""`anystore copy`: the copy with its progress display (a total and ETA where the source can count
its keys cheaply) and a clean Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from anystore.cli import Interrupted
from anystore.plugins import split_layers, uri_scheme

# Sources whose listing is cheap enough to run twice (once to count, once to copy): in-process
# memory and local folders. Others count only with --count: a listing there costs requests.
CHEAP_LISTING = ("memory", "file", "local")


def counts_cheaply(uri: str) -> bool:
    """Whether the store at `uri` (layers included) lists its keys without network round trips."""
    return uri_scheme(split_layers(uri)[1]) in CHEAP_LISTING


def run_copy(args: argparse.Namespace) -> int:
    """Copy SOURCE_URI to TARGET_URI and print the report; raises `Interrupted` on Ctrl-C."""
    from anystore.copying import copy
    from anystore.store import get_store

    source, target = get_store(args.source), get_store(args.target)
    counts = {"copied": 0, "skipped": 0, "kept": 0}
    shown = sys.stderr.isatty()
    line: _Line | None = None
    bar = None
    try:
        if shown:
            total = _total(args, source)
            bar = _progress_bar(total)
            if bar is None:
                line = _Line(total)

        def progress(key: str, outcome: str) -> None:
            counts[outcome] += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(counts, refresh=False)
            elif line is not None:
                line.show(counts, key)

        report = copy(
            source,
            target,
            prefix=args.prefix,
            glob=args.glob,
            overwrite=args.overwrite,
            progress=progress,
        )
    except KeyboardInterrupt:
        done = sum(counts.values())
        raise Interrupted(
            f"interrupted after {done} key{'s' if done != 1 else ''} "
            f"({', '.join(f'{n} {name}' for name, n in counts.items())}); "
            "run the same command again to resume"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        elif line is not None:
            print(file=sys.stderr)
    print(report)
    return 0


def _total(args: argparse.Namespace, source: Any) -> int | None:
    """The number of keys the copy will visit, when counting is cheap or asked for (--count)."""
    if args.count is False or (args.count is None and not counts_cheaply(args.source)):
        return None
    return sum(1 for _ in source.iterate_keys(prefix=args.prefix, glob=args.glob))


def _progress_bar(total: int | None) -> Any:
    """A tqdm bar on stderr if tqdm is installed (`pip install anystore-core[progress]`)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(desc="copy", total=total, unit="key", file=sys.stderr, dynamic_ncols=True)


class _Line:
    """Without tqdm: one line of running counts (with the total and an ETA when known),
    rewritten in place."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.started = time.monotonic()

    def show(self, counts: dict[str, int], key: str) -> None:
        done = sum(counts.values())
        text = ", ".join(f"{n} {name}" for name, n in counts.items())
        if self.total:
            left = (time.monotonic() - self.started) / done * max(self.total - done, 0)
            text = f"{done}/{self.total} keys, ETA {_clock(left)} ({text})"
        print(f"\r{text}: {key[-60:]}\033[K", end="", file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
