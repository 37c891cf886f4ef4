"""Local-file specifics: atomic writes, temp files, existing folders, lazy listing, symlinks,
folders that are not values, races with pruning, crash leftovers, key limits; and the generic
fsspec backend's read handles."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from anystore import get_store
from anystore.backends import confine
from anystore.backends.fsspec import FsspecBackend
from anystore.exceptions import ConcurrentModification, DoesNotExist, InvalidKey, ReadOnly
from anystore.store import Store


def test_existing_files_are_keys(tmp_path: Path):
    (tmp_path / "docs" / "a").mkdir(parents=True)
    (tmp_path / "docs" / "a" / "readme.txt").write_text("hello")
    (tmp_path / "top.json").write_text('{"x": 1}')
    store = get_store(str(tmp_path))
    assert sorted(store.iterate_keys()) == ["docs/a/readme.txt", "top.json"]
    assert store.get("docs/a/readme.txt") == "hello"
    assert store.info("docs/a/readme.txt").mimetype == "text/plain"
    child = get_store(str(tmp_path / "docs"))
    assert list(child.iterate_keys()) == ["a/readme.txt"]


def test_values_are_plain_files(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put("a/b.txt", "text")
    store.put("n", {"x": 1})
    assert (tmp_path / "a" / "b.txt").read_text() == "text"
    assert (tmp_path / "n").read_bytes() == b'{"x":1}'


def test_temp_files_never_listed(tmp_path: Path):
    store = get_store(str(tmp_path))
    handle = store.open("partial", "wb")
    handle.write(b"x" * 1000)
    assert list(store.iterate_keys()) == []
    assert any(name.startswith(".~anystore") for name in os.listdir(tmp_path))
    handle.discard()
    assert os.listdir(tmp_path) == []


def test_readers_never_see_half_a_value(tmp_path: Path):
    store = get_store(str(tmp_path))
    values = [b"a" * 500_000, b"b" * 700_000]
    store.put("k", values[0])
    stop = threading.Event()
    seen: set[bytes] = set()

    def write() -> None:
        i = 0
        while not stop.is_set():
            store.put("k", values[i % 2])
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(300):
            data = store.get("k", serialization_mode="raw")
            assert data in values
            seen.add(data[:1])
    finally:
        stop.set()
        writer.join()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".~")] == []


def test_key_cannot_be_value_and_folder(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put("a", 1)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("a/b", 2)
    store.put("c/d", 1)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("c", 2)
    assert store.get("a") == 1 and store.get("c/d") == 1


def test_delete_prunes_empty_folders(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    store.put("x/y/z", 1)
    store.delete("x/y/z")
    assert os.listdir(tmp_path / "root") == []
    store.put("x", 2)  # the name is free again
    assert store.get("x") == 2


def test_listing_walks_only_below_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = get_store(str(tmp_path))
    store.put_many({f"big/{i}/v": i for i in range(20)})
    store.put_many({"small/a": 1, "small/b/c": 2})
    visited: list[str] = []
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        visited.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert sorted(store.iterate_keys(prefix="small")) == ["small/a", "small/b/c"]
    assert all("big" not in path for path in visited)


def test_read_only_fsspec_protocol(tmp_path: Path):
    import zipfile

    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/b.txt", "hello")
        handle.writestr("c.json", '{"x": 1}')
    store = get_store(f"zip://::{archive}")
    assert sorted(store.iterate_keys()) == ["a/b.txt", "c.json"]
    assert store.get("c.json") == {"x": 1}
    with pytest.raises(ReadOnly, match="zip"):
        store.put("new", 1)


# -- a folder is not a value (issue 10, F2) ----------------------------------------------------


def _tree(root: Path) -> list[str]:
    """Every file and folder below `root`, as sorted relative paths."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_a_folder_key_is_missing_and_nothing_below_it_moves(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put_many({"a/b": 1, "a/c/d": 2})
    before = _tree(tmp_path)
    for key in ("a", "a/c"):
        with pytest.raises(DoesNotExist):
            store.pop(key)
        assert store.pop(key, raise_on_nonexist=False) is None
        with pytest.raises(DoesNotExist):
            store.get(key)
        with pytest.raises(DoesNotExist):
            store.info(key)
        with pytest.raises(DoesNotExist):
            store.open(key, "rb")
        assert store.exists(key) is False
        store.delete(key)
        assert _tree(tmp_path) == before, f"{key} as a folder was touched"
    assert sorted(store.iterate_keys()) == ["a/b", "a/c/d"]
    assert store.get("a/b") == 1 and store.get("a/c/d") == 2


