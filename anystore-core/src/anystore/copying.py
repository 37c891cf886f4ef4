"""Copying keys from one store to another, streaming, skipping what is already there.

Every write goes through `open(key, "wb")`, which publishes a value whole or not at all, so an
interrupted copy leaves no half values behind and running it again finishes the job: keys that
already match are skipped.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from anystore.exceptions import ConcurrentModification
from anystore.io import CHUNK_SIZE

if TYPE_CHECKING:
    from anystore.store import Store

# Values up to this size are compared by checksum as well as size before they are skipped;
# larger ones by size alone, since checksumming both sides would read them twice.
CHECKSUM_LIMIT = 16 * 1024 * 1024
# A key rewritten in the source while it was being copied is read again this often before the
# copy gives up on it with ConcurrentModification.
ATTEMPTS = 3


@dataclass
class CopyReport:
    """What a copy did: keys copied, skipped because they matched, and kept because they differ
    (with `overwrite=False`)."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.copied)} copied, {len(self.skipped)} skipped, {len(self.kept)} kept"


def _same(source: Store, target: Store, key: str, overwrite: bool) -> bool | None:
    """None if `key` is missing in target, else whether both sides hold the same bytes (by
    size alone for a value over CHECKSUM_LIMIT, unless `overwrite` asks for the truth)."""
    theirs = target.info(key, raise_on_nonexist=False)
    if theirs is None:
        return None
    ours = source.info(key, raise_on_nonexist=False)
    if ours is None or ours.size != theirs.size:
        return False
    if ours.size > CHECKSUM_LIMIT:
        # Replacing a value is what overwrite promises, so a changed value of the same size
        # must not pass as the same: compare the bytes, which stops at the first difference.
        return _same_bytes(source, target, key) if overwrite else True
    return source.checksum(key, raise_on_nonexist=False) == target.checksum(
        key, raise_on_nonexist=False
    )


def _same_bytes(source: Store, target: Store, key: str) -> bool:
    """Whether both sides hold the same bytes at `key`, read side by side in chunks."""
    ours = source.open(key, "rb", raise_on_nonexist=False)
    theirs = target.open(key, "rb", raise_on_nonexist=False)
    with ours or io.BytesIO(), theirs or io.BytesIO():
        if ours is None or theirs is None:
            return False
        while True:
            chunk = _read_full(ours, CHUNK_SIZE)
            if chunk != _read_full(theirs, CHUNK_SIZE):
                return False
            if not chunk:
                return True


def _read_full(handle: IO[bytes], size: int) -> bytes:
    """`size` bytes from `handle`, fewer only at its end (a read may return less)."""
    parts: list[bytes] = []
    while size > 0 and (part := handle.read(size)):
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _copy_value(source: Store, target: Store, key: str) -> bool:
    """Stream one value; False if it is gone. A source value rewritten mid-read raises
    `ConcurrentModification` in the reader, which discards the target's half-written value
    (never published), and is read again."""
    for attempt in range(ATTEMPTS):
        reader = source.open(key, "rb", raise_on_nonexist=False)
        if reader is None:
            return False
        try:
            with reader, target.open(key, "wb") as writer:
                shutil.copyfileobj(reader, writer, CHUNK_SIZE)
            return True
        except ConcurrentModification:
            if attempt == ATTEMPTS - 1:
                raise
    return False


def copy(
    source: Store,
    target: Store,
    *,
    prefix: str | None = None,
    glob: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> CopyReport:
    """Copy the keys of `source` (optionally under `prefix` / matching `glob`) to `target`.

    Values stream in 1 MiB chunks (bounded memory). A key that already holds the same bytes in
    `target` is skipped (over 16 MiB: the same size, unless `overwrite`, which compares the
    bytes); one that holds other bytes is replaced only with `overwrite=True`.
    `progress(key, outcome)` is called after each key ("copied", "skipped" or "kept"). A value
    that is rewritten while it is copied is read again (a target never gets a value made of two
    versions). Raises what the stores raise, `ConcurrentModification` when a key kept changing;
    a rerun after an interruption copies only what is missing.
    """
    report = CopyReport()
    for key in source.iterate_keys(prefix=prefix, glob=glob):
        same = _same(source, target, key, overwrite)
        if same:
            outcome = "skipped"
        elif same is False and not overwrite:
            outcome = "kept"
        elif _copy_value(source, target, key):
            outcome = "copied"
        else:  # deleted since it was listed
            continue
        getattr(report, outcome).append(key)
        if progress is not None:
            progress(key, outcome)
    return report
