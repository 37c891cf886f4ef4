"""The built-in plugin: memory, local files, any other installed fsspec protocol, and layers."""

from __future__ import annotations

from anystore.hookspecs import RegisterBackend, RegisterLayer, hookimpl


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Register `memory://`, local paths and `file://`, and the generic fsspec fallback."""
    register("memory", "anystore.backends.memory:MemoryBackend")
    register(["file", "local"], "anystore.backends.local:LocalBackend")
    # "*" serves any scheme no plugin claims, if fsspec knows it (zip, http, gcs...).
    register("*", "anystore.backends.fsspec:FsspecBackend")


@hookimpl
def anystore_register_layers(register: RegisterLayer) -> None:
    """Register the `readonly::`, `gzip::` and `zstd::` layers (zstd needs the [zstd] extra)."""
    register("readonly", "anystore.layers.readonly:ReadOnlyLayer")
    register("gzip", "anystore.layers.gzip:GzipLayer")
    register("zstd", "anystore.layers.zstd:ZstdLayer")
