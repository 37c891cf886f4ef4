"""What a user could write instead of anystore: each backend's raw client doing the same small ops.

Every raw side stores 100-byte values with the same keys as `store_ops.store_rep`, and gives the
same ops: put, get (decoded to str, as anystore returns it), exists, info (size and a time where
the medium keeps one), delete, and a listing of every key. Durability settings match anystore's
(SQLite: WAL, synchronous=NORMAL; autocommit everywhere; local puts are atomic via os.replace).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from common import VALUE

DATA = VALUE.encode()
Ops = dict[str, Callable[[str], object]]


class Raw:
    """One raw side: `ops` by name, `iterate()` (how many keys it listed), `close()`."""

    ops: Ops

    def iterate(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Drop what the side made (tables, key prefixes)."""


class RawMemory(Raw):
    """A dict, each op a call of a small function (as a store call is)."""

    def __init__(self) -> None:
        data: dict[str, tuple[bytes, float]] = {}
        self.data = data

        def put(key: str) -> None:
            data[key] = (DATA, time.time())

        def info(key: str) -> tuple[int, float]:
            value, updated = data[key]
            return len(value), updated

        self.ops = {
            "put": put,
            "get": lambda k: data[k][0].decode(),
            "exists": lambda k: k in data,
            "info": info,
            "delete": lambda k: data.pop(k, None),
        }

    def iterate(self) -> int:
        return sum(1 for _ in list(self.data))


class RawFiles(Raw):
    """open() + os.replace() (atomic puts), os.stat, os.unlink, an os.scandir walk."""

    def __init__(self, root: str) -> None:
        self.root = root
        for i in range(100):
            os.makedirs(os.path.join(root, f"{i:02d}"), exist_ok=True)

        def put(key: str) -> None:
            path = os.path.join(root, key)
            temp = path + ".tmp"
            with open(temp, "wb") as handle:
                handle.write(DATA)
            os.replace(temp, path)

        def get(key: str) -> str:
            with open(os.path.join(root, key), "rb") as handle:
                return handle.read().decode()

        def info(key: str) -> tuple[int, float]:
            result = os.stat(os.path.join(root, key))
            return result.st_size, result.st_mtime

        self.ops = {
            "put": put,
            "get": get,
            "exists": lambda k: os.path.isfile(os.path.join(root, k)),
            "info": info,
            "delete": lambda k: os.unlink(os.path.join(root, k)),
        }

    def _walk(self, folder: str) -> Iterator[str]:
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(entry.path)
            else:
                yield entry.path

    def iterate(self) -> int:
        return sum(1 for _ in self._walk(self.root))


class _RawSQL(Raw):
    """The same statements on any DBAPI connection in autocommit mode."""

    def _setup(self, connection: Any, table: str, upsert: str, mark: str) -> None:
        self.connection, self.table = connection, table
        cursor = self.cursor = connection.cursor()
        get = f"SELECT value FROM {table} WHERE k = {mark}"
        exists = f"SELECT 1 FROM {table} WHERE k = {mark}"
        info = f"SELECT length(value), updated FROM {table} WHERE k = {mark}"
        delete = f"DELETE FROM {table} WHERE k = {mark}"

        def put(key: str) -> None:
            cursor.execute(upsert, (key, DATA, time.time()))

        def fetch(sql: str) -> Callable[[str], Any]:
            def run(key: str) -> Any:
                cursor.execute(sql, (key,))
                return cursor.fetchone()

            return run

        def get_value(key: str) -> str:
            cursor.execute(get, (key,))
            return bytes(cursor.fetchone()[0]).decode()

        exists_row = fetch(exists)
        self.ops = {
            "put": put,
            "get": get_value,
            "exists": lambda k: exists_row(k) is not None,
            "info": fetch(info),
            "delete": lambda k: cursor.execute(delete, (k,)),
        }

    def iterate(self) -> int:
        self.cursor.execute(f"SELECT k FROM {self.table}")
        return sum(1 for _ in self.cursor)

    def close(self) -> None:
        self.cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
        self.connection.close()


