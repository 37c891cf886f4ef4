"""The entry-point module of anystore-s3: tiny on purpose, it imports neither s3fs nor boto;
`anystore_s3.backend` is imported only when an s3:// store is opened."""

from __future__ import annotations

from anystore import hookimpl
from anystore.hookspecs import RegisterBackend


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Serve `s3://bucket[/prefix]` on AWS and S3-compatible services."""
    register("s3", "anystore_s3.backend:S3Backend")