def test_below_a_value_is_missing(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put("a", 1)
    with pytest.raises(DoesNotExist):
        store.pop("a/b")
    with pytest.raises(DoesNotExist):
        store.get("a/b")
    with pytest.raises(DoesNotExist):
        store.open("a/b", "rb")
    assert store.pop("a/b", raise_on_nonexist=False) is None
    assert store.info("a/b", raise_on_nonexist=False) is None
    assert store.exists("a/b") is False
    store.delete("a/b")
    assert store.get("a") == 1 and _tree(tmp_path) == ["a"]


def test_writing_over_a_folder_is_refused_and_loses_nothing(tmp_path: Path):
    store = get_store(str(tmp_path))
    store.put_many({"a/b": 1, "a/c/d": 2})
    before = _tree(tmp_path)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("a", 3)
    with pytest.raises(InvalidKey, match="both a value and a folder"):
        store.put("a", 3, ttl=60)
    with (
        pytest.raises(InvalidKey, match="both a value and a folder"),
        store.open("a", "wb") as handle,
    ):
        handle.write(b"over a folder")
    assert _tree(tmp_path) == before  # no temp file or sidecar left either
    assert store.get_many(["a/b", "a/c/d"]) == {"a/b": 1, "a/c/d": 2}


def test_a_fifo_is_not_a_value(tmp_path: Path):
    store = get_store(str(tmp_path))
    os.mkfifo(tmp_path / "pipe")
    assert store.get("pipe", raise_on_nonexist=False) is None  # and does not hang
    assert store.exists("pipe") is False
    assert store.pop("pipe", raise_on_nonexist=False) is None
    assert list(store.iterate_keys()) == []


def test_pop_prunes_folders_it_empties(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    store.put("x/y/z", 1)
    assert store.pop("x/y/z") == 1
    assert os.listdir(tmp_path / "root") == []


# -- symlinks never lead out of the root (issue 10, F4) ----------------------------------------

# Keys whose path resolves outside the root: through a folder symlink (absolute, relative), a
# file symlink, a dangling one, and missing names below an escaping folder.
ESCAPING_KEYS = [
    "link/secret.txt",
    "rel/secret.txt",
    "f",
    "dangling",
    "link/missing",
    "link/sub/new",
]


@pytest.fixture(params=["kernel", "checked", "resolved"])
def resolution(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How paths are checked: openat2 in the kernel, a check of what was opened (/proc), or a
    realpath first (platforms with neither)."""
    if request.param == "kernel" and not confine.OPENAT2:
        pytest.skip("openat2 is not available here")
    if request.param in ("checked", "resolved"):
        monkeypatch.setattr(confine, "OPENAT2", False)
    if request.param == "resolved":
        monkeypatch.setattr(confine, "FD_PATH", None)
    return request.param


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A root with symlinks leading out of it and symlinks that stay inside it."""
    outside, root = tmp_path / "outside", tmp_path / "root"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (root / "real").mkdir(parents=True)
    (root / "real" / "value").write_text("inside")
    os.symlink(outside, root / "link")
    os.symlink("../outside", root / "rel")
    os.symlink(outside / "secret.txt", root / "f")
    os.symlink(outside / "missing", root / "dangling")
    os.symlink("real/value", root / "alias")
    os.symlink(root / "real" / "value", root / "abs_alias")
    os.symlink("real", root / "inner")
    return root, outside


def test_symlinks_out_of_the_root_are_refused(resolution: str, linked: tuple[Path, Path]):
    root, outside = linked
    store = get_store(str(root))
    before = _tree(outside)
    calls = {
        "get": lambda key: store.get(key),
        "get_many": lambda key: store.get_many([key]),
        "exists": lambda key: store.exists(key),
        "info": lambda key: store.info(key),
        "pop": lambda key: store.pop(key),
        "delete": lambda key: store.delete(key),
        "put": lambda key: store.put(key, "planted"),
        "put ttl": lambda key: store.put(key, "planted", ttl=60),
        "open rb": lambda key: store.open(key, "rb"),
        "open wb": lambda key: _write_through_open(store, key),
        "lock": lambda key: store.lock(key, ttl=5).acquire(),
    }
    for key in ESCAPING_KEYS:
        for name, call in calls.items():
            with pytest.raises(InvalidKey, match="outside the store's root"):
                call(key)
                pytest.fail(f"{name}({key!r}) went through")
    assert _tree(outside) == before
    assert (outside / "secret.txt").read_text() == "secret"
    # Listings neither show nor enter what leads outside (nor a folder link inside).
    assert sorted(store.iterate_keys()) == ["abs_alias", "alias", "real/value"]
    assert list(store.iterate_keys(prefix="link")) == []
    assert list(store.iterate_keys(prefix="f")) == []
    assert sorted(os.listdir(root)) == sorted(
        ["abs_alias", "alias", "dangling", "f", "inner", "link", "real", "rel"]
    )


def _write_through_open(store, key: str) -> None:  # type: ignore[no-untyped-def]
    with store.open(key, "wb") as handle:
        handle.write(b"planted")


def test_symlinks_inside_the_root_work(resolution: str, linked: tuple[Path, Path]):
    root, _ = linked
    store = get_store(str(root))
    assert store.get("alias") == "inside"
    assert store.get("abs_alias") == "inside"
    assert store.get("inner/value") == "inside"
    assert store.info("abs_alias").size == 6
    store.put("inner/new", 1)  # lands in the folder the link points to
    assert (root / "real" / "new").read_text() == "1"
    assert sorted(store.iterate_keys(prefix="inner")) == ["inner/new", "inner/value"]
    store.put("alias", "replaced")  # replaces the link itself, never writes through it
    assert not (root / "alias").is_symlink() and store.get("real/value") == "inside"
    assert store.pop("abs_alias") == "inside"  # the link goes, what it points to stays
    assert not os.path.lexists(root / "abs_alias") and store.get("real/value") == "inside"


def test_follow_symlinks_opt_in(linked: tuple[Path, Path]):
    root, outside = linked
    os.symlink(".", root / "loop")  # a listing that follows links must still end
    store = get_store(str(root), follow_symlinks=True)
    assert store.get("link/secret.txt") == "secret"
    assert store.get("f") == "secret"
    store.put("link/planted", 1)
    assert (outside / "planted").read_text() == "1"
    keys = set(store.iterate_keys())
    assert {"f", "link/secret.txt", "link/planted", "rel/secret.txt", "inner/value"} <= keys
    assert "loop/real/value" not in keys  # the loop is cut where it comes back


def test_the_root_may_be_a_symlink(tmp_path: Path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "root")
    os.symlink(tmp_path, tmp_path / "real" / "up")
    (tmp_path / "secret.txt").write_text("secret")
    store = get_store(str(tmp_path / "root"))
    store.put("a/b", 1)
    assert (tmp_path / "real" / "a" / "b").read_text() == "1"
    assert store.backend.root == str(tmp_path / "real")
    with pytest.raises(InvalidKey, match="outside"):
        store.get("up/secret.txt")
    assert store.get("up/real/a/b") == 1  # out and back in: it resolves inside the root
    assert list(store.iterate_keys()) == ["a/b"]


def test_a_deleted_root_is_found_again(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    store.put("a", 1)
    shutil.rmtree(tmp_path / "root")
    get_store(str(tmp_path / "root")).put("b", 2)  # another process makes it anew
    assert store.get("b") == 2
    store.put("c", 3)
    assert sorted(store.iterate_keys()) == ["b", "c"]


@pytest.mark.parametrize("key", ["top", "in/a/folder"])
def test_a_write_right_after_the_root_was_deleted_makes_it_again(tmp_path: Path, key: str):
    # The first write after the delete raised ConcurrentModification ("concurrent deletes
    # removed its folder 50 times"), until some read happened to notice.
    store = get_store(str(tmp_path / "root"))
    store.put("a", 1)
    shutil.rmtree(tmp_path / "root")
    store.put(key, 2)
    assert (tmp_path / "root" / key).read_text() == "2"
    shutil.rmtree(tmp_path / "root")
    with store.open(key, "wb") as handle:
        handle.write(b"3")
    assert sorted(store.iterate_keys()) == [key]


# -- writers racing deletes that prune folders (issue 10, F6) ----------------------------------


def test_put_survives_deletes_pruning_its_folder(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    finals: dict[str, int] = {}
    deadline = time.monotonic() + 1.5

    def churn(worker: int) -> None:
        key = f"d/sub/k{worker}"
        i = 0
        while time.monotonic() < deadline:
            store.put(key, i)
            # An acknowledged write is readable until its own delete.
            assert store.get(key) == i
            store.delete(key)
            i += 1
        store.put(f"d/sub/final{worker}", i)
        finals[f"d/sub/final{worker}"] = i

    # One thread per worker, all racing at once; list() re-raises the first worker's failure.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(churn, range(4)))
    assert store.get_many(finals) == finals and len(finals) == 4
    assert sorted(store.iterate_keys()) == sorted(finals)


def test_open_write_survives_its_folder_being_pruned(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    store.put("x/y/keep", 1)
    with store.open("x/y/new", "wb") as handle:
        store.delete("x/y/keep")  # the temp file keeps the folder from being pruned
        handle.write(b"whole")
    assert store.get("x/y/new") == "whole"


# -- what a crash leaves, and cleanup (issue 10, F9) --------------------------------------------

_KILLED_WRITER = """
import sys, time
from anystore import get_store
store = get_store(sys.argv[1])
handle = store.open("big", "wb")
for _ in range(8):
    handle.write(b"x" * (1 << 20))
handle.flush()
print("written", flush=True)
time.sleep(60)
"""


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def _reserved(root: Path) -> list[str]:
    return sorted(
        str(path.relative_to(root)) for path in root.rglob(".~anystore*") if path.is_file()
    )


def test_cleanup_removes_what_a_killed_writer_left(tmp_path: Path):
    root = tmp_path / "root"
    store = get_store(str(root))
    store.put("big", "old value")
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "written\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    (orphan,) = [path for path in root.iterdir() if path.name.startswith(".~anystore-tmp~")]
    assert orphan.stat().st_size == 8 << 20
    assert store.get("big") == "old value"  # the crash left the old value whole

    # Other leftovers: a temp file deep down, a TTL sidecar whose value is gone, a lock whose
    # holder died; and what must stay: a value's sidecar, a live lock, a write in progress.
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / ".~anystore-tmp~1-2-3").write_bytes(b"half")
    (root / ".~anystore-ttl~gone").write_bytes(b"1.0")
    store.put("t", 1, ttl=600)
    # As a killed holder leaves it: its expiry long past.
    (root / ".~anystore-lock~dead").write_text('{"key": "dead", "token": "t", "expires": 1.0}')
    live = store.lock("live", ttl=600)
    live.acquire()
    young = store.open("young", "wb")
    young.write(b"in progress")
    assert store.cleanup(older_than=3600) == 0  # all of it is younger than an hour
    for path in [
        orphan,
        root / "d" / "e" / ".~anystore-tmp~1-2-3",
        root / ".~anystore-ttl~gone",
        root / ".~anystore-ttl~t",
        root / ".~anystore-lock~dead",
        root / ".~anystore-lock~live",
    ]:
        _age(path, 7200)

    assert store.cleanup(older_than=3600) == 4
    left = _reserved(root)
    temps = [name for name in left if name.startswith(".~anystore-tmp~")]
    assert len(temps) == 1 and orphan.name not in temps  # the young write's temp file
    assert sorted(set(left) - set(temps)) == [".~anystore-lock~live", ".~anystore-ttl~t"]
    assert not (root / "d").exists()  # folders emptied by the cleanup are pruned
    young.write(b", then whole")
    young.close()
    assert store.get("young") == "in progress, then whole"
    assert store.get_many(["big", "t"]) == {"big": "old value", "t": 1}
    live.release()  # still held: the cleanup left it alone
    assert store.cleanup(older_than=0) == 0


# -- key limits (issue 10, F11) -----------------------------------------------------------------


def test_key_limits_are_declared_and_hold(tmp_path: Path):
    store = get_store(str(tmp_path / "root"))
    backend = store.backend
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    assert backend.max_segment_bytes == name_max - len(".~anystore-lock~")
    assert backend.max_key_bytes == (
        os.pathconf(tmp_path, "PC_PATH_MAX") - len(os.fsencode(backend.root)) - 66
    )
    longest = "é" * (backend.max_segment_bytes // 2) + "x" * (backend.max_segment_bytes % 2)
    store.put(f"d/{longest}", 1, ttl=600)  # its TTL sidecar's name still fits
    with store.lock(f"d/{longest}", ttl=5):  # and its lock file's
        assert store.get(f"d/{longest}") == 1
    assert list(store.iterate_keys()) == [f"d/{longest}"]
    for key in (longest + "x", "x" * 300, "d/" + "y" * 256):
        for call in (store.get, store.exists, store.info, store.delete, store.pop):
            with pytest.raises(InvalidKey, match="bytes long"):
                call(key)
        with pytest.raises(InvalidKey, match="bytes long"):
            store.put(key, 1)


def test_a_long_name_written_by_another_tool(tmp_path: Path):
    store = get_store(str(tmp_path))
    (tmp_path / ("n" * 250)).write_text("made elsewhere")
    assert list(store.iterate_keys()) == ["n" * 250]  # listed, and its value can be read
    assert list(store.iterate_values()) == ["made elsewhere"]


# -- the generic fsspec backend (issue 10) --------------------------------------------------------


def test_fsspec_memory_readers_have_positions_of_their_own():
    uri = f"memory://fsspec-{uuid.uuid4().hex}"
    store = Store(FsspecBackend(uri), uri)
    store.put("k", b"0123456789")
    first, second = store.open("k", "rb"), store.open("k", "rb")
    assert first.read(3) == b"012" and second.read(3) == b"012"
    store.put("k", b"new")
    assert first.read() == b"3456789" and second.read() == b"3456789"
    store.put_many({"a/b": 1, "a/c/d": 2})
    assert store.open("a", "rb", raise_on_nonexist=False) is None
    assert store.pop("a", raise_on_nonexist=False) is None
    store.delete("a")
    assert sorted(store.iterate_keys(prefix="a")) == ["a/b", "a/c/d"]


def test_fsspec_ranged_reads_notice_an_overwrite(tmp_path: Path):
    uri = f"file://{tmp_path}"  # fsspec's local filesystem, through the generic backend
    store = Store(FsspecBackend(uri), uri)
    old = bytes(range(256)) * (12 << 10)  # 3 MiB
    store.put("k", old)
    with store.open("k", "rb") as handle:
        assert handle.seekable()
        handle.seek(-10, os.SEEK_END)
        assert handle.read() == old[-10:]
        handle.seek(0)
        assert handle.read(1 << 20) == old[: 1 << 20]
        store.put("k", b"B" * len(old))  # the same size: only the version tells them apart
        with pytest.raises(ConcurrentModification):
            handle.read()
    with store.open("k", "rb") as handle:
        store.delete("k")
        with pytest.raises(ConcurrentModification):
            handle.read()
