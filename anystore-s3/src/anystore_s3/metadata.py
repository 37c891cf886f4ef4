"""The user metadata anystore keeps on S3 objects (sent as `x-amz-meta-*` headers)."""

from __future__ import annotations

# Seconds since the epoch after which the object counts as gone.
EXPIRES = "anystore-expires"
# The holder's token on a lock object.
LOCK_TOKEN = "anystore-lock-token"


def expired(metadata: dict[str, str] | None, now: float) -> bool:
    """Tell whether an object's metadata names an expiry that has passed."""
    value = (metadata or {}).get(EXPIRES)
    return value is not None and float(value) <= now
