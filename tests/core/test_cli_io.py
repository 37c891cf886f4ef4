"""`anystore io -i IN -o OUT`, `get -o FILE`, `put -i FILE`, and `settings` with config files, on
memory, local, SQLite and Redis URIs (S3 through smart IO in tests/s3/test_smart_s3.py)."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from anystore import get_store, smart_read, smart_write
from anystore.cli import EXIT_MISSING, EXIT_USAGE, main
from tests.core.test_compression import store_uri  # noqa: F401  (the per-backend fixture)
from tests.core.test_smart import _uri


def run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_io_between_uris(
    store_uri: str,  # noqa: F811
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"a,b\n1,2\n")
    target = _uri(store_uri, "copied/in.csv")
    assert run(capsysbinary, "io", "-i", str(source), "-o", target)[0] == 0
    assert smart_read(target) == b"a,b\n1,2\n"
    code, out, _ = run(capsysbinary, "io", "-i", target)  # -o defaults to stdout
    assert (code, out) == (0, b"a,b\n1,2\n")
    packed = _uri(store_uri, "packed.csv.gz")
    assert (
        run(capsysbinary, "io", "-i", target, "-o", packed, "--output-compression", "infer")[0] == 0
    )
    assert gzip.decompress(smart_read(packed)) == b"a,b\n1,2\n"
    code, out, _ = run(capsysbinary, "io", "-i", packed, "--input-compression", "gz")
    assert (code, out) == (0, b"a,b\n1,2\n")


def test_io_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00from stdin\xff")))
    assert run(capsysbinary, "io", "-o", str(tmp_path / "out.bin"))[0] == 0
    assert (tmp_path / "out.bin").read_bytes() == b"\x00from stdin\xff"


def test_io_missing_input_writes_nothing(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, _, err = run(capsysbinary, "io", "-i", str(tmp_path / "none"), "-o", str(tmp_path / "o"))
    assert code == EXIT_MISSING and err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run(capsysbinary, "io", "-i", str(tmp_path), "-o", "-")  # a folder, no key
    assert code in (EXIT_MISSING, EXIT_USAGE) and err.startswith("anystore: ")
    (tmp_path / "in").write_bytes(b"x")
    code, _, err = run(
        capsysbinary,
        "io",
        "-i",
        str(tmp_path / "in"),
        "-o",
        "memory://x/y",
        "--output-compression",
        "rar",
    )
    assert code == EXIT_USAGE and "Unknown compression" in err


def test_get_to_a_file_and_put_from_a_file(
    store_uri: str,  # noqa: F811
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    source = tmp_path / "value.bin"
    source.write_bytes(bytes(range(256)) * 10)
    assert run(capsysbinary, "--store", store_uri, "put", "k/v", "-i", str(source))[0] == 0
    assert get_store(store_uri).get("k/v", serialization_mode="raw") == source.read_bytes()
    code, out, _ = run(
        capsysbinary, "--store", store_uri, "get", "k/v", "-o", str(tmp_path / "back")
    )
    assert (code, out) == (0, b"")
    assert (tmp_path / "back").read_bytes() == source.read_bytes()
    code, _, _ = run(
        capsysbinary, "get", "--store", store_uri, "missing", "-o", str(tmp_path / "m")
    )
    assert code == EXIT_MISSING and not (tmp_path / "m").exists()
    code, _, _ = run(capsysbinary, "put", "--store", store_uri, "k", "-i", str(tmp_path / "none"))
    assert code == EXIT_MISSING and not get_store(store_uri).exists("k")


def test_settings_show_a_configuration_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    doc = tmp_path / "store.json"
    smart_write(str(doc), json.dumps({"uri": "redis://u:hunter2@h/0", "default_ttl": 30}))
    monkeypatch.setenv("ANYSTORE_JSON_URI", str(doc))
    monkeypatch.setenv("ANYSTORE_SERIALIZATION_MODE", "raw")
    code, out, _ = run(capsysbinary, "settings")
    values = json.loads(out)
    assert code == 0 and values["uri"] == "redis://u:***@h/0" and b"hunter2" not in out
    assert values["default_ttl"] == 30 and values["serialization_mode"] == "raw"
    assert values["json_uri"] == str(doc)
