"""Settings of the Redis backend (prefix `ANYSTORE_REDIS_`); `get_store()` keywords win."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RedisSettings(BaseSettings):
    """Connection options shared by every Redis store of the process."""

    model_config = SettingsConfigDict(env_prefix="ANYSTORE_REDIS_", extra="ignore")

    socket_connect_timeout: float = Field(2.0, description="Seconds to wait for a connection.")
    socket_timeout: float = Field(10.0, description="Seconds to wait for a reply.")
    max_connections: int | None = Field(None, description="Pool size (None: unbounded).")
    health_check_interval: int = Field(30, description="Seconds between connection checks.")
    ssl_cert_reqs: str = Field("required", description="rediss://: none, optional, required.")
    ssl_ca_certs: str | None = Field(None, description="rediss://: CA bundle file.")
    ssl_certfile: str | None = Field(None, description="rediss://: client certificate file.")
    ssl_keyfile: str | None = Field(None, description="rediss://: client key file.")