class RawSQLite(_RawSQL):
    """The stdlib sqlite3 module, WAL and synchronous=NORMAL as anystore sets them."""

    def __init__(self, path: str, table: str) -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(
            f"CREATE TABLE {table} (k TEXT PRIMARY KEY, value BLOB NOT NULL, updated REAL)"
        )
        upsert = (
            f"INSERT INTO {table} VALUES (?, ?, ?) ON CONFLICT(k) DO UPDATE "
            "SET value = excluded.value, updated = excluded.updated"
        )
        self._setup(connection, table, upsert, "?")


class RawPostgres(_RawSQL):
    """psycopg 3, autocommit; it prepares a statement on the server after its 5th run."""

    def __init__(self, dsn: str, table: str) -> None:
        import psycopg

        connection = psycopg.connect(dsn, autocommit=True)
        connection.execute(
            f"CREATE TABLE {table} (k TEXT PRIMARY KEY, value BYTEA NOT NULL, updated FLOAT8)"
        )
        upsert = (
            f"INSERT INTO {table} VALUES (%s, %s, %s) ON CONFLICT (k) DO UPDATE "
            "SET value = excluded.value, updated = excluded.updated"
        )
        self._setup(connection, table, upsert, "%s")


class RawMariaDB(_RawSQL):
    """PyMySQL, autocommit."""

    def __init__(self, table: str) -> None:
        import pymysql

        connection = pymysql.connect(
            host="127.0.0.1", port=3306, user="root", database="test", autocommit=True
        )
        connection.cursor().execute(
            f"CREATE TABLE {table} (k VARCHAR(255) PRIMARY KEY, value LONGBLOB NOT NULL, "
            "updated DOUBLE) ENGINE=InnoDB"
        )
        upsert = (
            f"INSERT INTO {table} VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE "
            "value = VALUES(value), updated = VALUES(updated)"
        )
        self._setup(connection, table, upsert, "%s")


class RawRedis(Raw):
    """redis-py: SET, GET, EXISTS, STRLEN, DEL, SCAN (MATCH prefix, COUNT 1000)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        client = self.client = redis.Redis.from_url(url)
        self.prefix = prefix
        self.ops = {
            "put": lambda k: client.set(prefix + k, DATA),
            "get": lambda k: client.get(prefix + k).decode(),  # type: ignore[union-attr]
            "exists": lambda k: client.exists(prefix + k),
            "info": lambda k: client.strlen(prefix + k),
            "delete": lambda k: client.delete(prefix + k),
        }

    def iterate(self) -> int:
        return sum(1 for _ in self.client.scan_iter(match=self.prefix + "*", count=1000))

    def close(self) -> None:
        for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            self.client.delete(key)
        self.client.close()


class RawS3(Raw):
    """boto3: put_object, get_object, head_object (exists, info), delete_object, a paginator."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        import boto3
        from botocore.exceptions import ClientError

        client = self.client = boto3.client("s3", endpoint_url=endpoint)
        self.bucket = bucket

        def exists(key: str) -> bool:
            try:
                client.head_object(Bucket=bucket, Key=key)
                return True
            except ClientError:
                return False

        def info(key: str) -> tuple[int, Any]:
            head = client.head_object(Bucket=bucket, Key=key)
            return head["ContentLength"], head["LastModified"]

        self.ops = {
            "put": lambda k: client.put_object(Bucket=bucket, Key=k, Body=DATA),
            "get": lambda k: client.get_object(Bucket=bucket, Key=k)["Body"].read().decode(),
            "exists": exists,
            "info": info,
            "delete": lambda k: client.delete_object(Bucket=bucket, Key=k),
        }

    def iterate(self) -> int:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sum(page.get("KeyCount", 0) for page in pages)
