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
    connect_timeout: float = Field(3.0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(30.0, description="Seconds to wait for a response.")
    max_concurrency: int = Field(32, description="Requests in flight for batch calls.")
