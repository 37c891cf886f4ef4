"""Copying keys from one store to another, streaming, skipping what is already there.

Every write goes through `open(key, "wb")`, which publishes a value whole or not at all, so an
interrupted copy leaves no half values behind and running it again finishes the job: keys that
already match are skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

from anystore.io import CHUNK_SIZE
from anystore.store import Store

# Values up to this size are compared by checksum as well as size before they are skipped;
# larger ones by size alone, since checksumming both sides would read them twice.
CHECKSUM_LIMIT = 16 * 1024 * 1024


@dataclass
class CopyReport:
    """What a copy did: keys copied, skipped because they matched, and kept because they differ
    (with `overwrite=False`)."""

    copied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.copied)} copied, {len(self.skipped)} skipped, {len(self.kept)} kept"


def _same(source: Store, target: Store, key: str) -> bool | None:
    """None if `key` is missing in target, else whether both sides hold the same bytes."""
    theirs = target.info(key, raise_on_nonexist=False)
    if theirs is None:
        return None
    ours = source.info(key, raise_on_nonexist=False)
    if ours is None or ours.size != theirs.size:
        return False
    if ours.size > CHECKSUM_LIMIT:
        return True
    return source.checksum(key, raise_on_nonexist=False) == target.checksum(
        key, raise_on_nonexist=False
    )


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
    `target` is skipped; one that holds other bytes is replaced only with `overwrite=True`.
    `progress(key, outcome)` is called after each key ("copied", "skipped" or "kept"). Raises
    what the stores raise; a rerun after an interruption copies only what is missing.
    """
    report = CopyReport()
    for key in source.iterate_keys(prefix=prefix, glob=glob):
        same = _same(source, target, key)
        if same:
            outcome = "skipped"
        elif same is False and not overwrite:
            outcome = "kept"
        else:
            reader = source.open(key, "rb", raise_on_nonexist=False)
            if reader is None:  # deleted since it was listed
                continue
            with reader, target.open(key, "wb") as writer:
                shutil.copyfileobj(reader, writer, CHUNK_SIZE)  # type: ignore[misc]
            outcome = "copied"
        getattr(report, outcome).append(key)
        if progress is not None:
            progress(key, outcome)
    return report
