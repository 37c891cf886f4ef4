"""`Stats`: what `Store.info()` tells about a stored value."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Stats(BaseModel):
    """Metadata about one key: its size, times, mimetype and where it lives."""

    model_config = ConfigDict(frozen=True)

    key: str
    """The key, relative to the store."""
    store: str
    """The URI of the store that was asked (passwords masked)."""
    size: int
    """The stored value's length in bytes."""
    created_at: datetime
    """When the key was first written (timezone-aware UTC); equals updated_at where a backend
    cannot keep it across overwrites."""
    updated_at: datetime
    """When the value was last written (timezone-aware UTC)."""
    mimetype: str
    """From the backend if it keeps one, else guessed from the key's extension."""
    uri: str
    """A URI for the value itself (the store URI joined with the key)."""
    expires_at: datetime | None = None
    """When the key stops being visible, if it has a TTL."""
