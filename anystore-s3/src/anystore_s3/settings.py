"""Settings of the S3 backend (prefix `ANYSTORE_S3_`).

Precedence: `get_store()` keywords, then these, then the standard AWS environment variables and
profiles (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseSettings):
    """Connection options of an S3 store."""

    model_config = SettingsConfigDict(env_prefix="ANYSTORE_S3_", extra="ignore")

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, R2...).")
    region: str | None = Field(None, description="Region name.")
    access_key_id: str | None = Field(None, description="Access key id.")
    secret_access_key: str | None = Field(None, description="Secret access key.")
    session_token: str | None = Field(None, description="Session token.")
    anon: bool = Field(False, description="Anonymous access (public buckets).")
    connect_timeout: float = Field(
        3.0, gt=0, description="Seconds to wait for a TCP connection, per attempt."
    )
    read_timeout: float = Field(
        15.0, gt=0, description="Seconds to wait for the next bytes of a response, per attempt."
    )
    max_attempts: int = Field(
        2, ge=1, description="Attempts per request (botocore standard retries), the first included."
    )
    max_concurrency: int = Field(32, ge=1, description="Requests in flight for batch calls.")
    part_size: int = Field(
        5 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Bytes per multipart part of open('wb') (S3's minimum: 5 MiB).",
    )
    upload_concurrency: int = Field(
        2, ge=1, description="Parts of one open('wb') upload in flight at once."
    )
    upload_checksums: bool = Field(
        True,
        description="Send each multipart part's CRC32 (S3 checks it on arrival); turn off for an "
        "S3-compatible service that refuses x-amz-checksum headers.",
    )
