"""`StoreOptions`: the behaviour a store is opened with, and the rule that resolves it.

Precedence: a per-call keyword wins over the store's option, which wins over the environment
(`ANYSTORE_*`, parsed by `anystore.settings`), which wins over the defaults below. The options are a
plain frozen dataclass, not a pydantic model, because they are read on every `get`/`put`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from anystore.exceptions import InvalidOption

if TYPE_CHECKING:
    from anystore.store import Store

T = TypeVar("T")

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
        for name in ("raise_on_nonexist", "store_none_values"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOption(f"{name} must be True or False, not {getattr(self, name)!r}")
        for name in ("serialization_func", "deserialization_func"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise InvalidOption(f"{name} must be a callable or None")
        if self.model is not None:
            check_model(self.model)

    def updated(self, **changes: Any) -> StoreOptions:
        """Return a copy with the non-None `changes` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


OPTION_NAMES = frozenset(f.name for f in fields(StoreOptions))


class StoreOption(Generic[T]):
    """A `Store` attribute that reads and replaces one field of `store.options`.

    `store.default_ttl = 60` takes effect on the next call; the new options are validated like
    get_store()'s (`InvalidOption`). The options stay one frozen object, which the hot paths read
    once per call.
    """

    name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, store: None, owner: type | None = None) -> StoreOption[T]: ...

    @overload
    def __get__(self, store: Store, owner: type | None = None) -> T: ...

    def __get__(self, store: Store | None, owner: type | None = None) -> Any:
        if store is None:
            return self
        return getattr(store.options, self.name)

    def __set__(self, store: Store, value: T) -> None:
        changes: dict[str, Any] = {self.name: value}
        store.options = replace(store.options, **changes)


def model_value(value: Any, model: type) -> Any:
    """`value` validated into the pydantic `model` (an instance passes as it is).

    Raises `SerializationError` naming what did not validate, `InvalidOption` for a non-model.
    """
    from anystore.exceptions import SerializationError

    check_model(model)
    validate = model.model_validate  # type: ignore[attr-defined]
    if isinstance(value, model):
        return value
    from pydantic import ValidationError

    try:
        return validate(value)
    except ValidationError as error:
        raise SerializationError(
            f"The value does not validate as {model.__name__}: {error}"
        ) from None


def check_model(model: Any) -> None:
    """Raise `InvalidOption` unless `model` is a pydantic model class (an instance, `dict` or a
    dataclass is not one); checked without importing pydantic."""
    if not isinstance(model, type) or not callable(getattr(model, "model_validate", None)):
        raise InvalidOption(
            f"model= must be a pydantic model class (a BaseModel subclass), not {model!r}"
        )


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


# Set while a configuration document is read, so that the get_store() inside smart_read() does
# not read the document again (and again).
_READING_CONFIG: ContextVar[bool] = ContextVar("anystore_reading_config", default=False)
# What a configuration document may set: the store's URI and the options a file can hold.
CONFIG_KEYS = frozenset(
    {"uri", "serialization_mode", "raise_on_nonexist", "default_ttl", "store_none_values"}
    | {"backend_config"}
)


