"""`StoreOptions`: the behaviour a store is opened with, and the rule that resolves it.

Precedence: a per-call keyword wins over the store's option, which wins over the environment
(`ANYSTORE_*`, parsed by `anystore.settings`), which wins over the defaults below. The options are a
plain frozen dataclass, not a pydantic model, because they are read on every `get`/`put`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from anystore.exceptions import InvalidOption

SerializationMode = Literal["auto", "raw", "json", "pickle"]
SERIALIZATION_MODES: tuple[SerializationMode, ...] = ("auto", "raw", "json", "pickle")
# What `Store.open()` takes: binary and text, for reading and for writing.
ReadMode = Literal["rb", "r"]
WriteMode = Literal["wb", "w"]
# The store get_store() opens when neither its argument nor ANYSTORE_URI names one.
DEFAULT_URI = ".anystore"


@dataclass(frozen=True)
class StoreOptions:
    """Options of one store; each can also be passed per call to the methods that use it."""

    serialization_mode: SerializationMode = "auto"
    raise_on_nonexist: bool = True
    default_ttl: int | None = None
    store_none_values: bool = True
    model: type | None = None
    serialization_func: Callable[[Any], Any] | None = None
    deserialization_func: Callable[[bytes], Any] | None = None
    backend_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mode(self.serialization_mode)
        check_ttl(self.default_ttl, "default_ttl")

    def updated(self, **changes: Any) -> StoreOptions:
        """Return a copy with the non-None `changes` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


OPTION_NAMES = frozenset(f.name for f in fields(StoreOptions))


def check_mode(mode: str) -> None:
    """Raise `InvalidOption` for an unknown serialization mode."""
    if mode not in SERIALIZATION_MODES:
        raise InvalidOption(
            f"Unknown serialization_mode {mode!r}: choose one of {', '.join(SERIALIZATION_MODES)}"
        )


def check_ttl(ttl: float | None, name: str = "ttl") -> None:
    """Raise `InvalidOption` for a TTL that is not a positive, finite number of seconds."""
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise InvalidOption(f"{name} must be a positive number of seconds, not {ttl!r}")


def environment_options() -> tuple[str | None, StoreOptions, set[str]]:
    """Read `ANYSTORE_*` from the environment: (uri, options, disabled plugin names).

    pydantic-settings is imported only when such a variable is set: start-up stays fast for the
    common case, and the environment is still validated with clear errors when it is used.
    """
    if not any(name.upper().startswith("ANYSTORE_") for name in os.environ):
        return None, StoreOptions(), set()
    from pydantic import ValidationError

    from anystore.settings import Settings

    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"ANYSTORE_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidOption(f"Bad anystore setting in the environment: {problems}") from None
    options = StoreOptions(
        serialization_mode=settings.serialization_mode,
        raise_on_nonexist=settings.raise_on_nonexist,
        default_ttl=settings.default_ttl,
        store_none_values=settings.store_none_values,
        backend_config=settings.backend_config,
    )
    return settings.uri, options, settings.disabled_plugins
