"""`auto` and `json` refuse what a JSON round trip would change silently."""

from __future__ import annotations

import math
import uuid

import pytest

from anystore import get_store
from anystore.exceptions import SerializationError
from anystore.serialization import to_json


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({1: "a"}, "the key 1 would come back as '1'"),
        ({"nested": {2: "b"}}, "use str keys"),
        (math.nan, "NaN or infinity"),
        ([1.0, math.inf], "NaN or infinity"),
        ({"x": -math.inf}, "NaN or infinity"),
        (2**70, "store the integer as a str"),
    ],
)
@pytest.mark.parametrize("mode", ["auto", "json"])
def test_lossy_json_is_refused(value: object, why: str, mode: str) -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(SerializationError, match="pickle") as error:
        store.put("k", value, serialization_mode=mode)  # type: ignore[arg-type]
    assert why in str(error.value)
    assert not store.exists("k")
    store.put("k", value, serialization_mode="pickle")
    back = store.get("k", serialization_mode="pickle")
    assert back == value or (isinstance(value, float) and math.isnan(back))


def test_documented_conversions_still_work() -> None:
    store = get_store("memory://serialization-ok")
    store.put("t", (1, 2))
    store.put("s", {3, 1})
    store.put("null", None)
    store.put("text with null", {"a": None, "b": 1.5})
    assert store.get("t") == [1, 2] and store.get("s") == [1, 3]
    assert store.get("null") is None and store.get("text with null") == {"a": None, "b": 1.5}


def test_the_refused_dict_key_is_the_one_in_the_value() -> None:
    # The message named a fixed example, {1: 'a'}, whatever the value held.
    with pytest.raises(SerializationError, match=r"value of type list .*the key \(1, 2\) would"):
        to_json([{"a": {(1, 2): 0}}])
    with pytest.raises(SerializationError, match=r"the key 2 would come back as '2'"):
        to_json({"a": {2: 3}})
