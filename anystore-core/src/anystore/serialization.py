"""Turning values into bytes and back, in the modes `auto`, `raw`, `json` and `pickle`.

`auto` never pickles and never unpickles: unpickling bytes that someone else wrote runs their code,
so `pickle` must be chosen explicitly, on write and on read.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

import orjson

from anystore.exceptions import SerializationError
from anystore.options import check_mode, check_model

# The first byte of anything orjson could parse (after optional whitespace). Checking it first
# keeps `auto` from raising and catching a JSON error for every plain-text value.
_JSON_START = frozenset(b'{["-0123456789tfn \t\r\n')
# No OPT_NON_STR_KEYS: {1: "a"} would come back as {"1": "a"}, a silent change; refused instead.
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def _pydantic_base() -> type | None:
    # A value can only be a pydantic model if pydantic is already imported; asking sys.modules
    # keeps pydantic's import cost off the start-up of stores that never see a model.
    pydantic = sys.modules.get("pydantic")
    return pydantic.BaseModel if pydantic is not None else None


def _json_default(value: Any) -> Any:
    base = _pydantic_base()
    if base is not None and isinstance(value, base):
        return value.model_dump(mode="json")  # type: ignore[attr-defined]
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(type(value).__name__)


def _non_finite(value: Any) -> bool:
    """True if a float NaN or infinity hides in `value` (orjson would write it as null)."""
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_non_finite(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_non_finite(item) for item in value)
    return False


def to_json(value: Any) -> bytes:
    """Encode `value` as JSON bytes, or raise `SerializationError` where JSON would change it.

    Refused rather than changed silently: dict keys that are not str (`{1: "a"}` would come back
    as `{"1": "a"}`), NaN and infinities (JSON has none: they would come back as None), integers
    beyond 64 bits. Tuples and sets become lists, datetimes ISO strings (documented).
    """
    try:
        data = orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as error:
        reason = str(error)
        if "Dict key must be str" in reason:
            key = _non_str_key(value)
            if isinstance(key, (int, float)):  # what JSON would make of it: its str
                change = f"the key {key!r} would come back as {str(key)!r}"
            else:
                change = f"the key {key!r} would not come back as it was"
            hint = f"JSON keys are strings, so {change}: use str keys"
        elif "64-bit" in reason:
            hint = "JSON numbers here stop at 64 bits: store the integer as a str"
        else:
            hint = "convert it to a JSON type or a pydantic model"
        raise SerializationError(
            f"Cannot encode a value of type {type(value).__name__} as JSON ({reason}); {hint}, "
            "or choose "
            "serialization_mode='pickle' explicitly (on write and on read)."
        ) from None
    if b"null" in data and _non_finite(value):
        raise SerializationError(
            f"Cannot encode a value of type {type(value).__name__} holding NaN or infinity as "
            "JSON: it would "
            "come back as None. Store it as a str, or choose serialization_mode='pickle'."
        )
    return data


def _non_str_key(value: Any, depth: int = 0) -> Any:
    """The first dict key in `value` (searched through dicts, lists and tuples) that is not a
    str, for the message; None if none is found."""
    if depth > 100:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return key
            found = _non_str_key(item, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _non_str_key(item, depth + 1)
            if found is not None:
                return found
    return None


def encode(value: Any, mode: str, func: Callable[[Any], Any] | None = None) -> bytes:
    """Turn `value` into the bytes to store; raises `SerializationError` if the mode cannot."""
    if func is not None:
        value = func(value)
    if mode == "auto":
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        base = _pydantic_base()
        if base is not None and isinstance(value, base):
            return value.model_dump_json().encode("utf-8")  # type: ignore[attr-defined,no-any-return]
        return to_json(value)
    if mode == "raw":
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        raise SerializationError(
            f"serialization_mode='raw' stores bytes, not {type(value).__name__}: encode the value "
            "yourself or use serialization_mode='auto'."
        )
    if mode == "json":
        return to_json(value)
    if mode == "pickle":
        import pickle

        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            raise SerializationError(f"Cannot pickle {type(value).__name__}: {error}") from error
    check_mode(mode)  # raises InvalidOption, as an unknown mode on the store does
    raise AssertionError(mode)


def decode_auto(data: bytes) -> Any:
    """JSON if the bytes are JSON, else UTF-8 text, else the bytes themselves."""
    if data and data[0] in _JSON_START:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def decode(
    data: bytes,
    mode: str,
    model: type | None = None,
    func: Callable[[bytes], Any] | None = None,
) -> Any:
    """Turn stored bytes back into a value; raises `SerializationError` if they do not fit."""
    if func is not None:
        return func(data)
    if model is not None and mode != "pickle":
        return _validate(model, data)
    if mode == "auto":
        return decode_auto(data)
    if mode == "raw":
        return data
    if mode == "json":
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise SerializationError(f"Stored bytes are not JSON ({error}).") from None
    if mode == "pickle":
        import pickle

        try:
            value = pickle.loads(data)
        except Exception as error:
            raise SerializationError(f"Stored bytes are not a pickle ({error}).") from error
        return _validate(model, value) if model is not None else value
    check_mode(mode)  # raises InvalidOption, as an unknown mode on the store does
    raise AssertionError(mode)


# Models `_validate` has checked once (the check is most of a cached read's cost otherwise);
# weak, so that models made at run time (pydantic.create_model) can still go.
_CHECKED_MODELS: weakref.WeakSet[type] = weakref.WeakSet()


def _validate(model: type, data: Any) -> Any:
    try:
        known = model in _CHECKED_MODELS
    except TypeError:  # unhashable: a model instance, say; check_model says what is wrong
        known = False
    if not known:
        check_model(model)
        _CHECKED_MODELS.add(model)
    from pydantic import ValidationError

    try:
        if isinstance(data, (bytes, str)):
            return model.model_validate_json(data)  # type: ignore[attr-defined]
        return model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as error:
        if _is_null(data):
            # None is stored as JSON null (store_none_values); a model that does not take it
            # reads it back as None, so that a function returning `M | None` can be cached.
            return None
        raise SerializationError(
            f"Stored value does not validate as {model.__name__}: {error}"
        ) from None


def _is_null(data: Any) -> bool:
    """Whether stored `data` is JSON null (what `None` is stored as), or None itself."""
    if data is None:
        return True
    return isinstance(data, bytes) and len(data) <= 16 and data.strip() == b"null"
