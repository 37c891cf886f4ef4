"""Backend options are checked against the factory's signature: a string from the environment
becomes the parameter's type, and a value of the wrong type is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import pytest

from anystore import get_store
from anystore.backend_options import checked_options
from anystore.exceptions import InvalidKey, InvalidOption


@pytest.fixture
def outside_link(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("secret")
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(tmp_path / "outside" / "secret.txt", root / "link")
    return root


def test_false_from_the_environment_is_false(
    outside_link: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "false" is a truthy string: passed on as it was, it followed the symlink out of the root.
    monkeypatch.setenv("ANYSTORE_BACKEND_CONFIG__FOLLOW_SYMLINKS", "false")
    store = get_store(str(outside_link))
    assert store.backend.follow_symlinks is False  # type: ignore[attr-defined]
    with pytest.raises(InvalidKey, match="outside the store's root"):
        store.get("link")
    monkeypatch.setenv("ANYSTORE_BACKEND_CONFIG__FOLLOW_SYMLINKS", "TRUE")
    assert get_store(str(outside_link)).get("link") == "secret"


@pytest.mark.parametrize("value", ["maybe", 2, -1, None, 0.5, ""])
def test_a_bool_option_of_another_type_is_refused(tmp_path: Path, value: Any) -> None:
    with pytest.raises(InvalidOption, match=r"Option 'fsync' .* must be true or false") as error:
        get_store(str(tmp_path), fsync=value)
    assert "ANYSTORE_BACKEND_CONFIG__FSYNC=true" in str(error.value)


@pytest.mark.parametrize(
    ("value", "meant"), [(1, True), (0, False), ("t", True), ("N", False), ("off", False)]
)
def test_bools_read_as_the_plugins_settings_read_them(
    tmp_path: Path, value: Any, meant: bool
) -> None:
    # pydantic's lax mode, which the SQL, Redis and S3 settings use: one value, one meaning.
    assert get_store(str(tmp_path), fsync=value).backend.fsync is meant  # type: ignore[attr-defined]


def test_the_environment_variable_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYSTORE_BACKEND_CONFIG__FSYNC", "sometimes")
    with pytest.raises(InvalidOption, match="got 'sometimes'"):
        get_store(str(tmp_path))


def _factory(
    uri: str,
    retries: int = 3,
    timeout: float | None = None,
    wait: Optional[float] = None,  # noqa: UP045 (the typing.Optional spelling is checked too)
    name: str = "x",
    extra: dict[str, Any] | None = None,
    **rest: Any,
) -> None: ...


def test_strings_become_numbers_and_none() -> None:
    options = {"retries": "5", "timeout": " 2.5 ", "wait": "none", "name": "7", "other": "1"}
    assert checked_options(_factory, "x://", options) == {
        "retries": 5,
        "timeout": 2.5,
        "wait": None,
        "name": "7",  # a str parameter keeps its string
        "other": "1",  # **rest is the backend's own to check
    }
    assert checked_options(_factory, "x://", {"timeout": 3, "extra": {"a": 1}}) == {
        "timeout": 3,
        "extra": {"a": 1},
    }


@pytest.mark.parametrize(
    ("options", "wanted"),
    [
        ({"retries": "5.5"}, "an integer"),
        ({"retries": True}, "an integer"),
        ({"retries": None}, "an integer"),
        ({"timeout": "inf"}, "a number or unset"),
        ({"timeout": "soon"}, "a number or unset"),
    ],
)
def test_numbers_of_the_wrong_kind_are_refused(options: dict[str, Any], wanted: str) -> None:
    with pytest.raises(InvalidOption, match=wanted) as error:
        checked_options(_factory, "x://user:pw@host", options)
    assert "pw" not in str(error.value)


def test_an_unknown_option_is_refused_before_the_factory_runs() -> None:
    def strict(uri: str, fsync: bool = False) -> None:
        raise AssertionError("not called")

    with pytest.raises(InvalidOption, match="Bad option for the backend of x://host"):
        checked_options(strict, "x://host", {"fsink": True})
