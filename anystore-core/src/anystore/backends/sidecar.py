"""TTL sidecars for backends whose medium has no expiry of its own (local files, fsspec).

The expiry of `folder/name` is kept as text (seconds since the epoch) beside it, in
`folder/.~anystore-ttl~name`, so a child store opened on `folder` finds the same expiry. Sidecar
and temp names start with the reserved `.~anystore` prefix, which no key may use and no listing
shows.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from anystore.keys import RESERVED_PREFIX

TTL_PREFIX = RESERVED_PREFIX + "-ttl~"
TEMP_PREFIX = RESERVED_PREFIX + "-tmp~"

_counter = itertools.count()


def sidecar_name(name: str) -> str:
    """The sidecar file name for the value file `name`."""
    return TTL_PREFIX + name


def beside(path: str) -> str:
    """The sidecar path of the value at the `/`-separated `path` (in the same folder)."""
    head, sep, name = path.rpartition("/")
    return head + sep + sidecar_name(name)


def temp_name() -> str:
    """A temp file name unique across processes and threads of this machine."""
    return f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_counter)}"


def expiry_text(ttl: float) -> bytes:
    """The sidecar content for a value that lives `ttl` seconds from now."""
    return repr(time.time() + ttl).encode("ascii")


def is_expired(text: bytes) -> bool:
    """Tell whether a sidecar's content names a time that has passed (garbage counts as live)."""
    expiry = expires_at(text)
    return expiry is not None and expiry <= time.time()


def expires_at(text: bytes) -> float | None:
    """The expiry time in a sidecar's content, or None if it is unreadable."""
    try:
        return float(text)
    except ValueError:
        return None
