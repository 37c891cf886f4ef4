"""The layers that ship with anystore-core: `readonly::`, `gzip::` and `zstd::` (extra `[zstd]`).

See `anystore.layer` for how a layer wraps a backend.
"""
