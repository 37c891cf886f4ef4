"""What the fsspec backend raises when a filesystem fails: fsspec's errors in anystore's terms.

fsspec's HTTP filesystem turns a connection failure into `FileNotFoundError` (`info`), swallows
it (`exists`, `walk`) or lets aiohttp's own error out (`cat_file`), so a dead server would look
like a missing key. `unavailable_error` looks through an error's chain for the cause: a server
that cannot be reached (refused, unknown host, timed out, dropped the connection) or answered
that it cannot serve now (5xx, 408, 429, refused credentials) is `BackendUnavailable`.
`unopenable` says how to name what a filesystem that cannot be opened at all needs (an archive
protocol without its archive, a missing archive): `InvalidOption`.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from anystore.exceptions import AnystoreError, BackendUnavailable, InvalidOption, mask_uri

# Connection failures in the standard library's terms: refused, reset, broken (ConnectionError),
# timed out (asyncio's TimeoutError is its own class before Python 3.11), unknown host (gaierror).
_UNREACHABLE = (ConnectionError, TimeoutError, asyncio.TimeoutError, socket.gaierror, socket.herror)

# HTTP statuses that say the credentials were refused (a missing value would be a 404).
_DENIED_STATUS = frozenset({401, 407})


def _busy(status: int) -> bool:
    """True for an HTTP status that says the server cannot serve the request now (a timeout,
    too many requests, a server or gateway error), not that the value is missing. 501 and 505 say
    the server never does this (a PUT to a read-only server): they are not "now"."""
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it wraps (`__cause__`, else `__context__`), outermost first."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen and len(seen) < 32:
        seen.add(id(link))
        yield link
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def aiohttp_errors() -> tuple[tuple[type[BaseException], ...], type[BaseException] | None]:
    """aiohttp's connection-failure classes and its `ClientResponseError`, if it is loaded.

    Looked up in `sys.modules`, never imported: an aiohttp error can only exist once an fsspec
    implementation has imported aiohttp, and importing it for every other protocol would be slow.
    """
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return (), None
    # ClientPayloadError: the connection broke in the middle of a response body.
    return (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError), aiohttp.ClientResponseError


def _describe(error: BaseException) -> str:
    text = mask_uri(str(error)) if str(error) else "no answer within the timeout"
    return f"{type(error).__name__}: {text}"


def unavailable_error(uri: str, error: BaseException) -> BackendUnavailable | None:
    """`BackendUnavailable` when the first decisive error in `error`'s chain is a connection
    failure or an HTTP status that means "not now", else None.

    The first decisive link wins, so that a 404 raised while handling an earlier, retried
    connection error stays a 404. A plain `FileNotFoundError` is not decisive: fsspec's HTTP
    `info` raises one for any failure, with the real one as its cause.
    """
    unreachable, response_error = aiohttp_errors()
    where = mask_uri(uri)
    for link in _chain(error):
        if isinstance(link, BackendUnavailable):
            return link
        if isinstance(link, _UNREACHABLE + unreachable):
            return BackendUnavailable(f"Cannot reach {where}: {_describe(link)}")
        if response_error is not None and isinstance(link, response_error):
            status, reason = int(getattr(link, "status", 0)), getattr(link, "message", "")
            if status in _DENIED_STATUS:
                return BackendUnavailable(
                    f"{where} refused the credentials (HTTP {status} {reason}): pass "
                    "them in the store's options (for http: client_kwargs={'auth': ...} or "
                    "headers={'Authorization': ...})"
                )
            if _busy(status):
                return BackendUnavailable(
                    f"{where} cannot serve the request now (HTTP {status} {reason})"
                )
            return None
    return None


def _takes_archive(protocol: str) -> bool:
    """True when fsspec's filesystem for `protocol` opens a file given as `fo` (zip, tar...)."""
    try:
        from fsspec.registry import get_filesystem_class

        return "fo" in inspect.signature(get_filesystem_class(protocol).__init__).parameters
    except Exception:  # an unknown or broken implementation: no hint rather than a new error
        return False


def unopenable(uri: str, options: Mapping[str, Any], error: Exception) -> AnystoreError:
    """The error to raise when fsspec cannot open the filesystem of `uri` with `options`."""
    unavailable = unavailable_error(uri, error)
    if unavailable is not None:
        return unavailable
    protocol, _, path = uri.partition("://")
    said = f"({_describe(error)})"
    where = mask_uri(uri)
    if not _takes_archive(protocol):
        return InvalidOption(
            f"Cannot open {where}: check the URI and the options that fsspec's {protocol} "
            f"filesystem takes {said}"
        )
    if "::" not in uri and "fo" not in options:
        # `zip:///data/a.zip` reads as the path /data/a.zip inside an archive that was never
        # named, so fsspec opened the working directory as the archive (IsADirectoryError).
        archive = path or "/path/to/archive"
        return InvalidOption(
            f"Cannot open {where}: {protocol}:// needs the archive (the file it opens) after "
            f"'::' ({protocol}://::{archive}, or {protocol}://folder/inside::{archive} for a "
            f"folder in it), or as the option fo={archive!r} {said}"
        )
    target = options.get("fo")
    named = f" with fo={target!r}" if isinstance(target, str) else ""
    return InvalidOption(
        f"Cannot open {where}{named}: check that the archive exists and is a {protocol} file "
        f"(a relative path is read from the working directory) {said}"
    )
