"""`Stats`: what `Store.info()` tells about a stored value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from types import GetSetDescriptorType, MemberDescriptorType

from pydantic import BaseModel, ConfigDict, computed_field


def _slot_setter(name: str) -> Callable[[object, object], None]:
    """What sets the `BaseModel` slot `name` (or its `__dict__`) on an instance: its descriptor
    where it is one (a third faster than `object.__setattr__`), else `object.__setattr__`."""
    descriptor = BaseModel.__dict__.get(name)
    if isinstance(descriptor, (MemberDescriptorType, GetSetDescriptorType)):
        return descriptor.__set__

    def set_slot(instance: object, value: object) -> None:
        object.__setattr__(instance, name, value)

    return set_slot


_new = object.__new__
_set_dict = _slot_setter("__dict__")
_set_fields_set = _slot_setter("__pydantic_fields_set__")
_set_extra = _slot_setter("__pydantic_extra__")
_set_private = _slot_setter("__pydantic_private__")


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
        stats = _new(cls)
        _set_dict(
            stats,
            {
                "key": key,
                "store": store,
                "size": size,
                "created_at": created_at,
                "updated_at": updated_at,
                "mimetype": mimetype,
                "uri": uri,
                "expires_at": expires_at,
            },
        )
        _set_fields_set(stats, _ALL_FIELDS)
        _set_extra(stats, None)
        _set_private(stats, None)
        return stats


_ALL_FIELDS = set(Stats.model_fields)
OCTET_STREAM = "application/octet-stream"


def guess_mimetype(key: str) -> str:
    """The mimetype of `key` by its extension (`application/octet-stream` if unknown)."""
    # From the first dot of the last segment, past its first character: '.tar.gz' is a tar,
    # as mimetypes says, and '.bashrc' has no extension.
    dot = key.find(".", key.rfind("/") + 2)
    return _by_extension(key[dot:]) if dot > 0 else OCTET_STREAM


@lru_cache(maxsize=1024)
def _by_extension(extension: str) -> str:
    import mimetypes

    return mimetypes.guess_type("x" + extension)[0] or OCTET_STREAM
