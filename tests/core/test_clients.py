"""The helpers for plugin authors: the client cache and the error seam."""

from __future__ import annotations

import gc
import os
import threading
import weakref

import pytest

from anystore.clients import ClientCache, Translated
from anystore.exceptions import AnystoreError, BackendUnavailable, DoesNotExist


def test_one_client_per_identity_across_threads() -> None:
    cache: ClientCache[object] = ClientCache()
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(("host", 1), make)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and all(result is made[0] for result in results)
    assert cache.get(("host", 2), make) is not made[0]
    assert cache.pop(("host", 1)) is made[0] and len(cache) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_clients() -> None:
    cache: ClientCache[int] = ClientCache()
    parent = cache.get("db", os.getpid)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports whose client it got
        os.write(write, str(cache.get("db", os.getpid)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = int(os.read(read, 32))
    assert child == pid != parent and cache.get("db", os.getpid) == parent


def test_translated_maps_and_chains_client_errors() -> None:
    def translate(error: Exception) -> AnystoreError | None:
        if isinstance(error, ConnectionRefusedError):
            return BackendUnavailable(f"cannot reach the server: {error}")
        return None

    errors = Translated(translate)
    with pytest.raises(BackendUnavailable, match="cannot reach") as caught, errors:
        raise ConnectionRefusedError("refused")
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)
    with pytest.raises(KeyError), errors:
        raise KeyError("not ours to translate")
    with pytest.raises(DoesNotExist), errors:
        raise DoesNotExist("already anystore's")
    with errors:  # reusable, and silent without an error
        pass


def test_a_release_from_a_finalizer_during_acquire_does_not_deadlock() -> None:
    # A backend whose last reference sits in a cycle is freed by the cyclic GC, which may run in
    # the middle of `acquire` (any allocation, e.g. while `make` builds a client): its finalizer
    # then calls `release` on the thread that already holds the cache's lock.
    cache: ClientCache[object] = ClientCache()
    shared = cache.acquire("conn", object)
    released: list[bool] = []

    class Owner:
        pass

    def orphan() -> None:
        owner = Owner()
        owner.cycle = owner  # type: ignore[attr-defined]
        weakref.finalize(owner, lambda: released.append(cache.release("conn", shared)))

    def make() -> object:
        orphan()
        gc.collect()  # what an allocation could trigger at any point
        return object()

    done = threading.Event()
    thread = threading.Thread(target=lambda: (cache.acquire("other", make), done.set()))
    thread.daemon = True
    thread.start()
    assert done.wait(10), "acquire never returned: the finalizer waited on the lock it held"
    assert released == [True]  # the nested release really ran, and dropped the last user
    assert len(cache) == 1  # "other" only
