"""`Stats`: what `Store.info()` tells about a stored value."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, computed_field


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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def name(self) -> str:
        """The key's last segment (`b.json` for `a/b.json`): computed, so `trusted` stays fast."""
        return self.key.rpartition("/")[2]

    @classmethod
    def trusted(
        cls,
        key: str,
        store: str,
        size: int,
        created_at: datetime,
        updated_at: datetime,
        mimetype: str,
        uri: str,
        expires_at: datetime | None,
    ) -> Stats:
        """Build Stats from values that are already of the right types, skipping validation.

        `Store.info()` is a hot path and its inputs come typed from `BackendStat`; this sets the
        same instance state that pydantic's `model_construct` sets, at a fraction of its cost.
        """
        stats = object.__new__(cls)
        values = {
            "key": key,
            "store": store,
            "size": size,
            "created_at": created_at,
            "updated_at": updated_at,
            "mimetype": mimetype,
            "uri": uri,
            "expires_at": expires_at,
        }
        setattr_ = object.__setattr__
        setattr_(stats, "__dict__", values)
        setattr_(stats, "__pydantic_fields_set__", _ALL_FIELDS)
        setattr_(stats, "__pydantic_extra__", None)
        setattr_(stats, "__pydantic_private__", None)
        return stats


_ALL_FIELDS = set(Stats.model_fields)


def guess_mimetype(key: str) -> str:
    """The mimetype of `key` by its extension (`application/octet-stream` if unknown)."""
    name = key.rpartition("/")[2]
    dot = name.find(".", 1)  # from the first dot: '.tar.gz' is a tar, as mimetypes says
    return _by_extension(name[dot:] if dot > 0 else "")


@lru_cache(maxsize=1024)
def _by_extension(extension: str) -> str:
    import mimetypes

    return mimetypes.guess_type("x" + extension)[0] or "application/octet-stream"
