"""One S3 client per endpoint, credentials and options, shared by every store that uses them.

A botocore client costs ~13 MB (its service model, endpoint rules, connection pool), so a process
that opens many stores on one endpoint (one per prefix, per request, per tenant) would grow by
that much per store. Stores whose connection settings are equal share one `S3FileSystem` (s3fs's
event loop and its aiobotocore client); stores with other credentials, endpoint or timeouts get
their own. A client is dropped once the last store using it is closed or garbage-collected. The
pool is per process: a forked child builds its own clients.

Credentials may come inside an endpoint URL (`http://KEY:SECRET@host:9000`) or a store URI
(`s3://KEY:SECRET@bucket/prefix`): they are taken out of the URL here, so that neither botocore
(its DEBUG log prints the endpoint) nor an error message ever carries the secret.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from anystore.clients import ClientCache

# AWS variables that change which credentials or region a client uses.
_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


@dataclass(frozen=True)
class Connection:
    """Everything that makes two S3 clients different; equal connections share one client."""

    endpoint_url: str | None
    region: str | None
    key: str | None
    secret: str | None
    token: str | None
    anon: bool
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    max_pool_connections: int
    # The AWS environment at opening time (credentials, profile, region, config files).
    environment: tuple[str | None, ...] = ()

    def __repr__(self) -> str:  # never print the secret
        return f"Connection(endpoint_url={self.endpoint_url!r}, key={self.key!r}, secret=***)"


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """`url` without a `user:password@` part, and the (unquoted) user and password it had."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) or None


def environment_fingerprint() -> tuple[str | None, ...]:
    """The AWS variables that a client without explicit credentials would read."""
    return tuple(os.environ.get(name) for name in _AWS_ENV)


# Shared `S3FileSystem`s by `Connection`, counted per store: the last store closed drops its client.
POOL: ClientCache[Any] = ClientCache()


def acquire(connection: Connection) -> Any:
    """The shared filesystem for `connection` (built on first use); `release` it when done."""
    return POOL.acquire(connection, lambda: _build(connection))


def release(connection: Connection, fs: Any) -> None:
    """One store less on `fs`; the last one lets the client go (s3fs closes its session)."""
    POOL.release(connection, fs)


async def session_client(fs: Any) -> Any:
    """The aiobotocore client of `fs`, made ready on first use.

    botocore asks for `Expect: 100-continue` on every upload with a body, and aiohttp waits for
    the interim response with no timeout at all: a server that accepts the connection but stalls
    (a paused process, a full backlog) would hang a put forever while every other call fails
    within `read_timeout`. The header is dropped, so an upload is bounded like any request (a
    refused upload costs at most one part's bytes on the wire).
    """
    client = await fs.set_session()
    if not getattr(fs, "_anystore_ready", False):
        client.meta.events.register_last("before-call.s3", _no_expect_continue)
        fs._anystore_ready = True
    return client


def _no_expect_continue(params: dict[str, Any], **_: Any) -> None:
    params.get("headers", {}).pop("Expect", None)


_SESSIONS: dict[int, Any] = {}


def _shared_session() -> Any:
    """One botocore session per process for clients with explicit credentials: its loader
    parses the S3 service model once for all of them. (A client that reads credentials from
    the environment gets a session of its own, which caches what it found.)"""
    from aiobotocore.session import AioSession

    return _SESSIONS.setdefault(os.getpid(), AioSession())


def _build(connection: Connection) -> Any:
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if connection.region:
        client_kwargs["region_name"] = connection.region
    fs = s3fs.S3FileSystem(
        anon=connection.anon,
        key=connection.key,
        secret=connection.secret,
        token=connection.token,
        endpoint_url=connection.endpoint_url,
        client_kwargs=client_kwargs,
        config_kwargs={
            "connect_timeout": connection.connect_timeout,
            "read_timeout": connection.read_timeout,
            "retries": {"total_max_attempts": connection.max_attempts, "mode": "standard"},
            "max_pool_connections": connection.max_pool_connections,
            # No CRC over every upload (botocore's default since 1.36): it costs a pass over the
            # data and an aws-chunked body that some S3-compatible services refuse or parse
            # slowly; TLS and S3's own checks cover the transfer.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        },
        use_listings_cache=False,
        skip_instance_cache=True,  # this pool is the cache, keyed on all of the above
        session=_shared_session() if connection.key or connection.anon else None,
    )
    return fs
