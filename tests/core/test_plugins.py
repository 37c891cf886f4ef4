"""Plugin discovery: entry points, disabling, conflicts, unknown hooks, lazy imports."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from anystore import discovery, get_store
from anystore import plugins as plugins_module
from anystore.backends.memory import MemoryBackend
from anystore.cli import main
from anystore.exceptions import BackendNotFound, InvalidOption, PluginError, PluginWarning
from anystore.plugins import installed_plugins, reset_plugins


def install_plugin(
    root: Path, monkeypatch: pytest.MonkeyPatch, dist: str, module: str, source: str
) -> None:
    """Make a distribution `dist` with an `anystore` entry point to `module` importable."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[anystore]\n{dist} = {module}\n")
    monkeypatch.syspath_prepend(str(root))
    reset_plugins()


def only_core_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discover plugins as if none of this project's plugin distributions were installed."""
    found = discovery.find_installed()
    core_only = discovery.Installed(
        [e for e in found.entry_points if e.name not in ("redis", "s3", "sql")],
        found.foreign_anystore,
    )
    monkeypatch.setattr(plugins_module, "find_installed", lambda: core_only)
    reset_plugins()


FAKE = """
    from anystore import hookimpl

    @hookimpl
    def anystore_register_backends(register):
        register("fake", "{module}_backend:FakeBackend"{extra})
"""

FAKE_BACKEND = """
    from anystore.backends.memory import MemoryBackend

    class FakeBackend(MemoryBackend):
        pass
"""


def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, extra: str = "") -> None:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}_backend.py").write_text(textwrap.dedent(FAKE_BACKEND))
    install_plugin(folder, monkeypatch, name, name, FAKE.format(module=name, extra=extra))


def test_third_party_plugin_serves_its_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake(tmp_path, monkeypatch, "fakeplug")
    assert "fakeplug_backend" not in sys.modules
    store = get_store("fake://space/prefix")
    assert type(store.backend).__name__ == "FakeBackend"
    assert isinstance(store.backend, MemoryBackend)
    store.put("k", 1)
    assert store.get("k") == 1
    info = {p.name: p for p in installed_plugins()}["fakeplug"]
    assert (info.distribution, info.version, info.schemes) == ("fakeplug", "1.2.3", ["fake"])


def test_factory_is_imported_only_when_its_scheme_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    fake(tmp_path, monkeypatch, "lazyplug")
    get_store("memory://")
    assert "lazyplug" in sys.modules  # the tiny entry-point module is loaded...
    assert "lazyplug_backend" not in sys.modules  # ...but not the backend behind it
    get_store("fake://x")
    assert "lazyplug_backend" in sys.modules


def test_disabled_plugin_is_not_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake(tmp_path, monkeypatch, "offplug")
    monkeypatch.setenv("ANYSTORE_DISABLE_PLUGINS", "offplug")
    with pytest.raises(BackendNotFound, match="fake://"):
        get_store("fake://x")
    assert "offplug" not in sys.modules


def test_two_plugins_on_one_scheme_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake(tmp_path, monkeypatch, "firstplug")
    fake(tmp_path, monkeypatch, "secondplug")
    get_store("memory://").put("k", 1)  # other schemes are not held hostage
    with pytest.raises(PluginError, match=r"firstplug.*secondplug|secondplug.*firstplug"):
        get_store("fake://x")


def test_preferred_plugin_wins_a_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake(tmp_path, monkeypatch, "plainplug")
    fake(tmp_path, monkeypatch, "prefplug", extra=", preferred=True")
    store = get_store("fake://x")
    assert type(store.backend).__module__ == "prefplug_backend"


def test_unknown_hook_is_reported_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source = """
        from anystore import hookimpl

        @hookimpl
        def anystore_register_backend(register):  # misspelled
            register("typo", "typoplug:Nothing")
    """
    install_plugin(tmp_path, monkeypatch, "typoplug", "typoplug", source)
    with pytest.warns(PluginWarning) as caught:
        get_store("memory://").put("k", 1)
    message = str(caught[0].message)
    assert "'typoplug' (distribution typoplug)" in message
    assert "did you mean anystore_register_backends?" in message
    assert message.count("typoplug.py") == 0  # no module repr
    info = {p.name: p for p in installed_plugins()}["typoplug"]
    assert info.schemes == [] and "anystore_register_backend " in str(info.error)


