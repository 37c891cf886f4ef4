"""What S3 answered, in the terms the backend acts on.

The backend calls the aiobotocore client directly, so every botocore error passes through
`translate` once: a missing object or upload becomes `Missing`, a failed precondition `Refused`,
a deleted bucket or an unreachable endpoint `BackendUnavailable` naming the bucket, refused
credentials `Denied`. Everything else is an `AnystoreError` with S3's code and message, so a user
never sees a raw client exception. Messages pass through `mask_uri`, in case an endpoint carried
credentials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from anystore.exceptions import (
    AnystoreError,
    BackendUnavailable,
    InvalidKey,
    InvalidOption,
    mask_uri,
)

T = TypeVar("T")


class Runner(Protocol):
    """Runs a coroutine on the client's event loop and returns its result (errors translated)."""

    def __call__(self, awaitable: Awaitable[T]) -> T: ...


_MISSING = {"NoSuchKey", "NoSuchUpload", "NotFound", "404"}
_REFUSED = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_DENIED = {
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidToken",
    "ExpiredToken",
}
_UNSUPPORTED = {"NotImplemented", "501"}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


class Missing(FileNotFoundError):
    """The object (or multipart upload) does not exist; the bucket does."""


class Refused(OSError):
    """S3 refused a conditional request: the object changed, or the name is taken."""


class Denied(PermissionError):
    """The credentials were refused for this request."""


class Unsupported(OSError):
    """The endpoint does not implement this request (or one of its headers)."""


def error_code(error: BaseException) -> tuple[str, int]:
    """The S3 error code and HTTP status of a botocore `ClientError` ("", 0 for other errors)."""
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


def translate(error: BaseException, method: str, bucket: str, where: str) -> BaseException:
    """The exception to raise instead of `error`, which `method` on `bucket` raised."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(error, AnystoreError):
        return error
    if isinstance(error, ClientError):
        code, status = error_code(error)
        message = mask_uri(str(error.response.get("Error", {}).get("Message", "") or error))
        if code == "NoSuchBucket":
            return BackendUnavailable(
                f"S3 {where} does not exist (deleted after the store was opened?): create "
                f"bucket {bucket!r} or open a store on an existing one"
            )
        if code in _MISSING or status == 404:
            return Missing(message)
        if code in _REFUSED or status in (409, 412):
            return Refused(message)
        if code in _DENIED or status == 403:
            return Denied(f"{code}: {message}")
        if code in _UNSUPPORTED or status == 501:
            return Unsupported(message)
        if code == "KeyTooLongError":
            return InvalidKey(f"S3 {where} refused the key as too long: {message}")
        if code in _BUSY or status >= 500:
            return BackendUnavailable(f"S3 {where} failed {method} ({code}): {message}")
        return AnystoreError(f"S3 {where} refused {method} ({code or status}): {message}")
    from botocore.exceptions import ParamValidationError

    if isinstance(error, ParamValidationError):
        # Checked on the client before any request: bad input (a bucket name S3 never allows),
        # not an outage. botocore's report spans lines; an error message is one.
        report = " ".join(mask_uri(str(error)).split())
        return InvalidOption(f"S3 {where}: {report}")
    if isinstance(error, (BotoCoreError, OSError, asyncio.TimeoutError)) or _is_aiohttp(error):
        return BackendUnavailable(f"S3 {where} is unavailable: {mask_uri(str(error))}")
    return error


def _is_aiohttp(error: BaseException) -> bool:
    return type(error).__module__.startswith("aiohttp")
