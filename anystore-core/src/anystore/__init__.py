"""anystore: store and cache things anywhere, behind one small API.

    from anystore import get_store

    store = get_store("memory://")
    store.put("key", "value")

Names are imported on first use, so `import anystore` stays cheap and loads no plugin.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "get_store": "anystore.store",
    "Store": "anystore.store",
    "Backend": "anystore.backend",
    "BackendStat": "anystore.backend",
    "Stats": "anystore.stats",
    "hookimpl": "anystore.hookspecs",
    "Settings": "anystore.settings",
    "copy": "anystore.copying",
}

__all__ = [
    "Backend",
    "BackendStat",
    "Settings",
    "Stats",
    "Store",
    "__version__",
    "copy",
    "get_store",
    "hookimpl",
]

if TYPE_CHECKING:
    from anystore.backend import Backend, BackendStat
    from anystore.copying import copy
    from anystore.hookspecs import hookimpl
    from anystore.settings import Settings
    from anystore.stats import Stats
    from anystore.store import Store, get_store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anystore' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