def test_broken_plugin_breaks_no_other_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    install_plugin(tmp_path, monkeypatch, "brokenplug", "brokenplug", "raise ImportError('x')")
    with pytest.warns(PluginWarning, match="ANYSTORE_DISABLE_PLUGINS=brokenplug"):
        store = get_store("memory://")
    store.put("k", 1)
    assert store.get("k") == 1
    with pytest.raises(BackendNotFound, match=r"'brokenplug'.*failed to load.*ImportError"):
        get_store("nosuch://x")


def test_backends_command_shows_a_broken_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    install_plugin(tmp_path, monkeypatch, "brokenplug", "brokenplug", "raise ImportError('x')")
    with pytest.warns(PluginWarning):
        assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "brokenplug\tbrokenplug 1.2.3\tnot loaded: importing brokenplug failed" in out
    assert "memory://" in out


def test_disabled_broken_plugin_is_silent_in_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    install_plugin(tmp_path, monkeypatch, "brokenplug", "brokenplug", "raise ImportError('x')")
    monkeypatch.setenv("ANYSTORE_DISABLE_PLUGINS", "brokenplug")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["backends"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "brokenplug" in line]
    assert listed == ["brokenplug\tbrokenplug 1.2.3\tdisabled (ANYSTORE_DISABLE_PLUGINS)"]


@pytest.mark.parametrize(
    ("name", "factory", "why"),
    [
        ("badmodule", "nosuchmodule_xyz:Backend", "there is no module 'nosuchmodule_xyz'"),
        ("badclass", "anystore.backends.memory:MemoryBackendd", "no attribute 'MemoryBackendd'"),
        ("badtype", "anystore.keys:lock_name", "returned str, not an anystore.backend.Backend"),
    ],
)
def test_bad_factories_are_plugin_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, factory: str, why: str
):
    source = f"""
        from anystore import hookimpl

        @hookimpl
        def anystore_register_backends(register):
            register("bad", "{factory}")
    """
    install_plugin(tmp_path, monkeypatch, name, name, source)
    with pytest.raises(PluginError, match=rf"'{name}' \(distribution {name}\)") as error:
        get_store("bad://x")
    assert why in str(error.value)


@pytest.mark.parametrize(
    ("uri", "dist"),
    [
        ("redis://localhost/0", "anystore-redis"),
        ("s3://bucket/x", "anystore-s3"),
        ("postgresql+psycopg://u:secret@h/db", "anystore-sql[postgresql]"),
        ("mariadb://u@h/db", "anystore-sql[mysql]"),
        ("postgresql+psycopg2://u@h/db", 'anystore-sql"'),  # [postgresql] is psycopg 3
        ("sqlite:///x.db", "anystore-sql"),
    ],
)
def test_missing_plugin_names_the_distribution(
    monkeypatch: pytest.MonkeyPatch, uri: str, dist: str
):
    only_core_installed(monkeypatch)
    with pytest.raises(BackendNotFound, match=f'pip install "{re.escape(dist)}') as error:
        get_store(uri)
    assert "memory://" in str(error.value)
    assert "secret" not in str(error.value)


