"""The conformance kit: the whole Store contract as pytest tests, for every backend.

A backend opts in with a few lines:

    import pytest
    from anystore import get_store
    from anystore.testing import StoreTests

    class TestMyBackend(StoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            return get_store("myscheme://...")  # an empty store, cleaned up by the fixture

Every test uses only the public API, so a capability a backend lacks natively is still tested
through the emulation in `Store`. Tests marked `slow` move more than 100 MB.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from anystore.decorators import anycache
from anystore.exceptions import (
    DoesNotExist,
    InvalidKey,
    InvalidOption,
    LockError,
    NotSupported,
    SerializationError,
)
from anystore.options import StoreOptions
from anystore.store import Store
from anystore.testing_guarantees import GuaranteeTests, backend_name

# Keys that must be refused before any backend is touched, each with why.
BAD_KEYS = [
    "",
    "/",
    "//",
    "/etc/passwd",
    "..",
    "../x",
    "a/../../b",
    "a/..",
    "%2e%2e/x",
    "%2E%2E/secret",
    "a/%2e%2e/%2e%2e/b",
    "%252e%252e/x",
    "..%2fx",
    "%2fetc/passwd",
    "a\x00b",
    "a%00b",
    "line\nbreak",
    "tab\tkey",
    "s3://bucket/key",
    "file:///etc/passwd",
    "a\\..\\b",
    ".~anystore-tmp~1",
    "a/.~anystore-ttl~b",
    "lone\ud800surrogate",
    "a/\udfff",
]

_segment = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\%", max_codepoint=0x2FFF
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", "..") and not s.startswith(".~anystore"))
KEYS = st.lists(_segment, min_size=1, max_size=3).map("/".join)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
_HYPOTHESIS = settings(
    max_examples=40,
    deadline=None,
    # The same test runs once per backend subclass, each with its own empty store.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)


class Item(BaseModel):
    """A small model for the `model=` tests."""

    name: str
    count: int = 0


def sibling(store: Store, **options: Any) -> Store:
    """Another Store over the same backend with some options changed."""
    return Store(store.backend, store.uri, store.options.updated(**options))


# The TTLs an expiry test tries in turn. A short one keeps the kit fast; when a backend's calls
# (a network backend on a loaded machine) take so long that it may have passed before the checks
# that need it alive, the attempt proves nothing and runs again with the next, longer one.
TTLS = (0.3, 1.0, 3.0)
# How long past the TTL a test waits before it checks that a value is gone (clock resolution).
EXPIRY_SLACK = 0.1


class _TooSlow(Exception):
    """The calls of an attempt took longer than its TTL: not a finding, a reason to retry."""


class ExpiryClock:
    """Times one attempt of an expiry test with the TTL `ttl`.

    A value written with a TTL expires no earlier than `ttl` after its write began and no later
    than `ttl` after the write returned. So checks that finish within `ttl` of `start` saw it
    alive for certain, and a check after `wait_out()` sees it expired for certain.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.start = self.written = time.monotonic()

    def wrote(self) -> None:
        """Note that the last write with this TTL has returned."""
        self.written = time.monotonic()

    @contextmanager
    def before_expiry(self) -> Iterator[None]:
        """Checks that need the TTL not yet passed; raises `_TooSlow` if they ended after it may
        have (whatever they found, which then proves nothing)."""
        try:
            yield
        except Exception as error:
            if self._late():
                raise _TooSlow from error
            raise
        if self._late():
            raise _TooSlow

    def _late(self) -> bool:
        # A margin for media that keep expiry times in milliseconds.
        return time.monotonic() - self.start >= self.ttl * 0.9

    def wait_out(self) -> None:
        """Sleep until every value written with this TTL has surely expired."""
        time.sleep(max(0.0, self.written + self.ttl + EXPIRY_SLACK - time.monotonic()))


def with_growing_ttls(store: Store, attempt: Callable[[float], None]) -> None:
    """Run `attempt(ttl)` with the TTLs of `TTLS` in turn until one is long enough for the
    backend's calls, emptying the store between attempts; fail if none is."""
    for ttl in TTLS:
        try:
            attempt(ttl)
            return
        except _TooSlow:
            store.delete_many(list(store.iterate_keys()))
    pytest.fail(f"{backend_name(store)} took longer than a {TTLS[-1]} s TTL for a few calls")


