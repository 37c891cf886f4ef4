"""The smallest backend the contract allows (issue "contract 2"), installed through an entry
point, passes the whole kit: Store does the rest, TTL included."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from anystore import get_store
from anystore.store import Store
from anystore.testing import StoreTests
from tests.core.test_plugins import install_plugin

PLUGIN = """
    from anystore import hookimpl

    @hookimpl
    def anystore_register_backends(register):
        register("dict", "dictplug_backend:DictBackend")
"""

# The five primitives and nothing else: no TTL, no prefix rule, no reserved names, no key rules.
BACKEND = """
    import time

    from anystore.backend import Backend, BackendStat, utc

    def now():
        return time.time()

    class DictBackend(Backend):
        def __init__(self, uri, **options):
            self.data = {}

        def read(self, key):
            return self.data.get(key, (None,))[0]

        def write(self, key, data, ttl=None):
            self.data[key] = (data, now(), now())  # ignores ttl

        def delete(self, key):
            self.data.pop(key, None)

        def stat(self, key):
            if key not in self.data:
                return None
            data, created, updated = self.data[key]
            return BackendStat(len(data), utc(created), utc(updated))

        def list_keys(self, prefix):
            return (k for k in list(self.data) if k.startswith(prefix))
"""


class TestDictBackend(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
        (tmp_path / "dictplug_backend.py").write_text(textwrap.dedent(BACKEND))
        install_plugin(tmp_path, monkeypatch, "dictplug", "dictplug", PLUGIN)
        return get_store("dict://")


def test_values_with_a_ttl_are_enveloped_and_plain_ones_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anystore.expiry import HEADER, MAGIC

    (tmp_path / "dictplug_backend.py").write_text(textwrap.dedent(BACKEND))
    install_plugin(tmp_path, monkeypatch, "dictplug", "dictplug", PLUGIN)
    store = get_store("dict://")
    medium = store.backend.inner.data  # type: ignore[attr-defined]
    store.put("plain", b"as is")
    store.put("expiring", b"soon", ttl=60)
    tricky = MAGIC + b"\x00" * 8 + b"looks like an envelope"
    store.put("tricky", tricky)
    with store.open("tricky-stream", "wb") as handle:
        for byte in tricky:
            handle.write(bytes([byte]))
    assert medium["plain"][0] == b"as is"
    assert medium["expiring"][0].startswith(MAGIC) and len(medium["expiring"][0]) == HEADER + 4
    assert store.get("tricky", serialization_mode="raw") == tricky
    assert store.get("tricky-stream", serialization_mode="raw") == tricky
    assert store.info("tricky").size == len(tricky) and store.info("tricky").expires_at is None
    assert store.info("expiring").size == 4 and store.info("expiring").expires_at is not None
