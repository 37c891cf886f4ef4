"""Every error anystore raises on purpose.

One base class, `AnystoreError`, so that callers can catch everything of ours at once; the
subclasses also inherit the matching builtin (`FileNotFoundError`, `ValueError`, ...) so that code
written against plain files keeps working. Backends translate their client's errors into these:
a user never has to catch `redis.ConnectionError` or a botocore error.
"""

from __future__ import annotations

import re


class AnystoreError(Exception):
    """Base class of every error raised by anystore and its backends."""


class DoesNotExist(AnystoreError, FileNotFoundError):
    """The key is not in the store (or its TTL has passed)."""


class InvalidKey(AnystoreError, ValueError):
    """A key, prefix or glob is malformed or would escape the store's root."""


class SerializationError(AnystoreError, ValueError):
    """A value cannot be encoded, or stored bytes cannot be decoded, in the chosen mode."""


class InvalidOption(AnystoreError, ValueError):
    """An option (serialization mode, ttl, open mode, checksum algorithm...) has a bad value."""


class BackendNotFound(AnystoreError, LookupError):
    """No installed plugin serves the URI's scheme."""


class BackendUnavailable(AnystoreError, ConnectionError):
    """The backend's server or medium cannot be reached right now."""


class ReadOnly(AnystoreError, PermissionError):
    """The store (or the protocol behind it) cannot be written."""


class PluginError(AnystoreError, RuntimeError):
    """A plugin is broken: an unknown hook, a scheme claimed twice, a bad registration."""


class PluginWarning(UserWarning):
    """A plugin failed to load; the other plugins' schemes still work (`anystore backends`)."""


class LockError(AnystoreError, RuntimeError):
    """A lock could not be acquired in time, or expired before it was released."""


class NotSupported(AnystoreError, NotImplementedError):
    """The backend cannot do this safely (for example, lock without an atomic create)."""


class ConcurrentModification(AnystoreError, RuntimeError):
    """Another writer changed the data while this operation ran; retrying it is safe.

    A read handle raises it on the next read when its value was overwritten or deleted after the
    handle was opened and the backend cannot keep serving the old version (a read never returns
    bytes of two versions, nor a silently short value). A write raises it when it kept colliding
    with other writers (for example SQL deadlocks) after a bounded number of retries.
    """


_PASSWORD_IN_URI = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*:)(?P<secret>[^/@]*)@")
_SECRET_PARAM = re.compile(
    r"(?P<head>[?&](?:password|secret|token|key|secret_access_key|session_token)=)[^&]*",
    re.IGNORECASE,
)


def mask_uri(uri: str) -> str:
    """Return `uri` with any password or secret query parameter replaced by `***`."""
    masked = _PASSWORD_IN_URI.sub(r"\g<head>***@", uri)
    return _SECRET_PARAM.sub(r"\g<head>***", masked)