class StoreTests(GuaranteeTests):
    """Subclass this and provide a `store` fixture that returns an empty store."""

    def test_kit_tests_are_not_overridden(self) -> None:
        # A backend passes the kit as written, or a test says why it cannot (a reported skip):
        # a subclass that redefines a kit test would silently weaken the contract.
        kit = {
            name
            for base in (StoreTests, GuaranteeTests)
            for name in vars(base)
            if name.startswith("test_")
        }
        for cls in type(self).__mro__:
            if cls in (StoreTests, GuaranteeTests):
                break
            overridden = sorted(kit & set(vars(cls)))
            assert not overridden, (
                f"{cls.__name__} overrides kit tests {overridden}; fix the backend instead, "
                "or report what it cannot do through its capabilities"
            )

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("Provide a `store` fixture that returns an empty Store")

    # -- put and get -------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "value",
        ["bar", "", "ünïcödé ✓", 1, -3, 1.5, True, False, None, [1, "a"], {"foo": {"x": [1]}}],
    )
    def test_put_get_round_trip(self, store: Store, value: Any) -> None:
        store.put("key", value)
        assert store.get("key") == value

    def test_bytes_round_trip(self, store: Store) -> None:
        data = bytes(range(256)) * 4
        store.put("blob", data)
        assert store.get("blob") == data
        assert store.get("blob", serialization_mode="raw") == data

    def test_empty_bytes(self, store: Store) -> None:
        store.put("empty", b"")
        assert store.get("empty", serialization_mode="raw") == b""
        assert store.info("empty").size == 0

    def test_text_is_stored_as_plain_utf8(self, store: Store) -> None:
        store.put("text", "héllo")
        assert store.get("text", serialization_mode="raw") == "héllo".encode()

    def test_text_that_is_json_comes_back_parsed(self, store: Store) -> None:
        store.put("number-text", "123")
        assert store.get("number-text") == 123
        assert store.get("number-text", serialization_mode="raw") == b"123"

    def test_put_overwrites(self, store: Store) -> None:
        store.put("key", "one")
        store.put("key", {"two": 2})
        assert store.get("key") == {"two": 2}

    def test_datetime_is_json(self, store: Store) -> None:
        when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        store.put("when", when)
        assert store.get("when") == "2024-01-02T03:04:05+00:00"

    def test_json_mode(self, store: Store) -> None:
        store.put("j", "123", serialization_mode="json")
        assert store.get("j", serialization_mode="raw") == b'"123"'
        assert store.get("j", serialization_mode="json") == "123"

    def test_json_mode_rejects_non_json_bytes(self, store: Store) -> None:
        store.put("bin", b"\xff\x00")
        with pytest.raises(SerializationError):
            store.get("bin", serialization_mode="json")

    def test_raw_mode_takes_bytes_only(self, store: Store) -> None:
        with pytest.raises(SerializationError, match="bytes"):
            store.put("r", "text", serialization_mode="raw")
        assert not store.exists("r")

    def test_auto_never_pickles(self, store: Store) -> None:
        with pytest.raises(SerializationError, match="pickle"):
            store.put("obj", object())
        assert not store.exists("obj")

    def test_auto_never_unpickles(self, store: Store) -> None:
        payload = pickle.dumps({"a": 1})
        store.put("pickled", payload)
        assert store.get("pickled") == payload

    def test_pickle_mode_both_ways(self, store: Store) -> None:
        value = {"a": {1, 2}, "b": (1, 2)}
        store.put("p", value, serialization_mode="pickle")
        assert store.get("p", serialization_mode="pickle") == value

    def test_store_level_mode(self, store: Store) -> None:
        raw = sibling(store, serialization_mode="raw")
        raw.put("k", b"123")
        assert raw.get("k") == b"123"
        assert store.get("k") == 123

    def test_model_per_call_and_per_store(self, store: Store) -> None:
        store.put("item", Item(name="a", count=2))
        assert store.get("item") == {"name": "a", "count": 2}
        assert store.get("item", model=Item) == Item(name="a", count=2)
        assert sibling(store, model=Item).get("item") == Item(name="a", count=2)

    def test_model_validation_error(self, store: Store) -> None:
        store.put("bad", {"count": "x"})
        with pytest.raises(SerializationError, match="Item"):
            store.get("bad", model=Item)

    def test_custom_functions(self, store: Store) -> None:
        store.put("f", "abc", serialization_func=lambda v: v.upper())
        assert store.get("f") == "ABC"
        assert store.get("f", deserialization_func=lambda b: b[::-1]) == b"CBA"

    def test_none_values(self, store: Store) -> None:
        store.put("none", None)
        assert store.exists("none")
        assert store.get("none") is None
        sibling(store, store_none_values=False).put("skipped", None)
        assert not store.exists("skipped")
        store.put("skipped2", None, store_none_values=False)
        assert not store.exists("skipped2")

    @given(value=JSON_VALUES)
    @_HYPOTHESIS
    def test_json_values_round_trip(self, store: Store, value: Any) -> None:
        store.put("prop/json", value, serialization_mode="json")
        assert store.get("prop/json", serialization_mode="json") == value

    @given(data=st.binary(max_size=300))
    @_HYPOTHESIS
    def test_binary_round_trip(self, store: Store, data: bytes) -> None:
        store.put("prop/raw", data, serialization_mode="raw")
        assert store.get("prop/raw", serialization_mode="raw") == data

    # -- missing keys ------------------------------------------------------------------------

    def test_missing_key_raises(self, store: Store) -> None:
        for read in (store.get, store.pop, store.info, store.stream, store.checksum):
            with pytest.raises(DoesNotExist, match="nothing"):
                read("nothing")
        with pytest.raises(DoesNotExist):
            store.open("nothing", "rb")
        with pytest.raises(FileNotFoundError):
            store.get("nothing")

    def test_missing_key_per_call_none(self, store: Store) -> None:
        assert store.get("nothing", raise_on_nonexist=False) is None
        assert store.pop("nothing", raise_on_nonexist=False) is None
        assert store.info("nothing", raise_on_nonexist=False) is None
        assert store.open("nothing", raise_on_nonexist=False) is None
        assert list(store.stream("nothing", raise_on_nonexist=False)) == []

    def test_missing_key_per_store_and_call_wins(self, store: Store) -> None:
        lenient = sibling(store, raise_on_nonexist=False)
        assert lenient.get("nothing") is None
        with pytest.raises(DoesNotExist):
            lenient.get("nothing", raise_on_nonexist=True)
        with pytest.raises(DoesNotExist):
            store.get("nothing")  # the other store's option did not leak

    def test_exists_and_delete(self, store: Store) -> None:
        assert store.exists("k") is False
        store.put("k", 1)
        assert store.exists("k") is True
        store.delete("k")
        assert store.exists("k") is False
        store.delete("k")  # idempotent

    def test_pop(self, store: Store) -> None:
        store.put("k", {"a": 1})
        assert store.pop("k") == {"a": 1}
        assert not store.exists("k")

    def test_pop_is_exclusive_across_threads(self, store: Store) -> None:
        store.put("once", "value")
        results: list[Any] = []
        barrier = threading.Barrier(8)

        def take() -> None:
            barrier.wait()
            results.append(store.pop("once", raise_on_nonexist=False))

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results, key=repr).count("value") == 1

    # -- info, touch, checksum ---------------------------------------------------------------

    def test_info(self, store: Store) -> None:
        before = datetime.now(timezone.utc).replace(microsecond=0)
        store.put("folder/data.json", {"a": 1})
        info = store.info("folder/data.json")
        assert info.key == "folder/data.json"
        assert info.size == len(b'{"a":1}')
        assert info.created_at.tzinfo is not None and info.updated_at.tzinfo is not None
        assert info.created_at <= info.updated_at
        assert info.updated_at >= before
        assert info.mimetype == "application/json"
        assert info.uri.endswith("folder/data.json")
        assert info.store == store.uri

    def test_info_after_overwrite(self, store: Store) -> None:
        store.put("k", "one")
        first = store.info("k")
        time.sleep(0.02)
        store.put("k", "three")
        second = store.info("k")
        assert second.size == 5
        assert second.updated_at >= first.updated_at
        assert second.created_at <= second.updated_at

    def test_created_at_across_overwrites(self, store: Store) -> None:
        store.put("k", 1)
        first = store.info("k")
        time.sleep(0.05)
        store.put("k", 2)
        second = store.info("k")
        if not store.backend.keeps_created_at:
            # The medium keeps no creation time: after an overwrite it reports the overwrite's
            # (media with 1-second clocks, such as S3's Last-Modified, may report the same second).
            assert first.updated_at <= second.created_at <= second.updated_at
            return
        assert second.created_at == first.created_at
        assert second.updated_at > first.updated_at
        store.put_many({"k": 3})
        assert store.info("k").created_at == first.created_at

    def test_touch(self, store: Store) -> None:
        now = store.touch("touched")
        assert now.tzinfo is not None
        assert datetime.fromisoformat(store.get("touched")) == now

    def test_checksum(self, store: Store) -> None:
        data = b"some bytes" * 1000
        store.put("c", data)
        assert store.checksum("c") == hashlib.sha256(data).hexdigest()
        assert store.checksum("c", "md5") == hashlib.md5(data).hexdigest()

    # -- streams -----------------------------------------------------------------------------

    def test_stream_lines(self, store: Store) -> None:
        store.put("lines", b'{"a": 1}\nplain text\n2\r\n"quoted"\n')
        assert list(store.stream("lines")) == [{"a": 1}, "plain text", 2, "quoted"]
        assert list(store.stream("lines", serialization_mode="raw"))[1] == b"plain text"

    def test_open_binary_and_text(self, store: Store) -> None:
        with store.open("f.txt", "wb") as handle:
            handle.write(b"line 1\n")
            handle.write(b"line 2\n")
        with store.open("f.txt", "rb") as handle:
            assert handle.read() == b"line 1\nline 2\n"
        with store.open("t.txt", "w") as handle:
            handle.write("grüße\n")
        with store.open("t.txt", "r") as handle:
            assert handle.read() == "grüße\n"

    def test_open_write_visible_only_on_close(self, store: Store) -> None:
        store.put("f", b"old")
        handle = store.open("f", "wb")
        handle.write(b"new")
        assert store.get("f", serialization_mode="raw") == b"old"
        handle.close()
        assert store.get("f", serialization_mode="raw") == b"new"

    def test_open_write_discarded_on_error(self, store: Store) -> None:
        store.put("f", b"old")
        with pytest.raises(RuntimeError), store.open("f", "wb") as handle:
            handle.write(b"half")
            raise RuntimeError("boom")
        with pytest.raises(RuntimeError), store.open("g", "w") as text:
            text.write("half")
            raise RuntimeError("boom")
        assert store.get("f", serialization_mode="raw") == b"old"
        assert not store.exists("g")
        assert sorted(store.iterate_keys()) == ["f"]

    def test_open_write_of_nothing_is_an_empty_value(self, store: Store) -> None:
        with store.open("empty", "wb"):
            pass
        assert store.get("empty", serialization_mode="raw") == b""
        assert store.info("empty").size == 0

    def test_unknown_mode_per_call(self, store: Store) -> None:
        with pytest.raises(InvalidOption, match="yaml"):
            store.put("k", 1, serialization_mode="yaml")  # type: ignore[arg-type]
        assert not store.exists("k")
        store.put("k", 1)
        with pytest.raises(InvalidOption, match="yaml"):
            store.get("k", serialization_mode="yaml")  # type: ignore[call-overload]

    def test_open_bad_mode(self, store: Store) -> None:
        with pytest.raises(ValueError, match="mode"):
            store.open("f", "a")  # type: ignore[call-overload]

    @pytest.mark.slow
    def test_large_value_through_open(self, store: Store) -> None:
        chunk = bytes(range(256)) * 4096  # 1 MiB
        digest = hashlib.sha256()
        with store.open("large", "wb") as handle:
            for i in range(101):
                piece = chunk[i:] + chunk[:i]
                digest.update(piece)
                handle.write(piece)
        assert store.info("large").size == 101 * len(chunk)
        assert store.checksum("large") == digest.hexdigest()
        read = hashlib.sha256()
        with store.open("large", "rb") as handle:
            while piece := handle.read(1 << 20):
                read.update(piece)
        assert read.hexdigest() == digest.hexdigest()
        store.delete("large")

    # -- keys --------------------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_refused(self, store: Store, key: str) -> None:
        store.put("safe", "kept")
        for call in (
            lambda: store.put(key, "x"),
            lambda: store.get(key),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.open(key, "wb"),
        ):
            with pytest.raises(InvalidKey):
                call()
        assert list(store.iterate_keys()) == ["safe"]
        assert store.get("safe") == "kept"

    def test_non_str_key(self, store: Store) -> None:
        with pytest.raises(InvalidKey, match="str"):
            store.put(123, "x")  # type: ignore[arg-type]

    def test_key_normalisation(self, store: Store) -> None:
        store.put("a/./b/", 1)
        assert store.get("a/b") == 1
        assert store.get("./a//b") == 1
        assert list(store.iterate_keys()) == ["a/b"]

    def test_special_characters_in_keys(self, store: Store) -> None:
        keys = ["100%", "a_b", "star*", "br[ack]et", "sp ace", "ünï/cödé", "q?", "emoji 🎉"]
        for key in keys:
            store.put(key, key)
        assert sorted(store.iterate_keys()) == sorted(keys)
        for key in keys:
            assert store.get(key, serialization_mode="raw") == key.encode()

    @given(key=KEYS)
    @_HYPOTHESIS
    def test_any_valid_key_round_trips(self, store: Store, key: str) -> None:
        store.put(key, b"v")
        try:
            assert store.get(key) == "v"
            assert key in set(store.iterate_keys())
        finally:
            store.delete(key)
        assert not store.exists(key)

    # -- listing -----------------------------------------------------------------------------

    def _topics(self, store: Store) -> None:
        store.put_many(
            {
                "topic/maths": 100,
                "topic/engineering": 200,
                "topic/arts/music": 300,
                "topical": 1,
                "other/x.json": 2,
            }
        )

    def test_iterate_all(self, store: Store) -> None:
        assert list(store.iterate_keys()) == []
        self._topics(store)
        assert sorted(store.iterate_keys()) == [
            "other/x.json",
            "topic/arts/music",
            "topic/engineering",
            "topic/maths",
            "topical",
        ]

    def test_prefix_matches_whole_segments(self, store: Store) -> None:
        self._topics(store)
        assert sorted(store.iterate_keys(prefix="topic")) == [
            "topic/arts/music",
            "topic/engineering",
            "topic/maths",
        ]
        assert sorted(store.iterate_keys(prefix="topic/")) == sorted(
            store.iterate_keys(prefix="topic")
        )
        assert list(store.iterate_keys(prefix="top")) == []
        assert list(store.iterate_keys(prefix="topical")) == ["topical"]

    def test_exclude_prefix(self, store: Store) -> None:
        self._topics(store)
        assert sorted(store.iterate_keys(exclude_prefix="topic")) == ["other/x.json", "topical"]
        assert sorted(store.iterate_keys(prefix="topic", exclude_prefix="topic/arts")) == [
            "topic/engineering",
            "topic/maths",
        ]

    def test_glob(self, store: Store) -> None:
        self._topics(store)
        assert sorted(store.iterate_keys(glob="topic/*")) == ["topic/engineering", "topic/maths"]
        assert sorted(store.iterate_keys(glob="**/music")) == ["topic/arts/music"]
        assert sorted(store.iterate_keys(prefix="topic", glob="m*")) == ["topic/maths"]
        assert sorted(store.iterate_keys(glob="**.json")) == ["other/x.json"]
        assert sorted(store.iterate_keys(glob="topic/**")) == [
            "topic/arts/music",
            "topic/engineering",
            "topic/maths",
        ]
        for outside in ("../*", "/topic/*", "topic/../*", ".", "./"):  # as a prefix would be
            with pytest.raises(InvalidKey, match="Invalid glob"):
                list(store.iterate_keys(glob=outside))
        # `.` and empty segments are dropped, as in keys and prefixes.
        assert sorted(store.iterate_keys(glob="./topic//./*/")) == sorted(
            store.iterate_keys(glob="topic/*")
        )

    def test_glob_characters_in_prefix_are_literal(self, store: Store) -> None:
        store.put_many({"a%/x": 1, "ab/x": 2, "a_/x": 3, "a*/x": 4, "a[b]/x": 5, "ab]/x": 6})
        assert list(store.iterate_keys(prefix="a%")) == ["a%/x"]
        assert list(store.iterate_keys(prefix="a_")) == ["a_/x"]
        assert list(store.iterate_keys(prefix="a*")) == ["a*/x"]
        assert list(store.iterate_keys(prefix="a[b]")) == ["a[b]/x"]

    def test_iterate_is_lazy(self, store: Store) -> None:
        store.put_many((f"many/{i:04d}", i) for i in range(50))
        keys = store.iterate_keys(prefix="many")
        assert next(keys).startswith("many/")

    def test_iterate_values(self, store: Store) -> None:
        self._topics(store)
        assert sorted(store.iterate_values(prefix="topic")) == [100, 200, 300]

    # -- batches -----------------------------------------------------------------------------

    def test_put_many_get_many_delete_many(self, store: Store) -> None:
        store.put_many([("a", 1), ("b", "two"), ("c", {"three": 3})])
        store.put_many({"d": b"\x00\xff"})
        assert store.get_many(["a", "b", "c", "d", "missing"]) == {
            "a": 1,
            "b": "two",
            "c": {"three": 3},
            "d": b"\x00\xff",
        }
        store.delete_many(["a", "b", "missing"])
        assert sorted(store.iterate_keys()) == ["c", "d"]

    def test_batches_larger_than_one_round(self, store: Store) -> None:
        store.put_many((f"k/{i}", i) for i in range(2500))
        values = store.get_many(f"k/{i}" for i in range(0, 2600))
        assert len(values) == 2500 and values["k/2499"] == 2499
        store.delete_many(f"k/{i}" for i in range(2500))
        assert list(store.iterate_keys()) == []

    def test_batch_with_bad_key_writes_nothing(self, store: Store) -> None:
        with pytest.raises(InvalidKey):
            store.put_many([("ok", 1), ("../bad", 2)])
        assert not store.exists("ok")

    def test_batch_options(self, store: Store) -> None:
        store.put_many({"r": b"123"}, serialization_mode="raw")
        assert store.get_many(["r"], serialization_mode="raw") == {"r": b"123"}
        store.put_many({"m": {"name": "x"}})
        assert store.get_many(["m"], model=Item) == {"m": Item(name="x")}

    # -- ttl ---------------------------------------------------------------------------------

    def test_ttl_expires(self, store: Store) -> None:
        def attempt(ttl: float) -> None:
            clock = ExpiryClock(ttl)
            store.put("short", "v", ttl=ttl)
            clock.wrote()
            store.put("long", "v", ttl=60)
            store.put("forever", "v")
            with clock.before_expiry():
                assert store.get("short") == "v"
                assert store.info("long").expires_at is not None
            clock.wait_out()
            assert not store.exists("short")
            assert store.get("short", raise_on_nonexist=False) is None
            assert store.info("short", raise_on_nonexist=False) is None
            assert sorted(store.iterate_keys()) == ["forever", "long"]
            assert store.get_many(["short", "long"]) == {"long": "v"}

        with_growing_ttls(store, attempt)

    def test_overwrite_without_ttl_clears_it(self, store: Store) -> None:
        def attempt(ttl: float) -> None:
            clock = ExpiryClock(ttl)
            store.put("k", "v", ttl=ttl)
            with clock.before_expiry():  # the overwrite came while the TTL still held
                store.put("k", "w")
            clock.wrote()
            clock.wait_out()
            assert store.get("k") == "w"

        with_growing_ttls(store, attempt)

    def test_default_ttl_and_open(self, store: Store) -> None:
        def attempt(ttl: float) -> None:
            clock = ExpiryClock(ttl)
            expiring = sibling(store, default_ttl=ttl)
            expiring.put("d", 1)
            with expiring.open("o", "wb") as handle:
                handle.write(b"x")
            store.put_many({"m": 1}, ttl=ttl)
            clock.wrote()
            with clock.before_expiry():
                assert store.exists("d") and store.exists("o") and store.exists("m")
            clock.wait_out()
            assert not store.exists("d")
            assert not store.exists("o")
            assert not store.exists("m")

        with_growing_ttls(store, attempt)

    def test_ttl_of_a_streamed_write_counts_from_its_close(self, store: Store) -> None:
        def attempt(ttl: float) -> None:
            handle = store.open("late", "wb", ttl=ttl)
            handle.write(b"x")
            time.sleep(0.9 * ttl)
            clock = ExpiryClock(ttl)  # from the close on
            handle.close()
            time.sleep(0.3 * ttl)  # 1.2 TTLs after the open, 0.3 after the close
            with clock.before_expiry():
                assert store.get("late") == "x"

        with_growing_ttls(store, attempt)

    @pytest.mark.parametrize("ttl", [0, -1, "10", True, float("nan"), float("inf")])
    def test_bad_ttl(self, store: Store, ttl: Any) -> None:
        with pytest.raises(ValueError, match="ttl"):
            if isinstance(ttl, str):
                StoreOptions(default_ttl=ttl)  # type: ignore[arg-type]
            else:
                store.put("k", 1, ttl=ttl)
        assert not store.exists("k")

    # -- locks -------------------------------------------------------------------------------

    def _require_locks(self, store: Store) -> None:
        """Skip (reported) where the backend cannot lock, after checking that it says so."""
        if store.backend.supports_locks:
            return
        with pytest.raises(NotSupported, match="cannot"):
            store.lock("job")
        pytest.skip(f"{backend_name(store)} cannot lock (NotSupported, as it should)")

    def test_lock_excludes_a_second_holder(self, store: Store) -> None:
        self._require_locks(store)
        with store.lock("job") as held:
            assert held.held
            other = store.lock("job")
            assert other.acquire(blocking=False) is False
            started = time.monotonic()
            with pytest.raises(LockError, match=r"within 0\.2 s"):
                other.acquire(timeout=0.2)
            assert time.monotonic() - started >= 0.2
            assert store.lock("other-job").acquire(blocking=False)  # names are independent
        assert not held.held
        again = store.lock("job")
        assert again.acquire(blocking=False)
        again.release()

    def test_lock_is_kept_apart_from_values(self, store: Store) -> None:
        self._require_locks(store)
        store.put("a/b", "value")
        with store.lock("a/b"), store.lock("c/d"), store.lock("e"):
            assert sorted(store.iterate_keys()) == ["a/b"]
            assert store.get("a/b") == "value"
            assert not store.exists("c/d") and not store.exists("e")
            store.put("e", 1)
            store.delete("a/b")
        assert sorted(store.iterate_keys()) == ["e"]

    def test_lock_lapses_after_its_ttl(self, store: Store) -> None:
        self._require_locks(store)

        def attempt(ttl: float) -> None:
            name = f"job-{ttl:g}"  # a lock of its own: a slow attempt's may still be held
            clock = ExpiryClock(ttl)
            crashed = store.lock(name, ttl=ttl)
            crashed.acquire()  # and never released, as if its process had died
            clock.wrote()
            with clock.before_expiry():
                assert not store.lock(name).acquire(blocking=False)
            clock.wait_out()
            taker = store.lock(name)
            assert taker.acquire(timeout=0)
            with pytest.raises(LockError, match="expired before it was released"):
                crashed.release()
            assert not store.lock(name).acquire(blocking=False)  # the late release took nothing
            taker.release()

        with_growing_ttls(store, attempt)

    def test_lock_waits_for_the_holder(self, store: Store) -> None:
        self._require_locks(store)
        holder = store.lock("job")
        holder.acquire()
        threading.Timer(0.3, holder.release).start()
        started = time.monotonic()
        with store.lock("job", timeout=10):
            waited = time.monotonic() - started
        assert 0.25 <= waited < 5

    def test_lock_is_exclusive_across_threads(self, store: Store) -> None:
        self._require_locks(store)
        store.put("counter", 0)
        barrier = threading.Barrier(6)

        def add() -> None:
            barrier.wait()
            for _ in range(5):
                with store.lock("counter", timeout=60):
                    value = store.get("counter")
                    time.sleep(0.001)  # widen the window a missing lock would let through
                    store.put("counter", value + 1)

        threads = [threading.Thread(target=add) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.get("counter") == 30

    def test_lock_misuse(self, store: Store) -> None:
        self._require_locks(store)
        lock = store.lock("job")
        with pytest.raises(LockError, match="not held"):
            lock.release()
        lock.acquire()
        with pytest.raises(LockError, match="already held"):
            lock.acquire()
        lock.release()
        for ttl in (0, -1, float("nan"), float("inf"), None):
            with pytest.raises(InvalidOption):
                store.lock("job", ttl=ttl)  # type: ignore[arg-type]
        with pytest.raises(InvalidOption, match="timeout"):
            store.lock("job", timeout=-1)
        with pytest.raises(InvalidKey):
            store.lock("../job")

    # -- anycache ----------------------------------------------------------------------------

    def test_anycache_reads_the_cache(self, store: Store) -> None:
        calls: list[Any] = []

        @anycache(store=store)
        def double(x: Any) -> Any:
            calls.append(x)
            return x * 2

        assert double(21) == 42 and double(21) == 42
        assert double("21") == "2121"  # f(1) and f("1") are different entries
        assert calls == [21, "21"]
        assert len(list(store.iterate_keys())) == 2

    def test_anycache_key_func_ttl_and_bypass(self, store: Store) -> None:
        calls: list[int] = []

        def attempt(ttl: float) -> None:
            calls.clear()

            @anycache(store=store, key_func=lambda x: None if x < 0 else f"square/{x}", ttl=ttl)
            def square(x: int) -> int:
                calls.append(x)
                return x * x

            clock = ExpiryClock(ttl)
            assert square(3) == 9
            clock.wrote()
            with clock.before_expiry():
                assert square(3) == 9 and square(-2) == 4 and square(-2) == 4
                assert calls == [3, -2, -2]
                assert store.get("square/3") == 9
            clock.wait_out()
            assert square(3) == 9
            assert calls == [3, -2, -2, 3]

        with_growing_ttls(store, attempt)

        @anycache(store=store, key_func=lambda x: f"fresh/{x}", use_cache=False)
        def fresh(x: int) -> int:
            calls.append(x)
            return x

        fresh(7)
        fresh(7)
        assert calls[-2:] == [7, 7] and store.get("fresh/7") == 7

    def test_anycache_model_and_async(self, store: Store) -> None:
        @anycache(store=store, model=Item)
        def make(name: str) -> Item:
            return Item(name=name, count=len(name))

        assert make("abc") == Item(name="abc", count=3)
        assert make("abc") == Item(name="abc", count=3)
        calls: list[int] = []

        @anycache(store=store)
        async def slow(x: int) -> int:
            calls.append(x)
            await asyncio.sleep(0.01)
            return x + 1

        async def run() -> list[int]:
            first = await slow(1)
            return [first, *await asyncio.gather(slow(1), slow(1), slow(2))]

        assert asyncio.run(run()) == [2, 2, 2, 3]
        assert calls == [1, 2]

    def test_anycache_stampede_computes_once(self, store: Store) -> None:
        calls: list[int] = []
        barrier = threading.Barrier(8)

        @anycache(store=store)
        def expensive(x: int) -> int:
            calls.append(x)
            time.sleep(0.2)
            return x

        results: list[int] = []

        def ask() -> None:
            barrier.wait()
            results.append(expensive(5))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [5] * 8
        assert calls == [5]
