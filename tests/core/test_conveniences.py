"""Store conveniences 1.x code calls, and configuration from files, on memory, local, SQLite and
Redis (S3 in tests/s3/test_smart_s3.py)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from anystore import Stats, Store, get_store, smart_write
from anystore.exceptions import (
    DoesNotExist,
    InvalidKey,
    InvalidOption,
    NotSupported,
    ReadOnly,
    SerializationError,
)
from tests.core.test_compression import store_uri  # noqa: F401  (the per-backend fixture)


class User(BaseModel):
    name: str
    age: int = 0


def test_delete_ignore_errors(store_uri: str) -> None:  # noqa: F811
    store = get_store(store_uri)
    store.put("k", 1)
    store.delete("missing")
    store.delete("missing", ignore_errors=False)  # idempotent either way
    store.delete("k", ignore_errors=True)
    assert not store.exists("k")
    store.put("kept", 1)
    frozen = get_store(f"readonly::{store_uri}")
    with pytest.raises(ReadOnly):
        frozen.delete("kept")
    frozen.delete("kept", ignore_errors=True)
    assert store.get("kept") == 1
    with pytest.raises(InvalidKey):
        store.delete("../outside", ignore_errors=True)  # a bad key is a bug, not a hiccup


def test_put_with_a_model(store_uri: str) -> None:  # noqa: F811
    store = get_store(store_uri)
    store.put("users/a", {"name": "a", "age": "3"}, model=User)
    assert json.loads(store.get("users/a", serialization_mode="raw")) == {"name": "a", "age": 3}
    assert store.get("users/a", model=User) == User(name="a", age=3)
    store.put("users/b", User(name="b"), model=User)
    assert store.get("users/b") == {"name": "b", "age": 0}
    with pytest.raises(SerializationError, match="does not validate as User"):
        store.put("users/c", {"age": 1}, model=User)
    assert not store.exists("users/c")
    with pytest.raises(InvalidOption, match="pydantic model"):
        store.put("users/d", {"x": 1}, model=dict)


def test_stats_name(store_uri: str) -> None:  # noqa: F811
    store = get_store(store_uri)
    store.put("a/b/report.json", 1)
    store.put("top", 1)
    info = store.info("a/b/report.json")
    assert info.name == "report.json" and store.info("top").name == "top"
    assert info.model_dump()["name"] == "report.json"  # shown by `anystore info` too
    assert isinstance(info, Stats) and info.key == "a/b/report.json"


def test_options_assignable_on_the_store(store_uri: str) -> None:  # noqa: F811
    store = get_store(store_uri)
    store.default_ttl = 60
    store.put("ttl", 1)
    expires = store.info("ttl").expires_at
    assert expires is not None and store.options.default_ttl == 60
    store.default_ttl = None
    store.put("forever", 1)
    assert store.info("forever").expires_at is None

    store.raise_on_nonexist = False
    assert store.get("missing") is None
    store.raise_on_nonexist = True
    with pytest.raises(DoesNotExist):
        store.get("missing")

    store.serialization_mode = "json"
    store.put("text", "123")
    assert store.get("text", serialization_mode="raw") == b'"123"'
    assert store.serialization_mode == "json"

    store.store_none_values = False
    store.put("none", None)
    assert not store.exists("none")

    for name, bad in [("default_ttl", -1), ("serialization_mode", "yaml"), ("model", 3)]:
        before = store.options
        with pytest.raises(InvalidOption):
            setattr(store, name, bad)
        assert store.options is before  # unchanged by a refused value
    with pytest.raises(InvalidOption):
        store.raise_on_nonexist = "yes"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("ttl", "set store.default_ttl"),
        ("serialisation_mode", "did you mean store.serialization_mode"),
        ("raise_on_nonexists", "did you mean store.raise_on_nonexist"),
        ("default_tll", "did you mean store.default_ttl"),
    ],
)
def test_a_misspelt_option_attribute_is_refused(name: str, says: str) -> None:
    # It used to become a plain attribute that nothing reads: the store went on as before.
    store = get_store(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(InvalidOption, match=says):
        setattr(store, name, 60)
    assert not hasattr(store, name)
    store.note = "mine"  # type: ignore[attr-defined]  # other attributes stay the user's
    store.mode = "fast"  # type: ignore[attr-defined]  # not a near miss of "model"
    assert (store.note, store.mode) == ("mine", "fast")  # type: ignore[attr-defined]

    class Mine(Store):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.ttl = 5  # a subclass's own attribute, even an option's alias

    mine = Mine(store.backend, store.uri)
    assert mine.ttl == 5


@pytest.mark.parametrize("model", [dict, User(name="x"), "User", 3])
def test_a_model_that_is_not_a_pydantic_class_is_refused(model: Any) -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put("k", {"name": "x"})
    with pytest.raises(InvalidOption, match="pydantic model class"):
        get_store("memory://", model=model)
    with pytest.raises(InvalidOption, match="pydantic model class"):
        store.get("k", model=model)


def test_a_value_that_does_not_validate_names_its_key() -> None:
    store = get_store(f"memory://{uuid.uuid4().hex}")
    store.put_many({"good": {"name": "x"}, "bad/one": {"other": 1}})
    for read in (
        lambda: store.get("bad/one", model=User),
        lambda: store.get_many(["good", "bad/one"], model=User),
        lambda: list(store.iterate_values(model=User)),
        lambda: store.pop("bad/one", model=User),
    ):
        with pytest.raises(
            SerializationError, match=r"^Key 'bad/one': Stored value does not validate as User"
        ):
            read()


def test_option_on_one_store_leaves_others_alone() -> None:
    uri = f"memory://{uuid.uuid4().hex}"
    one, two = get_store(uri), get_store(uri)
    one.raise_on_nonexist = False
    assert one.get("x") is None
    with pytest.raises(DoesNotExist):
        two.get("x")


def test_file_uris_are_percent_decoded(tmp_path: Path) -> None:
    store = get_store(f"file://{tmp_path}/sub%20dir/%C3%BC")
    store.put("k", b"v")
    assert (tmp_path / "sub dir" / "ü" / "k").read_bytes() == b"v"
    literal = get_store(str(tmp_path / "lit%20eral"))  # a plain path is taken as it is
    literal.put("k", b"v")
    assert (tmp_path / "lit%20eral" / "k").exists()


# -- configuration from files ------------------------------------------------------------------


def test_json_uri_configures_the_default_store(
    store_uri: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = tmp_path / "anystore.json"
    doc.write_text(json.dumps({"uri": store_uri, "raise_on_nonexist": False, "ttl": 120}))
    monkeypatch.setenv("ANYSTORE_JSON_URI", str(doc))
    store = get_store()
    assert store.get("missing") is None and store.options.default_ttl == 120
    store.put("k", b"v")
    assert get_store(store_uri).get("k") == "v"
    assert get_store(store_uri).options.raise_on_nonexist is False  # the document's options
    monkeypatch.setenv("ANYSTORE_RAISE_ON_NONEXIST", "true")  # a variable wins over it
    with pytest.raises(DoesNotExist):
        get_store().get("missing")


def test_yaml_uri_at_any_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    space = uuid.uuid4().hex
    smart_write(
        f"memory://{space}/conf/store.yml",
        f"uri: memory://{space}/data\nserialization_mode: json\nbackend_config: {{}}\n",
    )
    monkeypatch.setenv("ANYSTORE_YAML_URI", f"memory://{space}/conf/store.yml")
    store = get_store()
    assert store.uri == f"memory://{space}/data" and store.options.serialization_mode == "json"
    monkeypatch.setenv("ANYSTORE_URI", f"memory://{space}/other")
    assert get_store().uri == f"memory://{space}/other"  # the variable wins


def test_from_json_and_yaml_uri(tmp_path: Path) -> None:
    target = tmp_path / "data"
    (tmp_path / "s.json").write_text(json.dumps({"uri": str(target), "default_ttl": 5}))
    (tmp_path / "s.yaml").write_text(f"uri: {target}\nstore_none_values: false\n")
    store = Store.from_json_uri(str(tmp_path / "s.json"))
    assert isinstance(store, Store) and store.options.default_ttl == 5
    assert Store.from_json_uri(str(tmp_path / "s.json"), ttl=9).options.default_ttl == 9
    # uri= is an option like the others (it was taken for the document's own URI: TypeError).
    other = Store.from_json_uri(str(tmp_path / "s.json"), uri=f"memory://{uuid.uuid4().hex}")
    assert other.uri.startswith("memory://") and other.options.default_ttl == 5
    # Without the document given positionally, uri= names it, as in earlier versions.
    assert Store.from_json_uri(uri=str(tmp_path / "s.json")).options.default_ttl == 5
    assert Store.from_json_uri(tmp_path / "s.json").options.default_ttl == 5  # a Path too
    with pytest.raises(InvalidOption, match="takes the URI of the document"):
        Store.from_json_uri()
    yaml_store = Store.from_yaml_uri(f"file://{tmp_path}/s.yaml")
    yaml_store.put("none", None)
    assert not yaml_store.exists("none") and not target.exists()
    with pytest.raises(DoesNotExist, match=r"configuration document .*none\.json does not"):
        Store.from_json_uri(str(tmp_path / "none.json"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must be a mapping"),
        ('{"uri": "memory://x", "colour": 1}', "Unknown option.*colour"),
        ('{"serialization_mode": "yaml"}', "Unknown serialization_mode"),
        ('{"default_ttl": 0}', "default_ttl must be a positive"),
        ('{"uri": 3}', "uri must be a string"),
        ("{not json", "is not JSON"),
    ],
)
def test_bad_documents_are_invalid_options(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(InvalidOption, match=message):
        Store.from_json_uri(str(tmp_path / "bad.json"))


def test_bad_yaml_and_missing_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bad.yml").write_text("uri: [unclosed\n")
    with pytest.raises(InvalidOption, match="is not YAML"):
        Store.from_yaml_uri(str(tmp_path / "bad.yml"))
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(NotSupported, match=r'pip install "anystore-core\[yaml\]"'):
        Store.from_yaml_uri(str(tmp_path / "bad.yml"))


def test_both_documents_set_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYSTORE_JSON_URI", str(tmp_path / "a.json"))
    monkeypatch.setenv("ANYSTORE_YAML_URI", str(tmp_path / "a.yml"))
    with pytest.raises(InvalidOption, match="not both"):
        get_store()


def test_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f"ANYSTORE_URI={tmp_path / 'from-dotenv'}\nANYSTORE_RAISE_ON_NONEXIST=false\nOTHER=1\n"
    )
    store = get_store()
    assert store.get("missing") is None
    store.put("k", b"v")
    assert (tmp_path / "from-dotenv" / "k").exists()
    monkeypatch.setenv("ANYSTORE_URI", str(tmp_path / "from-env"))  # the environment wins
    assert get_store().uri == str(tmp_path / "from-env")


def test_discovery_before_get_store_does_not_read_the_document(tmp_path: Path) -> None:
    """Plugin discovery (here through `installed_plugins`, as `anystore backends` does) needs
    only the disabled plugins; reading the document there would wait for discovery itself."""
    import os
    import subprocess

    doc = tmp_path / "store.json"
    doc.write_text(json.dumps({"uri": str(tmp_path / "configured")}))
    code = (
        "from anystore.plugins import installed_plugins; installed_plugins(); "
        "from anystore import get_store; print(get_store().uri)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ANYSTORE_JSON_URI": str(doc)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "configured")
