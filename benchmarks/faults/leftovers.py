"""What crashed writers left behind, counted on the medium itself (not through the store).

A write in progress lives under a reserved temp name (`.~anystore-tmp~...`: a temp file, a temp
key, a temp row) or, on S3, as an incomplete multipart upload. `count` finds those for one run and
says how many and how many bytes, or "n/a" where this backend's medium cannot be looked at.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from anystore.keys import RESERVED_PREFIX
from faults.targets import Target

TEMP = RESERVED_PREFIX + "-tmp~"


def count(target: Target, run: str, store: Any) -> tuple[int, int] | None:
    """(temp entries, bytes) left by run `run` on `target`, or None if not countable."""
    try:
        if target.name == "local":
            return _local(target.base / "local" / run)
        if target.name == "redis":
            return _redis(target, run)
        if target.name == "s3":
            return _s3(target, run)
        return _sql(store)
    except Exception:  # a medium we cannot inspect: say so rather than guess
        return None


def _local(root: Path) -> tuple[int, int]:
    found = size = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(TEMP) or TEMP in folder:
                found += 1
                size += os.path.getsize(os.path.join(folder, name))
    return found, size


def _redis(target: Target, run: str) -> tuple[int, int]:
    import redis

    assert target.server is not None
    client = redis.Redis(port=target.server.port)
    found = size = 0
    for name in client.scan_iter(match=f"{run}/*", count=1000):
        if TEMP.encode() in name:
            found += 1
            size += int(client.strlen(name))
    client.close()
    return found, size


def _s3(target: Target, run: str) -> tuple[int, int]:
    import boto3

    assert target.server is not None
    endpoint = target.server.options()["endpoint_url"]
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = target.server.uri(run).removeprefix("s3://").partition("/")[0]
    found = size = 0
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{run}/").get("Uploads", [])
    for upload in uploads:
        found += 1
        parts = client.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        size += sum(part["Size"] for part in parts.get("Parts", []))
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{run}/"):
        for item in page.get("Contents", []):
            if TEMP in item["Key"]:
                found += 1
                size += item["Size"]
    return found, size


def _sql(store: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    backend = store.backend
    table = backend.table
    query = select(func.count(), func.coalesce(func.sum(func.length(table.c.value)), 0)).where(
        table.c.key.contains(TEMP)
    )
    with backend.engine.connect() as connection:
        found, size = connection.execute(query).one()
    return int(found), int(size)
