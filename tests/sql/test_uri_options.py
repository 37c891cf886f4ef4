"""Query options of a database URL: an unknown one is an InvalidOption naming it (a typo in
`table` used to put the data in the default table on SQLite), a valid one takes effect."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from anystore import get_store
from anystore.cli import EXIT_USAGE, main
from anystore.exceptions import InvalidOption
from anystore.smart import smart_read
from anystore.store import Store

SECRET = "s3cret-pw"


def _with_password(database: str) -> str:
    """The URL with a password (the loopback servers ignore it or never get it: the option is
    refused before logging in), to see it masked in every message."""
    return database.replace("postgres@", f"postgres:{SECRET}@").replace("root@", f"root:{SECRET}@")


def _driver_option(database: str) -> tuple[str, str]:
    """A real driver option of the dialect, with a value unlike the one the settings give."""
    if database.startswith("sqlite"):
        return "timeout", "5"  # seconds; the settings' busy_timeout is 30 000 ms
    return "connect_timeout", "7"  # the settings' connect_timeout is 5


def test_a_misspelt_option_is_refused_by_name(database: str) -> None:
    uri = f"{_with_password(database)}&tabel=rr_x"
    with pytest.raises(InvalidOption) as raised:
        get_store(uri)
    message = str(raised.value)
    assert "Unknown option 'tabel'" in message
    assert "did you mean 'table'?" in message
    assert SECRET not in message
    if database.startswith("sqlite"):  # the valid ones are listed: ours and the driver's
        for name in ("table", "prefix", "timeout", "uri", "cached_statements"):
            assert name in message.split("valid options are ")[1]


def test_a_misspelt_option_exits_as_bad_input(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", f"{_with_password(database)}&tabel=x", "keys"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Unknown option 'tabel'" in err
    assert SECRET not in err


def test_nothing_is_written_to_the_default_table_after_a_typo(tmp_path: Any) -> None:
    uri = f"sqlite:///{tmp_path}/y.db"
    with pytest.raises(InvalidOption):
        get_store(f"{uri}?tabel=rr_x").put("key", "value")
    assert not get_store(uri).exists("key")


def test_a_bad_value_of_a_driver_option_is_refused(database: str) -> None:
    name, _ = _driver_option(database)
    with pytest.raises(InvalidOption) as raised:
        get_store(f"{_with_password(database)}&{name}=abc")
    assert "abc" in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("name", ["check_same_thread", "isolation_level"])
def test_a_sqlite_option_that_anystore_overrides_is_refused(tmp_path: Any, name: str) -> None:
    with pytest.raises(InvalidOption, match=f"'{name}'.* cannot be set"):
        get_store(f"sqlite:///{tmp_path}/x.db?{name}=1")


def test_a_misspelt_sqlite_uri_option_is_refused(tmp_path: Any) -> None:
    # With uri=true the rest goes to SQLite's URI filename, which ignores what it does not know.
    with pytest.raises(InvalidOption, match=r"Unknown option 'mod' .*did you mean 'mode'"):
        get_store(f"sqlite:///file:{tmp_path}/x.db?uri=true&mod=ro")


def _busy_timeout(store: Store) -> int:
    backend: Any = store.backend
    with backend.engine.connect() as connection:
        return int(connection.execute(text("PRAGMA busy_timeout")).scalar_one())


def _connect_timeout(store: Store) -> int:
    backend: Any = store.backend
    raw = backend.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if backend.dialect == "postgresql":
            return int(driver.info.get_parameters()["connect_timeout"])
        return int(driver.connect_timeout)
    finally:
        raw.close()


def test_valid_options_work_and_a_driver_option_in_the_url_wins(database: str) -> None:
    name, value = _driver_option(database)
    store = get_store(f"{database}&{name}={value}")  # `database` has ?table=... already
    store.put("key", "value")
    backend: Any = store.backend
    assert backend.table.name == database.split("table=")[1]
    if not database.startswith("sqlite://?"):  # a memory database is its URL's own
        assert get_store(database).get("key") == "value"
    if database.startswith("sqlite"):
        assert _busy_timeout(store) == 5000
    else:
        assert _connect_timeout(store) == 7


def test_sqlite_uri_options_work(tmp_path: Any) -> None:
    path = tmp_path / "x.db"
    get_store(f"sqlite:///{path}").put("key", "value")
    store = get_store(f"sqlite:///file:{path}?uri=true&cache=private&timeout=2")
    assert store.get("key") == "value"
    assert _busy_timeout(store) == 2000


def test_a_sqlite_uri_memory_database_is_one_database() -> None:
    # file::memory: is a memory database too: every pooled connection had an empty one.
    store = get_store("sqlite:///file::memory:?uri=true&table=t_memory")
    store.put("key", "value")
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(store.get("key"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["value"] * 4


def test_a_sqlite_url_naming_a_folder_is_bad_input(tmp_path: Path) -> None:
    # SQLite says "unable to open database file", which was BackendUnavailable (CLI exit 3).
    with pytest.raises(InvalidOption, match=r"names the folder .*not a database file"):
        get_store(f"sqlite:///{tmp_path}")
    with pytest.raises(InvalidOption, match=r"\?prefix="):
        smart_read(f"sqlite:///{tmp_path}/value.db")  # the key taken for the file's name


def test_a_users_do_connect_listener_still_runs(database: str) -> None:
    # The bad-option translation once connected inside a do_connect listener of its own, which
    # ends the chain: a user's listener (say, one that puts a token into the parameters) was
    # silently skipped.
    if database.startswith("sqlite"):
        pytest.skip("SQLite URLs are checked before connecting")
    from sqlalchemy import event

    store = get_store(database)
    engine = store.backend.engine  # type: ignore[attr-defined]
    calls: list[dict[str, Any]] = []

    @event.listens_for(engine, "do_connect")
    def mine(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        calls.append(cparams)

    engine.dispose()
    store.put("k", 1)
    assert calls and store.get("k") == 1