def read_config(uri: str, kind: Literal["json", "yaml"]) -> dict[str, Any]:
    """The store configuration (`uri` plus options) in the JSON or YAML document at `uri`.

    `ttl` is taken as `default_ttl`. Raises `InvalidOption` for a document that is not a mapping
    of known, valid options, `DoesNotExist` when there is none, `NotSupported` for YAML without
    PyYAML (`pip install "anystore-core[yaml]"`).
    """
    from anystore.exceptions import DoesNotExist
    from anystore.smart import smart_read

    token = _READING_CONFIG.set(True)
    try:
        text = smart_read(uri)
    except DoesNotExist:
        # Said as what it is: smart_read's own message names a key of the document's folder.
        raise DoesNotExist(
            f"The store configuration document {uri} does not exist (named by "
            f"ANYSTORE_{kind.upper()}_URI or Store.from_{kind}_uri)"
        ) from None
    finally:
        _READING_CONFIG.reset(token)
    if kind == "yaml":
        try:
            import yaml
        except ImportError:
            from anystore.exceptions import NotSupported

            raise NotSupported(
                'Store configurations in YAML need PyYAML: pip install "anystore-core[yaml]" '
                "(or write the document as JSON and use ANYSTORE_JSON_URI)"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise InvalidOption(f"The store configuration at {uri} is not YAML: {error}") from None
    else:
        import orjson

        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise InvalidOption(f"The store configuration at {uri} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidOption(
            f"The store configuration at {uri} must be a mapping of options (uri, "
            f"serialization_mode, ...), not {type(data).__name__}"
        )
    if "ttl" in data:
        data["default_ttl"] = data.pop("ttl")
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise InvalidOption(
            f"Unknown option(s) {', '.join(map(str, unknown))} in the store configuration at "
            f"{uri}: it takes {', '.join(sorted(CONFIG_KEYS))}"
        )
    if not isinstance(data.get("uri", ""), str) or not isinstance(
        data.get("backend_config", {}), dict
    ):
        raise InvalidOption(f"In {uri}: uri must be a string and backend_config a mapping")
    StoreOptions(**{k: v for k, v in data.items() if k != "uri"})  # validates the values
    return data


def environment_options(with_document: bool = False) -> tuple[str | None, StoreOptions, set[str]]:
    """Read `ANYSTORE_*` from the environment and a `.env` file: (uri, options, disabled plugin
    names); `with_document` lays them over the configuration document `ANYSTORE_YAML_URI` /
    `ANYSTORE_JSON_URI` names (get_store() asks for it; plugin discovery, which only needs the
    disabled names, does not, so that reading the document never waits for discovery).

    pydantic-settings is imported only when such a variable or a `.env` file is there: start-up
    stays fast for the common case, and the settings are still validated with clear errors.
    Precedence: an `ANYSTORE_*` variable over the document over the defaults.
    """
    if not any(name.upper().startswith("ANYSTORE_") for name in os.environ) and not (
        os.path.isfile(".env")
    ):
        return None, StoreOptions(), set()
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from anystore.settings import Settings

    try:
        settings = Settings()
    except SettingsError as error:
        # A complex field (backend_config) whose variable is not JSON; pydantic-settings names
        # the field, not the variable, nor what is wrong with it.
        field = str(error).partition('"')[2].partition('"')[0]
        variable = f"ANYSTORE_{field.upper()}" if field else "an ANYSTORE_* variable"
        raise InvalidOption(
            f"Bad anystore setting in the environment: {variable} is not valid JSON "
            f"({error.__cause__ or error}); write a JSON object such as "
            "'{\"fsync\": true}', or set ANYSTORE_BACKEND_CONFIG__NAME variables instead"
        ) from None
    except ValidationError as error:
        problems = "; ".join(
            f"ANYSTORE_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidOption(f"Bad anystore setting in the environment: {problems}") from None
    values = effective_values(settings) if with_document else settings.model_dump()
    options = StoreOptions(**{name: values[name] for name in CONFIG_KEYS - {"uri"}})
    return values["uri"], options, settings.disabled_plugins


def effective_values(settings: Any) -> dict[str, Any]:
    """`settings` as a dict, with the configuration document's values where no `ANYSTORE_*`
    variable set them (a document's backend_config is merged under the variables')."""
    values: dict[str, Any] = settings.model_dump()
    explicit = settings.model_fields_set
    for name, value in config_document(settings).items():
        if name == "backend_config":
            values[name] = {**value, **(values[name] if name in explicit else {})}
        elif name not in explicit:
            values[name] = value
    return values


def config_document(settings: Any) -> dict[str, Any]:
    """The configuration read from `settings.yaml_uri`/`json_uri` ({} without one, or while a
    document is being read). Raises `InvalidOption` when both are set."""
    if _READING_CONFIG.get() or not (settings.yaml_uri or settings.json_uri):
        return {}
    if settings.yaml_uri and settings.json_uri:
        raise InvalidOption("Set ANYSTORE_YAML_URI or ANYSTORE_JSON_URI, not both")
    if settings.yaml_uri:
        return read_config(settings.yaml_uri, "yaml")
    return read_config(settings.json_uri, "json")
