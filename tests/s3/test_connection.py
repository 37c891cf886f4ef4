"""S3 connections: credentials in URLs never leak, clients are shared, a stalled endpoint fails
within its timeouts."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from anystore import get_store
from anystore.exceptions import BackendUnavailable, InvalidOption
from anystore_s3.client import POOL
from tests.services import free_port

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"


def _with_credentials(endpoint: str, key: str = "AKIAEXAMPLE", secret: str = SECRET) -> str:
    scheme, _, host = endpoint.partition("://")
    return f"{scheme}://{key}:{secret}@{host}"


# -- F12: credentials in an endpoint URL or a store URI --------------------------------------


def test_credentials_in_the_endpoint_url_work_and_stay_out_of_sight(
    bucket: str, s3_endpoint: str
) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=_with_credentials(s3_endpoint))
    store.put("k", 1)
    assert store.get("k") == 1
    backend: Any = store.backend
    assert backend.endpoint == s3_endpoint
    assert backend._connection.key == "AKIAEXAMPLE"
    assert backend._connection.secret == SECRET
    assert SECRET not in repr(backend._connection)
    assert SECRET not in backend.where and SECRET not in repr(store)


def test_credentials_in_the_store_uri(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://AKIAEXAMPLE:ab%2Fcd@{bucket}/pre", endpoint_url=s3_endpoint)
    store.put("k", 2)
    assert store.get("k") == 2
    backend: Any = store.backend
    assert (backend.bucket, backend._prefix) == (bucket, "pre/")
    assert backend._connection.secret == "ab/cd"
    assert "ab%2Fcd" not in store.uri and "ab%2Fcd" not in backend.uri


def test_bad_options_are_refused(bucket: str, s3_endpoint: str) -> None:
    for bad in ({"part_size": 1024}, {"max_attempts": 0}, {"read_timeout": 0}):
        with pytest.raises(InvalidOption, match=next(iter(bad))):
            get_store(f"s3://{bucket}", endpoint_url=s3_endpoint, **bad)


def test_a_bucket_name_s3_never_allows_is_bad_input(s3_endpoint: str) -> None:
    # botocore refuses it before any request; it was BackendUnavailable, cut to its first line
    # by the CLI ("Parameter validation failed:").
    with pytest.raises(InvalidOption, match=r"Invalid bucket name \"Bad_Bucket!\"") as error:
        get_store("s3://Bad_Bucket!", endpoint_url=s3_endpoint)
    assert "\n" not in str(error.value)


def test_a_failing_call_shows_no_secret_in_errors_or_the_debug_log(
    aws_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendUnavailable) as error:
        get_store(
            "s3://bucket",
            endpoint_url=_with_credentials(dead),
            connect_timeout=0.5,
            max_attempts=1,
        )
    assert "127.0.0.1" in str(error.value)
    assert SECRET not in str(error.value)
    assert any(record.name.startswith("botocore") for record in caplog.records)
    assert SECRET not in caplog.text
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendUnavailable) as error:
        get_store(f"s3://AKIA:{SECRET}@bucket", endpoint_url=dead, connect_timeout=0.5)
    assert SECRET not in str(error.value) and SECRET not in caplog.text


# -- F14: one client per endpoint and credentials --------------------------------------------


def test_stores_on_one_endpoint_share_one_client(bucket: str, s3_endpoint: str) -> None:
    first = get_store(f"s3://{bucket}/a", endpoint_url=s3_endpoint)
    second = get_store(f"s3://{bucket}/b", endpoint_url=s3_endpoint)
    other_keys = get_store(
        f"s3://{bucket}/c", endpoint_url=s3_endpoint, access_key_id="other", secret_access_key="x"
    )
    other_timeouts = get_store(f"s3://{bucket}/d", endpoint_url=s3_endpoint, read_timeout=7)
    assert first.backend.fs is second.backend.fs  # type: ignore[attr-defined]
    assert other_keys.backend.fs is not first.backend.fs  # type: ignore[attr-defined]
    assert other_timeouts.backend.fs is not first.backend.fs  # type: ignore[attr-defined]
    for store in (first, second, other_keys, other_timeouts):
        store.put("k", 1)
        assert store.get("k") == 1


def test_stores_opened_in_threads_share_one_client(bucket: str, s3_endpoint: str) -> None:
    stores: list[Any] = []
    barrier = threading.Barrier(8)

    def open_one(index: int) -> None:
        barrier.wait()
        stores.append(get_store(f"s3://{bucket}/t{index}", endpoint_url=s3_endpoint, anon=False))

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stores) == 8
    assert len({id(store.backend.fs) for store in stores}) == 1


def test_the_last_close_drops_the_client(bucket: str, s3_endpoint: str) -> None:
    options = {"endpoint_url": s3_endpoint, "read_timeout": 11.5}  # a connection of its own
    before = len(POOL)
    first = get_store(f"s3://{bucket}", **options)
    second = get_store(f"s3://{bucket}/x", **options)
    assert len(POOL) == before + 1
    first.close()
    assert len(POOL) == before + 1
    second.put("k", 1)  # still served
    second.close()
    assert len(POOL) == before


# -- timeouts: a stalled endpoint ------------------------------------------------------------


@pytest.fixture
def stalled_endpoint() -> Iterator[str]:
    """A private TCP listener on a free port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            held.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_stalled_endpoint_is_unavailable_within_the_timeouts(
    aws_env: None, stalled_endpoint: str
) -> None:
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"127\.0\.0\.1"):
        get_store("s3://bucket", endpoint_url=stalled_endpoint, read_timeout=0.4, max_attempts=2)
    elapsed = time.monotonic() - start
    # The upper bound has room for a loaded machine; the default 15 s timeout would take 30 s.
    assert 0.7 < elapsed < 10, f"two attempts of 0.4 s took {elapsed:.1f} s"