def test_a_disabled_plugin_is_named_as_disabled_not_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANYSTORE_DISABLE_PLUGINS", "redis")
    reset_plugins()
    with pytest.raises(BackendNotFound, match="disabled by ANYSTORE_DISABLE_PLUGINS") as error:
        get_store("redis://localhost/0")
    assert "pip install" not in str(error.value)
    assert main(["backends"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("redis")]
    assert listed and listed[0].endswith("disabled (ANYSTORE_DISABLE_PLUGINS)")


def test_a_disabled_name_no_plugin_has_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANYSTORE_DISABLE_PLUGINS", "anystore-redis")  # a distribution's name
    reset_plugins()
    with pytest.warns(PluginWarning, match=r"'anystore-redis', which no installed plugin"):
        get_store("memory://")


def test_unknown_scheme_lists_installed_schemes():
    with pytest.raises(BackendNotFound, match=r"nosuch://.*memory://"):
        get_store("nosuch://x")


def _imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


HEAVY = {"redis", "sqlalchemy", "boto3", "botocore", "s3fs", "aiobotocore", "psycopg", "pymysql"}


def test_import_anystore_loads_nothing():
    modules = _imported_after("import anystore")
    assert not modules & (HEAVY | {"pluggy", "pydantic", "fsspec", "importlib_metadata"})


def test_memory_store_imports_no_backend_client():
    modules = _imported_after("import anystore; anystore.get_store('memory://').put('a', 1)")
    assert not modules & (HEAVY | {"fsspec", "pydantic"})


def test_discovery_cache_sees_new_installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    reset_plugins()
    with pytest.raises(BackendNotFound):
        get_store("fake://x")  # discovery ran and cached "no fake plugin"
    assert list((tmp_path / "cache" / "anystore").iterdir())
    (site / "cacheplug_backend.py").write_text(textwrap.dedent(FAKE_BACKEND))
    install_plugin(
        site, monkeypatch, "cacheplug", "cacheplug", FAKE.format(module="cacheplug", extra="")
    )
    assert type(get_store("fake://x").backend).__name__ == "FakeBackend"
    reset_plugins()
    assert type(get_store("fake://x").backend).__name__ == "FakeBackend"  # from the cache


def test_every_hook_is_documented():
    from anystore import hookspecs

    specs = [name for name in dir(hookspecs) if name.startswith("anystore_")]
    assert specs
    for name in specs:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.split()) >= 20, f"{name} needs a docstring for plugin authors"


def test_the_foreign_anystore_distribution_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    info = tmp_path / "anystore-1.5.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: anystore\nVersion: 1.5.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    with pytest.raises(PluginError, match=r"anystore 1\.5\.5 \(a different project") as error:
        get_store("memory://")
    assert "pip uninstall anystore" in str(error.value)


@pytest.mark.parametrize(
    ("uri", "meant"),
    [
        ("redis:/localhost/0", "redis://localhost/0"),
        ("s3:bucket/x", "s3://bucket/x"),
        ("memory:", "memory://"),
        ("file:/tmp/x", "file:///tmp/x"),
        ("gzip::memory:/x", "memory://x"),
        ("sqlite:relative.db", "sqlite:///relative.db"),
        ("sqlite:/tmp/x.db", "sqlite:////tmp/x.db"),
        ("unix:/tmp/redis.sock", "unix:///tmp/redis.sock"),
        ("file:x", "./x"),
    ],
)
def test_a_uri_with_its_slashes_missing_is_refused(
    uri: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to open (and create) a local folder named after the scheme.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidOption, match=f"write {re.escape(meant)}"):
        get_store(uri)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("uri", ["", "   ", " ./data", "data\n"])
def test_a_blank_or_padded_uri_is_refused(
    uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if uri == "":
        assert get_store(uri).uri == ".anystore"  # empty means the default, as None does
        return
    with pytest.raises(InvalidOption, match="whitespace"):
        get_store(uri)
    assert list(tmp_path.iterdir()) == []


def test_a_path_object_is_never_taken_for_a_typo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = get_store(tmp_path / "trail ")  # a Path: whitespace and all, it is what it says
    store.put("k", 1)
    assert (tmp_path / "trail " / "k").exists()
    get_store(Path("redis:") / "x").put("k", 1)
    assert (tmp_path / "redis:" / "x" / "k").exists()


@pytest.mark.parametrize("path", ["notes:2024", "./redis:/x", "c:/x", "data", "data:2024"])
def test_paths_with_colons_that_name_no_scheme_stay_paths(
    path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = get_store(path)
    store.put("k", 1)
    assert (tmp_path / path / "k").exists()


def test_a_layer_in_capitals_says_layers_are_lowercase() -> None:
    with pytest.raises(BackendNotFound, match=r"GZIP:: is not a layer, gzip:: is"):
        get_store("GZIP::memory://x")


def test_smart_functions_refuse_mistyped_uris_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anystore.smart import smart_read, smart_write

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidOption, match=r"write s3://data\.json"):
        smart_write("s3:data.json", b"x")  # it wrote the local file ./s3:data.json
    with pytest.raises(InvalidOption, match="data: URL"):
        smart_read("data:text/plain;base64,aGk=")  # it read a local file of that name
    assert list(tmp_path.iterdir()) == []
    smart_write(tmp_path / "trail " / "v.txt", b"y")  # a Path stays a path
    assert smart_read(tmp_path / "trail " / "v.txt") == b"y"
