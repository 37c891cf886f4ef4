"""The `anystore` command: exit codes, stdin/stdout, one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anystore.cli import main
from tests.core.test_plugins import only_core_installed


def run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_put_get_keys_info_delete(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]):
    store = ["--store", str(tmp_path)]
    assert run(capsysbinary, *store, "put", "greeting", "hello")[0] == 0
    assert run(capsysbinary, *store, "get", "greeting")[1] == b"hello"
    run(capsysbinary, *store, "put", "topic/maths", "1")
    assert run(capsysbinary, *store, "keys", "--prefix", "topic")[1] == b"topic/maths\n"
    assert run(capsysbinary, *store, "keys", "--glob", "g*")[1] == b"greeting\n"
    code, out, _ = run(capsysbinary, *store, "info", "greeting")
    assert code == 0 and json.loads(out)["size"] == 5
    assert run(capsysbinary, *store, "exists", "greeting")[:2] == (0, b"true\n")
    assert run(capsysbinary, *store, "delete", "greeting")[0] == 0
    assert run(capsysbinary, *store, "exists", "greeting")[:2] == (1, b"false\n")


def test_put_from_stdin_is_byte_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    data = bytes(range(256)) * 10
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert run(capsysbinary, "--store", str(tmp_path), "put", "blob", "-")[0] == 0
    assert run(capsysbinary, "--store", str(tmp_path), "get", "blob")[1] == data


def test_missing_key_exits_1(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]):
    code, _, err = run(capsysbinary, "--store", str(tmp_path), "get", "nothing")
    assert code == 1
    assert err.count("\n") == 1 and "nothing" in err


@pytest.mark.parametrize(
    "args",
    [
        ["get", "../escape"],
        ["put", "/abs", "x"],
        ["--store", "nosuch://x", "keys"],
        ["keys", "--glob", "[unclosed"],
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary, args: list[str]
):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsysbinary, *args)
    assert code == 2
    assert err.startswith("anystore: ") and err.count("\n") == 1


def test_backends_lists_builtin(capsysbinary: pytest.CaptureFixture[bytes]):
    code, out, _ = run(capsysbinary, "backends")
    assert code == 0
    assert b"memory://" in out and b"anystore-core" in out


def test_console_script_has_no_traceback(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "anystore.cli", "--store", str(tmp_path), "get", "a/../../b"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "'..'" in result.stderr


def test_pop_keys_info_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    store = ["--store", str(tmp_path)]
    run(capsysbinary, *store, "put", "a/one", "1")
    run(capsysbinary, *store, "put", "a/two.json", '{"x": 2}')
    code, out, _ = run(capsysbinary, *store, "keys", "--info", "--prefix", "a")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert sorted((line["key"], line["size"]) for line in lines) == [
        ("a/one", 1),
        ("a/two.json", 8),
    ]
    assert {line["mimetype"] for line in lines} >= {"application/json"}
    assert run(capsysbinary, *store, "pop", "a/one")[:2] == (0, b"1")
    assert run(capsysbinary, *store, "pop", "a/one")[0] == 1
    monkeypatch.setenv("ANYSTORE_URI", "redis://user:hunter2@localhost/0")
    code, out, _ = run(capsysbinary, "settings")
    settings = json.loads(out)
    assert code == 0 and settings["uri"] == "redis://user:***@localhost/0"
    assert settings["serialization_mode"] == "auto" and b"hunter2" not in out


def test_copy_command(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]):
    source, target = str(tmp_path / "src"), "memory://cli-copy-target"
    for i in range(3):
        run(capsysbinary, "--store", source, "put", f"k{i}", str(i))
    code, out, _ = run(capsysbinary, "copy", source, target)
    assert (code, out) == (0, b"3 copied, 0 skipped, 0 kept\n")
    assert run(capsysbinary, "copy", source, target)[1] == b"0 copied, 3 skipped, 0 kept\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("with_tqdm", [True, False])
def test_copy_shows_progress_on_a_terminal(
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    monkeypatch: pytest.MonkeyPatch,
    with_tqdm: bool,
):
    source = str(tmp_path / "src")
    for i in range(3):
        run(capsysbinary, "--store", source, "put", f"k{i}", str(i))
    if not with_tqdm:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run(capsysbinary, "copy", source, f"memory://cli-progress-{with_tqdm}")
    assert (code, out) == (0, b"3 copied, 0 skipped, 0 kept\n")
    shown = terminal.getvalue()
    # A local source counts its keys first: the display has a total and an ETA.
    if with_tqdm:
        assert "3/3" in shown and "<00:00" in shown and "copied=3" in shown
    else:
        assert "3/3 keys, ETA 0:00 (3 copied, 0 skipped, 0 kept): k" in shown
        assert shown.endswith("\n")


def _copy_on_a_terminal(
    capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch, *args: str
) -> str:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, out, _ = run(capsysbinary, "copy", *args)
    assert (code, out) == (0, b"2 copied, 0 skipped, 0 kept\n")
    return terminal.getvalue()


def test_copy_counts_only_where_listing_is_cheap_unless_asked(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
):
    import anystore.cli_copy

    source = str(tmp_path / "src")
    for i in range(2):
        run(capsysbinary, "--store", source, "put", f"k{i}", str(i))
    assert anystore.cli_copy.counts_cheaply("gzip::" + source)
    assert anystore.cli_copy.counts_cheaply("memory://x")
    assert not anystore.cli_copy.counts_cheaply("s3://bucket/x")
    assert not anystore.cli_copy.counts_cheaply("redis://localhost/0")
    shown = _copy_on_a_terminal(capsysbinary, monkeypatch, source, "memory://cnt-a", "--no-count")
    assert "2 copied" in shown and "/2 keys" not in shown
    # A source that is not cheap to list (as if remote) shows no total, unless --count asks.
    monkeypatch.setattr(anystore.cli_copy, "CHEAP_LISTING", ())
    shown = _copy_on_a_terminal(capsysbinary, monkeypatch, source, "memory://cnt-b")
    assert "2 copied" in shown and "/2 keys" not in shown
    shown = _copy_on_a_terminal(capsysbinary, monkeypatch, source, "memory://cnt-c", "--count")
    assert "2/2 keys, ETA" in shown


def test_version_and_store_after_the_command(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsysbinary.readouterr().out.decode().startswith("anystore 0.")
    store = str(tmp_path / "s")
    assert run(capsysbinary, "put", "k", "v", "--store", store)[0] == 0
    assert run(capsysbinary, "get", "k", "--store", store)[1] == b"v"
    assert run(capsysbinary, "--store", store, "get", "k")[1] == b"v"  # before it still works


def test_subcommand_help_has_a_description_and_an_example(
    capsysbinary: pytest.CaptureFixture[bytes],
):
    with pytest.raises(SystemExit):
        main(["copy", "--help"])
    shown = capsysbinary.readouterr().out.decode()
    assert "Copy keys from SOURCE_URI" in shown and "example:" in shown
    assert "3 backend unavailable" in shown


def test_unreachable_backend_exits_3(capsysbinary: pytest.CaptureFixture[bytes]):
    from tests.services import free_port

    uri = f"redis://127.0.0.1:{free_port()}/0"
    code, _, err = run(capsysbinary, "--store", uri, "get", "k")
    assert code == 3 and err.count("\n") == 1 and "Cannot reach" in err


def test_a_backend_error_is_one_line_and_exits_4(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    from anystore.backends.memory import MemoryBackend

    def broken(self: MemoryBackend, key: str) -> bytes:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(MemoryBackend, "read", broken)
    code, _, err = run(capsysbinary, "--store", "memory://", "get", "k")
    assert (code, err) == (4, "anystore: RuntimeError: disk on fire second line\n")


def test_missing_source_folder_is_an_error(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
):
    missing = str(tmp_path / "dta")
    code, out, err = run(capsysbinary, "--store", missing, "keys")
    assert (code, out) == (1, b"") and "No such folder" in err
    code, _, err = run(capsysbinary, "copy", missing, "memory://x")
    assert code == 1 and "No such folder" in err
    assert not (tmp_path / "dta").exists()


def test_ctrl_c_during_copy_says_how_far_it_got(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    import anystore.copying

    source = str(tmp_path / "src")
    for i in range(5):
        run(capsysbinary, "--store", source, "put", f"k{i}", str(i))
    real = anystore.copying._copy_value
    calls: list[str] = []

    def interrupt_third(src: Any, dst: Any, key: str) -> bool:
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(src, dst, key)

    monkeypatch.setattr(anystore.copying, "_copy_value", interrupt_third)
    code, _, err = run(capsysbinary, "copy", source, "memory://cli-interrupted")
    assert code == 130
    assert err == (
        "anystore: interrupted after 2 keys (2 copied, 0 skipped, 0 kept); "
        "run the same command again to resume\n"
    )


def test_ctrl_c_while_put_reads_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    class Typing(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(Typing()))
    code, _, err = run(capsysbinary, "--store", str(tmp_path), "put", "k")
    assert code == 130 and "nothing was written to 'k'" in err
    assert run(capsysbinary, "--store", str(tmp_path), "exists", "k")[0] == 1


def test_a_redis_error_is_not_the_missing_key_code(capsysbinary: pytest.CaptureFixture[bytes]):
    """The issue saw a raw redis error exit 1, the code of a missing key."""
    from tests.services import require_port

    require_port("127.0.0.1", 6379, "Redis")
    code, _, err = run(capsysbinary, "--store", "redis://127.0.0.1:6379/99", "keys")
    assert code == 2 and err.count("\n") == 1 and "no database 99" in err
    uri = "redis://nobody:wrong@127.0.0.1:6379/0"
    code, _, err = run(capsysbinary, "--store", uri, "keys")
    assert code == 3 and err.count("\n") == 1 and "wrong" not in err


def test_a_missing_plugin_says_how_to_install_it_from_the_repository(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    only_core_installed(monkeypatch)
    code, _, err = run(capsysbinary, "--store", "redis://localhost/0", "keys")
    assert code == 2 and err.count("\n") == 1
    assert 'pip install "anystore-redis"' in err and 'pip install "./anystore-redis"' in err


def test_the_psycopg2_hint_names_psycopg2(capsysbinary: pytest.CaptureFixture[bytes]):
    """`[postgresql]` installs psycopg 3, which does not serve postgresql+psycopg2://."""
    pytest.importorskip("anystore_sql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("psycopg2 is installed: there is no missing driver to name")
    code, _, err = run(capsysbinary, "--store", "postgresql+psycopg2://127.0.0.1/test", "keys")
    assert code == 2 and "pip install psycopg2-binary" in err
    assert "anystore-sql[postgresql]" not in err


# Start-up: a command on memory:// or a local folder must not pay for these imports (each is
# tens of milliseconds; the issue measured 0.5-1.8 s per call).
HEAVY = ("pydantic", "fsspec", "redis", "sqlalchemy", "s3fs", "aiobotocore", "tqdm", "yaml")
PROBE = f"""
import sys
from anystore.cli import main
code = main(sys.argv[1:])
print(sorted({{m.partition(".")[0] for m in sys.modules}} & {set(HEAVY)!r}), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "memory://", "keys"],
        ["--store", "{tmp}", "put", "k", "v"],
        ["--store", "{tmp}", "get", "k"],
        ["--store", "{tmp}", "keys"],
        ["--store", "gzip::{tmp}/g", "put", "k", "v"],
    ],
)
def test_start_up_imports_nothing_heavy(tmp_path: Path, args: list[str]):
    (tmp_path / "k").write_bytes(b"v")
    argv = [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "[]"


def test_python_dash_m_anystore(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "anystore", "--store", str(tmp_path / "s"), "get", "nothing"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and result.stderr.startswith("anystore: ")
    version = subprocess.run([sys.executable, "-m", "anystore", "--version"], capture_output=True)
    assert version.returncode == 0 and version.stdout.startswith(b"anystore 0.")


def test_ctrl_c_while_counting_the_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
):
    import anystore.cli_copy

    def interrupted(*args: Any) -> int:
        raise KeyboardInterrupt

    source = str(tmp_path / "src")
    run(capsysbinary, "--store", source, "put", "k", "v")
    monkeypatch.setattr(anystore.cli_copy, "_total", interrupted)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    code, _, _ = run(capsysbinary, "copy", source, "memory://cli-count-interrupted")
    assert code == 130
    assert sys.stderr.getvalue().startswith("anystore: interrupted after 0 keys")


def test_a_missing_configuration_document_is_named_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # It said "Key 'missing.yml' does not exist in ." before.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANYSTORE_JSON_URI", "missing.json")
    code, _, err = run(capsysbinary, "keys")
    assert code == 1 and err.count("\n") == 1
    assert "configuration document missing.json does not exist" in err
    assert "ANYSTORE_JSON_URI" in err


@pytest.mark.parametrize(
    "args", [["keys", "--bogus"], ["nosuch"], [], ["put"], ["put", "k", "v", "--ttl", "soon"]]
)
def test_argument_errors_are_one_line(
    args: list[str], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # argparse printed its usage first: two lines or more.
    with pytest.raises(SystemExit) as exited:
        main(args)
    err = capsysbinary.readouterr().err.decode()
    assert exited.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("anystore") and "--help)" in err


def test_a_message_of_several_lines_is_said_whole_on_one() -> None:
    from anystore.cli import _one_line

    # Cut at its first line, this said only "Parameter validation failed:".
    assert _one_line(ValueError("Parameter validation failed:\n  Invalid bucket\n")) == (
        "Parameter validation failed: Invalid bucket"
    )


def test_backend_config_that_is_not_json_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setenv("ANYSTORE_BACKEND_CONFIG", "{bad")
    code, _, err = run(capsysbinary, "--store", "memory://", "keys")
    assert code == 2 and err.count("\n") == 1
    assert "ANYSTORE_BACKEND_CONFIG is not valid JSON" in err