def test_timeouts_from_the_environment(
    aws_env: None, stalled_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANYSTORE_S3_READ_TIMEOUT", "0.3")
    monkeypatch.setenv("ANYSTORE_S3_MAX_ATTEMPTS", "1")
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="unavailable"):
        get_store("s3://bucket", endpoint_url=stalled_endpoint)
    assert time.monotonic() - start < 10  # the default 15 s read timeout would take longer


def test_default_timeouts_reach_botocore(bucket: str, s3_endpoint: str) -> None:
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    client = store.backend._run(store.backend.fs.set_session())  # type: ignore[attr-defined]
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3.0, 15.0)
    assert config.retries["total_max_attempts"] == 2  # the first attempt included


class StallingProxy:
    """A TCP proxy to the real endpoint that can stall: once `stall()` is called it keeps every
    connection open and accepts new ones but passes no more bytes, as a SIGSTOPped server does."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition("//")[2].partition(":")
        self.target = (host, int(port))
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.sockets: list[socket.socket] = [self.server]
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            self.sockets.append(client)
            if self.stalled.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.target)
            self.sockets.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.1)
        while not self.closed.is_set():
            if self.stalled.is_set():
                time.sleep(0.05)  # hold the bytes: the server "is paused"
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def stall(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        self.closed.set()
        for one in self.sockets:
            one.close()


@pytest.fixture
def stalling_proxy(s3_endpoint: str) -> Iterator[StallingProxy]:
    proxy = StallingProxy(s3_endpoint)
    yield proxy
    proxy.close()


def _gives_up(call: Any, within: float) -> BaseException | None:
    """Run `call` in a thread: the error it raised within `within` seconds (fails if it hangs)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as error:  # handed to the test, whatever it is
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert outcome, f"the call did not return within {within:.0f} s"
    return outcome[0]


@pytest.mark.parametrize("call", ["get", "put", "put_with_ttl", "open_wb", "delete", "keys"])
def test_every_call_on_a_stalled_server_gives_up_within_its_timeouts(
    bucket: str, stalling_proxy: StallingProxy, call: str
) -> None:
    # botocore asks for `Expect: 100-continue` on uploads and aiohttp waits for it with no timeout:
    # before that header was dropped, put and open("wb") hung forever here while get gave up.
    # 2 s: moto on a loaded machine must answer the warm-up in time, and the default 15 s
    # read timeout would still fail the bounds below.
    store = get_store(
        f"s3://{bucket}", endpoint_url=stalling_proxy.url, read_timeout=2, max_attempts=1
    )
    store.put("warm", "x" * 100)
    assert store.get("warm") == "x" * 100
    stalling_proxy.stall()

    def open_wb() -> None:
        with store.open("streamed", "wb") as fh:
            fh.write(b"y" * 100)

    calls = {
        "get": lambda: store.get("warm"),
        "put": lambda: store.put("new", b"y" * 100),
        "put_with_ttl": lambda: store.put("new", b"y" * 100, ttl=60),
        "open_wb": open_wb,
        "delete": lambda: store.delete("warm"),
        "keys": lambda: list(store.iterate_keys()),
    }
    start = time.monotonic()
    error = _gives_up(calls[call], within=15)
    assert isinstance(error, BackendUnavailable), repr(error)
    assert time.monotonic() - start < 10
