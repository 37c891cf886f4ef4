"""moto's S3 server with atomic writes, as the tests' S3 endpoint.

moto checks `If-None-Match` / `If-Match` and then writes, with no lock, in a threaded server: two
concurrent conditional PUTs of one key can both succeed, and a conditional DELETE can remove a
value written between its check and its delete. Real S3 never allows either, and the lock and pop
tests depend on it (a lock test once counted 27 of 30 increments on a loaded machine). This runs
`moto.server` with every PutObject and DeleteObject serialised by one lock, so each one's check
and write are atomic against the others.

    python tests/s3/atomic_moto.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.s3.responses import S3Response
from moto.server import main

_WRITES = threading.Lock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(self: S3Response, *args: Any, **kwargs: Any) -> Any:
        with _WRITES:
            return method(self, *args, **kwargs)

    return run


S3Response.put_object = _atomic(S3Response.put_object)  # type: ignore[method-assign]
S3Response.delete_object = _atomic(S3Response.delete_object)  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
