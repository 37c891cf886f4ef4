"""Self-verifying values: each one names its key, its writer and a sequence number, and carries a
checksum of its body, so a reader can tell a whole value from a torn, short or misplaced one.

    AV1|<key>|<writer>|<seq>|<size>|<sha256 of body, hex>\\n<body of size bytes>

The body is a pattern derived from (key, writer, seq): two versions of one key never share a body,
so bytes of two versions mixed into one value fail the check. Also the two helpers that name an
exception in the tables (`kind`, `one_line`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAGIC = b"AV1"


def one_line(error: BaseException, limit: int = 240) -> str:
    """An exception's message on one line (its lines joined), cut to `limit` characters."""
    text = " / ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text[:limit]


def kind(error: BaseException) -> str:
    """An exception's type name, with the module for foreign (non-anystore, non-builtin) ones."""
    module = type(error).__module__
    if module in ("builtins",) or module.startswith("anystore"):
        return type(error).__name__
    return f"{module}.{type(error).__name__}"


class Torn(Exception):
    """The bytes read are not one whole value of the key asked for; the message says why."""


@dataclass(frozen=True)
class Version:
    """Who wrote a value: the writer's id and its sequence number."""

    writer: str
    seq: int


def body(key: str, writer: str, seq: int, size: int) -> bytes:
    """The deterministic body of `size` bytes for this key, writer and sequence number."""
    block = hashlib.sha256(f"{key}|{writer}|{seq}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def encode(key: str, writer: str, seq: int, size: int) -> bytes:
    """One self-verifying value of about `size` bytes (header included)."""
    data = body(key, writer, seq, size)
    digest = hashlib.sha256(data).hexdigest()
    return (
        b"|".join(
            [MAGIC, key.encode(), writer.encode(), b"%d" % seq, b"%d" % size, digest.encode()]
        )
        + b"\n"
        + data
    )


def verify(key: str, data: bytes) -> Version:
    """The version `data` holds if it is one whole value written at `key`; raises `Torn`."""
    head, newline, rest = data.partition(b"\n")
    fields = head.split(b"|")
    if not newline or len(fields) != 6 or fields[0] != MAGIC:
        raise Torn(f"no header ({len(data)} bytes)")
    _, named, writer, seq, size, digest = fields
    if named.decode(errors="replace") != key:
        raise Torn(f"value of another key ({named.decode(errors='replace')!r})")
    if len(rest) != int(size):
        raise Torn(f"short or long body ({len(rest)} of {int(size)} bytes)")
    if hashlib.sha256(rest).hexdigest().encode() != digest:
        raise Torn("checksum mismatch (bytes of two versions mixed)")
    version = Version(writer.decode(), int(seq))
    if rest != body(key, version.writer, version.seq, len(rest)):
        raise Torn("body of another version")
    return version
