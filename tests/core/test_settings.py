"""Options precedence: per call over store over environment over defaults."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from anystore import Settings, get_store
from anystore.exceptions import DoesNotExist, InvalidOption


def test_defaults():
    settings = Settings()
    assert settings.uri == ".anystore"
    assert settings.serialization_mode == "auto"
    assert settings.raise_on_nonexist is True


def test_default_store_is_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    get_store().put("k", "v")
    assert (tmp_path / ".anystore" / "k").read_text() == "v"


def test_uri_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANYSTORE_URI", str(tmp_path / "env-store"))
    get_store().put("k", "v")
    assert (tmp_path / "env-store" / "k").exists()


def test_environment_then_store_then_call(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANYSTORE_RAISE_ON_NONEXIST", "false")
    uri = f"memory://{uuid.uuid4().hex}"
    assert get_store(uri).get("missing") is None
    strict = get_store(uri, raise_on_nonexist=True)
    with pytest.raises(DoesNotExist):
        strict.get("missing")
    assert strict.get("missing", raise_on_nonexist=False) is None


def test_serialization_mode_and_ttl_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANYSTORE_SERIALIZATION_MODE", "raw")
    monkeypatch.setenv("ANYSTORE_DEFAULT_TTL", "60")
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("k", b"1")
    assert store.get("k") == b"1"
    assert store.info("k").expires_at is not None


def test_backend_config_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANYSTORE_BACKEND_CONFIG", '{"fsync": true}')
    assert get_store(str(tmp_path)).backend.fsync is True
    assert get_store(str(tmp_path), fsync=False).backend.fsync is False


def test_bad_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ANYSTORE_SERIALIZATION_MODE", "yaml")
    with pytest.raises(InvalidOption, match="ANYSTORE_SERIALIZATION_MODE"):
        get_store("memory://")


def test_bad_keyword_options():
    with pytest.raises(InvalidOption, match="serialization_mode"):
        get_store("memory://", serialization_mode="yaml")
    with pytest.raises(InvalidOption, match="ttl"):
        get_store("memory://", ttl=-5)
    with pytest.raises(InvalidOption, match="no_such_option"):
        get_store("memory://", no_such_option=1)


def test_two_stores_share_data_not_options():
    uri = f"memory://{uuid.uuid4().hex}"
    first = get_store(uri)
    second = get_store(uri, raise_on_nonexist=False, serialization_mode="raw")
    first.put("k", "v")
    assert second.get("k") == b"v"
    assert second.get("missing") is None
    with pytest.raises(DoesNotExist):
        first.get("missing")


def test_memory_namespaces_are_separate():
    get_store("memory://one-ns").put("k", 1)
    assert not get_store("memory://other-ns").exists("k")
    assert get_store("memory://one-ns").exists("k")
