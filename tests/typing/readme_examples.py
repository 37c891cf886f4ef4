"""The README's idioms as a user writes them; CI type-checks this file with mypy --strict (and
pyright, where installed) so that the Store's types never fight its own documentation.

It is also run, so the idioms are checked to work, not only to type-check.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from anystore import Stats, Store, get_store
from anystore.decorators import anycache


class Item(BaseModel):
    name: str
    count: int = 0


def main() -> None:
    store: Store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("key1", "my content")
    value = store.get("key1")
    assert value == "my content"

    store.put("item", Item(name="x"))
    item: Item = store.get("item", model=Item)  # the model's type, not Any
    assert item.name == "x"
    maybe: Item | None = store.get("nothing", model=Item, raise_on_nonexist=False)
    assert maybe is None

    info: Stats = store.info("key1")  # no None check needed by default
    size: int = store.info("key1").size
    updated: datetime = info.updated_at
    digest: str = store.checksum("key1")
    missing: Stats | None = store.info("nothing", raise_on_nonexist=False)
    assert size == 10 and updated and digest and missing is None

    with store.open("blob", "wb") as writer:
        writer.write(b"bytes")
    with store.open("blob", "rb") as reader:
        data: bytes = reader.read()
    with store.open("text", "w") as text_writer:
        text_writer.write("text")
    with store.open("text", "r") as text_reader:
        text: str = text_reader.read()
    assert data == b"bytes" and text == "text"
    handle = store.open("nothing", "rb", raise_on_nonexist=False)
    assert handle is None

    store.put("k", "123", serialization_mode="json")
    raw: bytes = store.get("k", serialization_mode="raw")
    assert raw == b'"123"'
    keys: Iterator[str] = store.iterate_keys(prefix="topic", glob="*.json")
    assert list(keys) == []
    store.put_many({"a": 1, "b": 2}, ttl=60)
    batch = store.get_many(["a", "b"])
    assert batch == {"a": 1, "b": 2}
    with store.lock("job", ttl=10):
        pass

    @anycache(store=store)
    def compute(x: int) -> int:
        return x * 2

    doubled: int = compute(21)
    assert doubled == 42
    # get and pop are plain methods: unbound, mapped, and overridden in a subclass.
    store.put("u", 1)
    unbound = Store.get(store, "u")
    assert unbound == 1 and list(map(store.get, ["u"])) == [1]
    assert Store.get.__name__ == "get" and Store.pop.__name__ == "pop"
    store.close()


class LoggingStore(Store):
    """A user's subclass overriding get: type-checks against Store.get's overloads."""

    def get(self, key: str, **options: Any) -> Any:
        return super().get(key, **options)


if __name__ == "__main__":
    main()
