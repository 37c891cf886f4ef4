"""Backend keyword options, checked against the backend factory's signature before it runs.

Options reach a backend from `get_store()` keywords, from `ANYSTORE_BACKEND_CONFIG` (JSON) and
from `ANYSTORE_BACKEND_CONFIG__NAME` variables, whose values are always strings. A string
`"false"` is truthy in Python, so a parameter annotated `bool`, `int` or `float` (alone or with
`None`) gets a value of its type: a string is parsed, anything else of the wrong type is refused
with `InvalidOption`. Other annotations are the backend's own to check (the plugins validate
theirs with pydantic settings, whose lax mode reads bools the same way: `1`/`0`, `true`/`false`,
`t`/`f`, `yes`/`no`, `y`/`n`, `on`/`off`).
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from anystore.exceptions import InvalidOption, mask_uri

# What pydantic's lax mode reads as a bool (the plugins' settings classes), so that one option
# value means the same to every backend.
_TRUE = frozenset(("1", "true", "t", "yes", "y", "on"))
_FALSE = frozenset(("0", "false", "f", "no", "n", "off"))
_BOOLS = _TRUE | _FALSE
_NONE = frozenset(("", "none", "null"))
_SIMPLE = (bool, int, float, type(None))


def checked_options(
    factory: Callable[..., Any], uri: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """`options` for `factory(uri, **options)`, each simply typed one converted to its type.

    Raises `InvalidOption` for an option the factory does not take or a value that is not of
    (and cannot be read as) the parameter's type.
    """
    signature = _signature(factory)
    try:
        # Before the call: a TypeError raised inside the backend is a bug to see, not an option.
        signature.bind(uri, **options)
    except TypeError as error:
        raise InvalidOption(f"Bad option for the backend of {mask_uri(uri)}: {error}") from None
    checked = dict(options)
    for name, value in options.items():
        parameter = signature.parameters.get(name)
        kinds = _simple_kinds(parameter.annotation) if parameter is not None else None
        if kinds:
            checked[name] = _converted(value, kinds, name, uri)
    return checked


def _signature(factory: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(factory, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        # An annotation that names something imported only for type checkers: unchecked.
        return inspect.signature(factory)


def _simple_kinds(annotation: Any) -> tuple[type, ...] | None:
    """The types of `bool`, `int`, `float`, `X | None` annotations; None for any other."""
    if annotation in _SIMPLE:
        return (annotation,)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = typing.get_args(annotation)
        if all(kind in _SIMPLE for kind in kinds):
            return kinds
    return None


def _converted(value: Any, kinds: tuple[type, ...], name: str, uri: str) -> Any:
    if value is None and type(None) in kinds:
        return None
    if isinstance(value, bool):  # before int: a bool is an int to isinstance
        if bool in kinds:
            return value
    elif bool in kinds and value in (0, 1) and int not in kinds and float not in kinds:
        return bool(value)  # 0 and 1, as pydantic takes them
    elif isinstance(value, (int, float)):
        if (isinstance(value, int) and int in kinds) or (float in kinds and math.isfinite(value)):
            return value
    elif isinstance(value, str):
        text = value.strip().lower()
        if bool in kinds and text in _BOOLS:
            return text in _TRUE
        if type(None) in kinds and text in _NONE:
            return None
        for kind in (int, float):
            if kind in kinds:
                try:
                    number = kind(text)
                except ValueError:
                    continue
                if math.isfinite(number):
                    return number
    wanted = " or ".join(_DESCRIPTIONS[kind] for kind in kinds)
    example = _EXAMPLES[kinds[0]]
    raise InvalidOption(
        f"Option {name!r} of the backend of {mask_uri(uri)} must be {wanted}, got {value!r} "
        f"(e.g. {name}={example!r}, or ANYSTORE_BACKEND_CONFIG__{name.upper()}="
        f"{str(example).lower()})"
    )


_DESCRIPTIONS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    type(None): "unset (None)",
}
_EXAMPLES: dict[type, Any] = {bool: True, int: 3, float: 2.5, type(None): None}
