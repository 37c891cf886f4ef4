"""Finding plugin entry points, with a small on-disk cache that keeps start-up fast.

importlib-metadata reads every installed distribution to find entry points, which costs more than
the rest of opening a store. The list it finds only changes when packages are installed or removed,
which changes the mtime of the folder they live in; so the list is cached per interpreter together
with the mtimes of every `sys.path` folder, and read again only when one of those changed. Plugin
modules are still imported and their hooks still called on every discovery: only the list of
entry points is cached. Set `ANYSTORE_PLUGIN_CACHE=0` to bypass the cache.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Any

GROUP = "anystore"


@dataclass(frozen=True)
class FoundEntryPoint:
    """An entry point of the `anystore` group: `name = module[:attribute]`."""

    name: str
    value: str
    dist_path: str | None

    def load(self) -> Any:
        """Import the entry point's module (and attribute, if it names one)."""
        module_name, _, attribute = self.value.partition(":")
        module = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            module = getattr(module, part)
        return module

    @property
    def dist(self) -> Any:
        """The importlib-metadata Distribution that declares it (parsed on demand)."""
        if self.dist_path is None:
            return None
        from pathlib import Path

        from importlib_metadata import PathDistribution

        return PathDistribution(Path(self.dist_path))


def _cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    interpreter = re.sub(r"[^A-Za-z0-9]+", "_", sys.prefix).strip("_")
    # One file per distinct sys.path, so that scripts run from different folders don't take
    # turns overwriting one cache.
    paths = zlib.crc32("\0".join(sys.path).encode("utf-8", "surrogateescape"))
    return os.path.join(base, "anystore", f"entry-points-{interpreter}-{paths:08x}.json")


def _fingerprint() -> list[list[Any]]:
    stamps: list[list[Any]] = []
    for entry in sys.path:
        try:
            stamps.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            stamps.append([entry, None])
    return stamps


@dataclass(frozen=True)
class Installed:
    """What discovery needs to know of the installed distributions."""

    entry_points: list[FoundEntryPoint]
    foreign_anystore: str | None
    """The version of the unrelated `anystore` distribution (1.x, another project that installs
    the same import package) if it is installed too, else None."""


def _scan() -> Installed:
    from importlib_metadata import PackageNotFoundError, entry_points, version

    found = []
    for entry_point in entry_points(group=GROUP):
        dist = getattr(entry_point, "dist", None)
        path = getattr(dist, "_path", None)
        found.append(
            FoundEntryPoint(entry_point.name, entry_point.value, str(path) if path else None)
        )
    try:
        foreign: str | None = version("anystore")
    except PackageNotFoundError:
        foreign = None
    return Installed(found, foreign)


def find_installed() -> Installed:
    """The `anystore` entry points (and a foreign `anystore`), from the cache when valid."""
    if os.environ.get("ANYSTORE_PLUGIN_CACHE", "1").lower() in ("0", "false", "no"):
        return _scan()
    path = _cache_file()
    fingerprint = _fingerprint()
    try:
        with open(path, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("fingerprint") == fingerprint:
            return Installed(
                [FoundEntryPoint(*item) for item in cached["entry_points"]],
                cached["foreign_anystore"],
            )
    except (OSError, ValueError, TypeError, KeyError):
        pass
    installed = _scan()
    _write_cache(path, fingerprint, installed)
    return installed


def find_entry_points() -> list[FoundEntryPoint]:
    """The `anystore` entry points of the installed distributions."""
    return find_installed().entry_points


def _write_cache(path: str, fingerprint: list[list[Any]], installed: Installed) -> None:
    data = {
        "fingerprint": fingerprint,
        "entry_points": [[e.name, e.value, e.dist_path] for e in installed.entry_points],
        "foreign_anystore": installed.foreign_anystore,
    }
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temp, path)
    except OSError:
        # A cache that cannot be written (read-only home) only costs speed.
        try:
            os.unlink(temp)
        except OSError:
            pass
