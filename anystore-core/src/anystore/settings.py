"""Settings read from the environment (prefix `ANYSTORE_`, nested delimiter `__`) and a `.env` file.

`ANYSTORE_YAML_URI` / `ANYSTORE_JSON_URI` name a document (at any URI) holding a store
configuration; its values come after the `ANYSTORE_*` variables (see `anystore.options`).

Keyword options to `get_store()` win over these, and these win over the defaults. Plugins add their
own classes with their own prefix (`ANYSTORE_REDIS_`, `ANYSTORE_SQL_`, ...).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from anystore.options import DEFAULT_URI, SerializationMode

S = TypeVar("S", bound=BaseSettings)

__all__ = ["SerializationMode", "Settings", "load_settings"]


class Settings(BaseSettings):
    """The core settings; each field is also a `get_store()` keyword (`uri` is its argument)."""

    model_config = SettingsConfigDict(
        env_prefix="ANYSTORE_",
        env_nested_delimiter="__",
        extra="ignore",
        # A .env file in the working directory, read as pydantic-settings reads it; variables in
        # the environment win over it.
        env_file=".env",
        env_file_encoding="utf-8",
    )

    uri: str = Field(DEFAULT_URI, description="The store opened by get_store() without a URI.")
    serialization_mode: SerializationMode = Field("auto", description="auto, raw, json or pickle.")
    raise_on_nonexist: bool = Field(True, description="Raise DoesNotExist for a missing key.")
    default_ttl: int | None = Field(None, description="Seconds until a written key expires.")
    store_none_values: bool = Field(True, description="Store None as JSON null (else skip).")
    backend_config: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword options passed to the backend."
    )
    yaml_uri: str | None = Field(
        None, description="A YAML document (any URI) with the store's uri and options."
    )
    json_uri: str | None = Field(
        None, description="A JSON document (any URI) with the store's uri and options."
    )
    disable_plugins: str = Field(
        "", description="Comma-separated plugin names not to load (entry-point names)."
    )

    @field_validator("default_ttl")
    @classmethod
    def _ttl_positive(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("default_ttl must be a positive number of seconds, or unset")
        return value

    @property
    def disabled_plugins(self) -> set[str]:
        """The names in `disable_plugins`, stripped, without empties."""
        return {name.strip() for name in self.disable_plugins.split(",") if name.strip()}


def load_settings(settings_class: type[S], options: dict[str, Any]) -> S:
    """Build a plugin's settings from `get_store()` keywords over its environment variables.

    Raises `InvalidOption` naming each bad or unknown option, so a typo never passes silently.
    """
    from anystore.exceptions import InvalidOption

    unknown = sorted(set(options) - set(settings_class.model_fields))
    if unknown:
        raise InvalidOption(
            f"Unknown option(s) {', '.join(unknown)} for this backend: it takes "
            f"{', '.join(sorted(settings_class.model_fields))}"
        )
    try:
        return settings_class(**options)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise InvalidOption(f"Bad backend option: {problems}") from None
