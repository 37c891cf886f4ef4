"""The generic fsspec backend reports an unreachable server as `BackendUnavailable` on every
operation (never as a missing key), and a filesystem it cannot open as a typed error.

Loopback only: a port nobody listens on, a socket that never answers, and a threaded
`http.server` on 127.0.0.1 for what a live server answers.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from anystore import get_store
from anystore.backends.fsspec import FsspecBackend
from anystore.cli import main
from anystore.exceptions import BackendUnavailable, DoesNotExist, InvalidOption
from anystore.smart import smart_read
from anystore.store import Store
from tests.services import free_port

aiohttp = pytest.importorskip("aiohttp")  # fsspec's http filesystem needs it

# Each read of a live key or store operation; all of them must say "unavailable".
OPERATIONS: dict[str, Callable[[Store], Any]] = {
    "get": lambda store: store.get("x"),
    "get_or_none": lambda store: store.get("x", raise_on_nonexist=False),
    "exists": lambda store: store.exists("x"),
    "info": lambda store: store.info("x"),
    "info_or_none": lambda store: store.info("x", raise_on_nonexist=False),
    "iterate_keys": lambda store: list(store.iterate_keys()),
    "iterate_keys_prefix": lambda store: list(store.iterate_keys(prefix="sub")),
    "open": lambda store: store.open("x").read(),
}


@pytest.fixture
def dead_uri() -> str:
    """An http URI on 127.0.0.1 where nothing listens (connection refused), with a password."""
    return f"http://user:hunter2@127.0.0.1:{free_port()}/"


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves `root`; paths under /busy/ answer 503 and under /locked/ 401."""

    root = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=self.root, **kwargs)

    def _status(self) -> bool:
        for prefix, status in (("/busy/", 503), ("/locked/", 401)):
            if self.path.startswith(prefix):
                self.send_error(status)
                return True
        return False

    def do_GET(self) -> None:
        if not self._status():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._status():
            super().do_HEAD()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[http.server.ThreadingHTTPServer, str]]:
    """A threaded http.server on 127.0.0.1 serving tmp_path/www (with www/there.txt)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "there.txt").write_bytes(b"here" * 1000)
    handler = type("Handler", (_Handler,), {"root": str(root)})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_refused_connection_is_unavailable_not_missing(dead_uri: str, operation: str) -> None:
    store = get_store(dead_uri)
    with pytest.raises(BackendUnavailable, match=r"Cannot reach http://user:\*\*\*@127") as error:
        OPERATIONS[operation](store)
    # The password is masked, and not chained in (fsspec's own errors carry the raw URL).
    assert "hunter2" not in str(error.value) and error.value.__cause__ is None


def test_smart_read_and_the_cli_report_an_outage(
    dead_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(BackendUnavailable):
        smart_read(f"{dead_uri}x")
    assert main(["--store", dead_uri, "get", "x"]) == 3  # EXIT_UNAVAILABLE, not 1 (missing)
    assert "Cannot reach" in capsys.readouterr().err


def test_a_server_that_never_answers_times_out_as_unavailable() -> None:
    # Accepts connections (the kernel's backlog) but never reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        store = get_store(uri, client_kwargs={"timeout": aiohttp.ClientTimeout(total=0.2)})
        for operation in ("exists", "get"):
            with pytest.raises(BackendUnavailable, match="Cannot reach"):
                OPERATIONS[operation](store)


def test_an_unknown_host_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS query leaves the machine: the resolver aiohttp calls fails as for an unknown name.
    def unknown(*args: object, **kwargs: object) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    store = get_store(f"http://no-such-host-{uuid.uuid4().hex}.invalid/")
    for operation in ("exists", "get_or_none", "iterate_keys"):
        with pytest.raises(BackendUnavailable, match="Name or service not known"):
            OPERATIONS[operation](store)


def test_a_live_server_keeps_404_missing_and_5xx_unavailable(
    server: tuple[http.server.ThreadingHTTPServer, str],
) -> None:
    _, uri = server
    store = get_store(f"{uri}/")
    assert store.get("there.txt", serialization_mode="raw") == b"here" * 1000
    assert "there.txt" in list(store.iterate_keys())
    # A 404 is a missing key, as before.
    assert store.exists("gone.txt") is False
    assert store.get("gone.txt", raise_on_nonexist=False) is None
    for missing in (store.get, store.info, store.open):
        with pytest.raises(DoesNotExist):
            missing("gone.txt")
    # A server error or refused credentials is not: it would hide an outage as a miss.
    for key, said in (("busy/x", "HTTP 503"), ("locked/x", "HTTP 401")):
        for read in (store.exists, store.info, store.open):
            with pytest.raises(BackendUnavailable, match=said):
                read(key)
        with pytest.raises(BackendUnavailable, match=said):
            store.get(key, raise_on_nonexist=False)


def test_a_server_gone_mid_read_is_unavailable_not_an_overwrite(
    server: tuple[http.server.ThreadingHTTPServer, str],
) -> None:
    httpd, uri = server
    handle = get_store(f"{uri}/").open("there.txt")  # stats the value; no byte read yet
    httpd.shutdown()
    httpd.server_close()  # now the port refuses connections
    with pytest.raises(BackendUnavailable, match="Cannot reach"):
        handle.read()


def test_other_protocols_map_connection_errors_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any fsspec protocol (sftp, webdav...) may raise the builtin connection errors.
    uri = f"memory://fsspec-errors-{uuid.uuid4().hex}"
    store = Store(FsspecBackend(uri), uri)
    store.put("sub/x", b"1")
    fs = store.backend.fs  # type: ignore[attr-defined]

    def reset(*args: object, **kwargs: object) -> Any:
        raise ConnectionResetError(104, "Connection reset by peer")

    for method in ("ls", "pipe_file", "cat_file"):
        monkeypatch.setattr(fs, method, reset)
    with pytest.raises(BackendUnavailable, match="Connection reset"):
        list(store.iterate_keys())  # fsspec's walk dropped it: an empty listing
    with pytest.raises(BackendUnavailable, match="Connection reset"):
        store.put("y", b"2")  # was ReadOnly: a reset is an OSError, as a refused write is


def _archive(tmp_path: Path) -> Path:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("sub/b.txt", "hello")
    return archive


def test_an_archive_url_without_its_archive_says_how_to_name_it(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    suggested = rf"zip://::{re.escape(str(archive))}.*fo='{re.escape(str(archive))}'"
    with pytest.raises(InvalidOption, match=suggested):
        get_store(f"zip://{archive}")  # read by fsspec as a path inside an unnamed archive
    # ...and the spellings the message suggests work:
    assert list(get_store(f"zip://::{archive}").iterate_keys()) == ["sub/b.txt"]
    assert list(get_store(f"zip://sub::{archive}").iterate_keys()) == ["b.txt"]
    assert list(get_store("zip://", fo=str(archive)).iterate_keys()) == ["sub/b.txt"]


def test_a_missing_or_broken_archive_is_an_invalid_option(tmp_path: Path) -> None:
    missing = tmp_path / "missing.zip"
    with pytest.raises(InvalidOption, match=r"fo='missing\.zip'.*FileNotFoundError"):
        get_store("zip://", fo="missing.zip")
    with pytest.raises(InvalidOption, match=r"archive exists.*FileNotFoundError"):
        get_store(f"zip://::{missing}")
    (tmp_path / "not.zip").write_text("plain text")
    with pytest.raises(InvalidOption, match="BadZipFile"):
        get_store(f"zip://::{tmp_path / 'not.zip'}")
    with pytest.raises(BackendUnavailable, match="Cannot reach"):
        get_store(f"zip://::http://127.0.0.1:{free_port()}/a.zip")


def test_the_cli_reports_a_bad_archive_url_as_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", f"zip://{tmp_path}/a.zip", "get", "x"]) == 2  # was 4, a raw error
    err = capsys.readouterr().err
    assert "zip://::" in err and "IsADirectoryError" in err and err.count("\n") == 1


@pytest.mark.parametrize("chained", [False, True])
def test_a_stalled_http_server_times_out_by_default(
    chained: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anystore.backends import fsspec as fsspec_backend

    # aiohttp's own default waits five minutes; the backend's default read timeout, shortened
    # here, applies also to HTTP inside an archive URL (fsspec's options per protocol).
    monkeypatch.setattr(fsspec_backend, "HTTP_READ_TIMEOUT", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        start = time.monotonic()
        with pytest.raises(BackendUnavailable):
            if chained:
                get_store(f"zip://::{base}a.zip")
            else:
                get_store(base).get("x")
        assert time.monotonic() - start < 10


def test_a_timeout_the_caller_gives_is_kept() -> None:
    mine = aiohttp.ClientTimeout(total=3)
    store = get_store("http://127.0.0.1:1/", client_kwargs={"timeout": mine})
    assert store.backend.fs.client_kwargs["timeout"] is mine  # type: ignore[attr-defined]
