"""One large value written and read in 1 MiB chunks, in a process of its own: MB/s and peak RSS.

    python bigvalue.py ours URI MB            through Store.open() (any anystore version)
    python bigvalue.py raw BACKEND TARGET MB  the backend's raw client, streaming as it best can

Prints one JSON line: {"write": MB/s, "read": MB/s, "rss": peak RSS in MiB}. The raw sides:
memory io.BytesIO; local open() + os.replace; sqlite incremental blob I/O (blobopen); postgresql
binary COPY in and out; mariadb one row per chunk (its max_allowed_packet is 16 MiB), read through
an unbuffered cursor; redis APPEND / GETRANGE; s3 boto3's upload_fileobj (concurrent parts) and a
streamed GET. Only the standard library is imported at module level, so a baseline interpreter
runs the `ours` side.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

MiB = 1 << 20
CHUNK = os.urandom(MiB)


def chunks(mb: int) -> Iterator[bytes]:
    """`mb` chunks of 1 MiB (the same random bytes each time)."""
    for _ in range(mb):
        yield CHUNK


def measure(mb: int, write: Callable[[], None], read: Callable[[], int]) -> dict[str, float]:
    """MB/s of `write()` and of `read()` (which returns the bytes it read), and the peak RSS."""
    start = time.perf_counter()
    write()
    written = time.perf_counter() - start
    start = time.perf_counter()
    size = read()
    elapsed = time.perf_counter() - start
    assert size == mb * MiB, (size, mb * MiB)
    return {
        "write": mb * MiB / 1e6 / written,
        "read": mb * MiB / 1e6 / elapsed,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def read_handle(handle: Any) -> int:
    """Read `handle` to its end in 1 MiB reads; return the bytes read."""
    total = 0
    while data := handle.read(MiB):
        total += len(data)
    return total


def ours(uri: str, mb: int) -> dict[str, float]:
    """`mb` MiB written and read back through `get_store(uri).open()`."""
    from anystore import get_store

    store = get_store(uri)

    def write() -> None:
        with store.open("big/value", "wb") as handle:
            for chunk in chunks(mb):
                handle.write(chunk)

    def read() -> int:
        with store.open("big/value", "rb") as handle:
            return read_handle(handle)

    try:
        return measure(mb, write, read)
    finally:
        store.delete("big/value")


def raw_memory(_: str, mb: int) -> dict[str, float]:
    """The raw side for memory: an io.BytesIO."""
    buffer = io.BytesIO()

    def write() -> None:
        for chunk in chunks(mb):
            buffer.write(chunk)

    def read() -> int:
        buffer.seek(0)
        return read_handle(buffer)

    return measure(mb, write, read)


def raw_local(folder: str, mb: int) -> dict[str, float]:
    """The raw side for local files: open() to a temp name, os.replace, read back."""
    path = os.path.join(folder, "big")

    def write() -> None:
        with open(path + ".tmp", "wb") as handle:
            for chunk in chunks(mb):
                handle.write(chunk)
        os.replace(path + ".tmp", path)

    def read() -> int:
        with open(path, "rb") as handle:
            return read_handle(handle)

    try:
        return measure(mb, write, read)
    finally:
        os.unlink(path)


def raw_sqlite(path: str, mb: int) -> dict[str, float]:
    """The raw side for SQLite: sqlite3 with incremental blob I/O."""
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE IF NOT EXISTS big (k TEXT PRIMARY KEY, value BLOB)")

    def write() -> None:
        connection.execute("BEGIN IMMEDIATE")
        row = connection.execute(
            "INSERT OR REPLACE INTO big VALUES ('v', zeroblob(?))", (mb * MiB,)
        ).lastrowid
        with connection.blobopen("big", "value", row) as blob:  # type: ignore[arg-type]
            for chunk in chunks(mb):
                blob.write(chunk)
        connection.execute("COMMIT")

    def read() -> int:
        (row,) = connection.execute("SELECT rowid FROM big WHERE k = 'v'").fetchone()
        with connection.blobopen("big", "value", row, readonly=True) as blob:
            return read_handle(blob)

    try:
        return measure(mb, write, read)
    finally:
        connection.execute("DROP TABLE big")
        connection.close()


def raw_postgresql(dsn: str, mb: int) -> dict[str, float]:
    """The raw side for PostgreSQL: psycopg 3, binary COPY in and out."""
    import psycopg

    table = f"big_{uuid.uuid4().hex[:10]}"
    connection = psycopg.connect(dsn, autocommit=True)
    connection.execute(f"CREATE TABLE {table} (k TEXT PRIMARY KEY, value BYTEA)")

    def write() -> None:
        # Binary COPY: a header, one tuple of two fields (length-prefixed), streamed by chunk.
        key = b"v"
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {table} (k, value) FROM STDIN (FORMAT binary)") as copy,
        ):
            copy.write(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
            copy.write(struct.pack(">hi", 2, len(key)) + key + struct.pack(">i", mb * MiB))
            for chunk in chunks(mb):
                copy.write(chunk)
            copy.write(struct.pack(">h", -1))

    def read() -> int:
        total = 0
        with (
            connection.cursor() as cursor,
            cursor.copy(
                f"COPY (SELECT value FROM {table} WHERE k = 'v') TO STDOUT (FORMAT binary)"
            ) as copy,
        ):
            for block in copy:
                total += len(block)
        # The binary framing around the value: 19 header, 2 + 4 tuple, 2 trailer bytes.
        return total - 27

    try:
        return measure(mb, write, read)
    finally:
        connection.execute(f"DROP TABLE {table}")
        connection.close()


def raw_mariadb(_: str, mb: int) -> dict[str, float]:
    """The raw side for MariaDB: PyMySQL, one row per chunk, an unbuffered cursor to read."""
    import pymysql
    import pymysql.cursors

    table = f"big_{uuid.uuid4().hex[:10]}"
    connection = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {table} (k VARCHAR(255), seq INT, data LONGBLOB, PRIMARY KEY (k, seq))"
        )

    def write() -> None:
        with connection.cursor() as cursor:
            for seq, chunk in enumerate(chunks(mb)):
                cursor.execute(f"INSERT INTO {table} VALUES ('v', %s, %s)", (seq, chunk))
        connection.commit()

    def read() -> int:
        total = 0
        with connection.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT data FROM {table} WHERE k = 'v' ORDER BY seq")
            for (data,) in cursor:
                total += len(data)
        connection.commit()
        return total

    try:
        return measure(mb, write, read)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {table}")
        connection.close()


def raw_redis(url: str, mb: int) -> dict[str, float]:
    """The raw side for Redis: redis-py APPEND and GETRANGE."""
    import redis

    client = redis.Redis.from_url(url)
    key = f"bench-big-{uuid.uuid4().hex}"

    def write() -> None:
        for chunk in chunks(mb):
            client.append(key, chunk)

    def read() -> int:
        total = 0
        for start in range(0, mb * MiB, MiB):
            total += len(client.getrange(key, start, start + MiB - 1))  # type: ignore[arg-type]
        return total

    try:
        return measure(mb, write, read)
    finally:
        client.delete(key)


class _Chunks(io.RawIOBase):
    """A readable file of `mb` copies of CHUNK, for boto3's upload_fileobj."""

    def __init__(self, mb: int) -> None:
        self.left, self.position = mb * MiB, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view, source = memoryview(buffer).cast("B"), memoryview(CHUNK)
        size, done = min(len(view), self.left), 0
        while done < size:
            offset = (self.position + done) % MiB
            part = min(size - done, MiB - offset)
            view[done : done + part] = source[offset : offset + part]
            done += part
        self.position += size
        self.left -= size
        return size


def raw_s3(target: str, mb: int) -> dict[str, float]:
    """The raw side for S3: boto3 upload_fileobj and a streamed GET."""
    import boto3

    endpoint, bucket = target.rsplit("/", 1)
    client = boto3.client("s3", endpoint_url=endpoint)

    def write() -> None:
        client.upload_fileobj(_Chunks(mb), bucket, "big")

    def read() -> int:
        body = client.get_object(Bucket=bucket, Key="big")["Body"]
        return sum(len(chunk) for chunk in body.iter_chunks(MiB))

    try:
        return measure(mb, write, read)
    finally:
        client.delete_object(Bucket=bucket, Key="big")


RAW = {
    "memory": raw_memory,
    "local": raw_local,
    "sqlite": raw_sqlite,
    "postgresql": raw_postgresql,
    "mariadb": raw_mariadb,
    "redis": raw_redis,
    "s3": raw_s3,
}

if __name__ == "__main__":
    side = sys.argv[1]
    if side == "ours":
        figures = ours(sys.argv[2], int(sys.argv[3]))
    else:
        figures = RAW[sys.argv[2]](sys.argv[3], int(sys.argv[4]))
    print(json.dumps(figures))
