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
    "anycache": "anystore.decorators",
    "smart_open": "anystore.smart",
    "smart_read": "anystore.smart",
    "smart_write": "anystore.smart",
    "smart_stream": "anystore.smart",
    "smart_stream_json": "anystore.smart",
    "smart_stream_csv": "anystore.smart",
    "smart_stream_models": "anystore.smart",
    "smart_write_json": "anystore.smart",
    "smart_write_csv": "anystore.smart",
    "smart_write_models": "anystore.smart",
    "smart_stream_data": "anystore.smart",
    "smart_stream_json_models": "anystore.smart",
    "smart_stream_csv_models": "anystore.smart",
    "smart_write_data": "anystore.smart",
    "smart_write_model": "anystore.smart",
    "get_virtual_path": "anystore.smart",
    "open_virtual": "anystore.smart",
}

__all__ = [
    "Backend",
    "BackendStat",
    "Settings",
    "Stats",
    "Store",
    "__version__",
    "anycache",
    "copy",
    "get_store",
    "get_virtual_path",
    "hookimpl",
    "open_virtual",
    "smart_open",
    "smart_read",
    "smart_stream",
    "smart_stream_csv",
    "smart_stream_csv_models",
    "smart_stream_data",
    "smart_stream_json",
    "smart_stream_json_models",
    "smart_stream_models",
    "smart_write",
    "smart_write_csv",
    "smart_write_data",
    "smart_write_json",
    "smart_write_model",
    "smart_write_models",
]

if TYPE_CHECKING:
    from anystore.backend import Backend, BackendStat
    from anystore.copying import copy
    from anystore.decorators import anycache
    from anystore.hookspecs import hookimpl
    from anystore.settings import Settings
    from anystore.smart import (
        get_virtual_path,
        open_virtual,
        smart_open,
        smart_read,
        smart_stream,
        smart_stream_csv,
        smart_stream_csv_models,
        smart_stream_data,
        smart_stream_json,
        smart_stream_json_models,
        smart_stream_models,
        smart_write,
        smart_write_csv,
        smart_write_data,
        smart_write_json,
        smart_write_model,
        smart_write_models,
    )
    from anystore.stats import Stats
    from anystore.store import Store, get_store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anystore' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
