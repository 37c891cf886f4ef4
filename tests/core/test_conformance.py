"""The conformance kit, run against the backends that ship with anystore-core."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from anystore import get_store
from anystore.backends.fsspec import FsspecBackend
from anystore.store import Store
from anystore.testing import StoreTests


class TestMemory(StoreTests):
    """Memory, bare and under each compression layer (every value and stream goes through it)."""

    @pytest.fixture(params=["", "gzip::", "zstd::"], ids=["plain", "gzip", "zstd"])
    def store(self, request: pytest.FixtureRequest) -> Store:
        return get_store(f"{request.param}memory://{uuid.uuid4().hex}")


class TestMemoryChild(StoreTests):
    """A child store (a longer path) behaves as a whole store of its own."""

    @pytest.fixture
    def store(self) -> Store:
        name = uuid.uuid4().hex
        get_store(f"memory://{name}").put("outside", "not listed in the child")
        return get_store(f"memory://{name}/some/prefix")


class TestLocal(StoreTests):
    """A local folder, bare and under the gzip layer."""

    @pytest.fixture(params=["", "gzip::"], ids=["plain", "gzip"])
    def store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
        return get_store(f"{request.param}{tmp_path / 'store'}")


class TestFileUri(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        (tmp_path / "outside").write_text("not listed in the child")
        return get_store(f"file://{tmp_path}/nested/root")


class TestGenericFsspec(StoreTests):
    """The generic fsspec backend, on fsspec's own in-memory filesystem."""

    @pytest.fixture
    def store(self) -> Store:
        uri = f"memory://fsspec-{uuid.uuid4().hex}"
        return Store(FsspecBackend(uri), uri)
