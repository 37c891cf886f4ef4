"""The built-in plugin: memory, local files, and any other installed fsspec protocol."""

from __future__ import annotations

from anystore.hookspecs import RegisterBackend, hookimpl


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Register `memory://`, local paths and `file://`, and the generic fsspec fallback."""
    register("memory", "anystore.backends.memory:MemoryBackend")
    register(["file", "local"], "anystore.backends.local:LocalBackend")
    # "*" serves any scheme no plugin claims, if fsspec knows it (zip, http, gcs...).
    register("*", "anystore.backends.fsspec:FsspecBackend")
