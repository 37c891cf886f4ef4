"""`readonly::URI`: the store at URI, refusing every write with `ReadOnly` before it is made."""

from __future__ import annotations

from anystore.backend import Backend
from anystore.layer import Layer


class ReadOnlyLayer(Layer):
    """Declares the store read-only; `Store` then refuses put, delete, pop, open("wb"), locks
    and cleanup with `ReadOnly` before the backend is touched."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.read_only = True
