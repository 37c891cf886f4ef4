"""The backends that ship with anystore-core: memory, local files, and generic fsspec."""
