"""Shared test set-up: every test starts with freshly discovered plugins and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from anystore.plugins import reset_plugins


@pytest.fixture(autouse=True)
def _clean_anystore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("ANYSTORE_"):
            monkeypatch.delenv(name)
    reset_plugins()
    yield
    reset_plugins()
