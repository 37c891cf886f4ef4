"""The backends under test: a store URI per run, and the timeout options each backend accepts.

A store is described by a JSON-able spec (`{"uri": ..., "options": {...}}`) so that worker
processes open exactly the store the parent checks. Timeout options are looked up in the
backend's settings class at run time and passed only when the backend declares them, because
their names are not fixed yet; `timeout_options` says which ones it used.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anystore import Store, get_store
from faults.servers import SERVERS, Server

ALL = ["local", "sqlite", "postgresql", "mariadb", "redis", "s3"]
SETTINGS = {
    "postgresql": "anystore_sql.settings:SqlSettings",
    "mariadb": "anystore_sql.settings:SqlSettings",
    "sqlite": "anystore_sql.settings:SqlSettings",
    "redis": "anystore_redis.settings:RedisSettings",
    "s3": "anystore_s3.settings:S3Settings",
}


def open_store(spec: dict[str, Any]) -> Store:
    """The store a spec names, reading and writing raw bytes."""
    return get_store(spec["uri"], serialization_mode="raw", **spec["options"])


def settings_class(backend: str) -> Any:
    """The pydantic settings class of a backend, or None (local, or not importable)."""
    if backend not in SETTINGS:
        return None
    module, _, name = SETTINGS[backend].partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def other_settings(backend: str) -> str:
    """The backend's retry settings, which this script leaves at their defaults."""
    settings = settings_class(backend)
    if settings is None:
        return ""
    words = ("retr", "attempt", "deadlock")
    return ", ".join(
        f"{option}={info.default}"
        for option, info in settings.model_fields.items()
        if any(word in option for word in words)
    )


def timeout_options(backend: str, connect: float, operation: float) -> dict[str, Any]:
    """The backend's timeout settings, set to `connect` / `operation` seconds.

    Every field of the backend's settings whose name holds "timeout" is set: a name with
    "connect" to `connect`, SQLite's busy timeout left alone, every other one to `operation`;
    in milliseconds when the name or description says so, as an int when the field is an int.
    """
    settings = settings_class(backend)
    if settings is None:
        return {}
    chosen: dict[str, Any] = {}
    for option, info in settings.model_fields.items():
        if "timeout" not in option or option.startswith("busy"):
            continue
        seconds = connect if "connect" in option else operation
        text = f"{option} {info.description or ''}".lower()
        in_ms = "_ms" in option or "millisecond" in text or re.search(r"\bms\b", text)
        value: float = seconds * 1000 if in_ms else seconds
        chosen[option] = int(value) if info.annotation is int else value
    return chosen


@dataclass
class Target:
    """One backend: its private server (for the network ones) and where its runs keep data."""

    name: str
    base: Path
    server: Server | None = None
    timeouts: dict[str, Any] = field(default_factory=dict)

    def spec(self, run: str, timeouts: bool = False) -> dict[str, Any]:
        """The store of run `run` (its own table, prefix or folder); timeouts set if asked."""
        if self.name == "local":
            uri = str(self.base / "local" / run)
        elif self.name == "sqlite":
            uri = f"sqlite:///{self.base}/sqlite-{run}.db"
        else:
            assert self.server is not None
            uri = self.server.uri(run)
        options = dict(self.server.options()) if self.server else {}
        if timeouts:
            options.update(self.timeouts)
        return {"uri": uri, "options": options}


def make_target(name: str, base: Path, connect: float, operation: float) -> Target:
    """Prepare (not start) the target `name`; its server, if any, is created in `base`."""
    server = SERVERS[name](base) if name in SERVERS else None
    return Target(name, base, server, timeout_options(name, connect, operation))
