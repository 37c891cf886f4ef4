"""open(key, "wb") on S3: what a multipart upload sends with its parts."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import zlib
from typing import Any

import boto3
import pytest

from anystore import get_store
from anystore.exceptions import BackendUnavailable

MIB = 1024 * 1024


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def test_parts_carry_their_crc32(bucket: str, s3_endpoint: str) -> None:
    """Each part goes with its CRC32 and the upload is created for them, so the object keeps
    the composite checksum of its parts (S3 checks each part against it on arrival)."""
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    data = os.urandom(12 * MIB + 1)  # parts of 5, 5 and 2 MiB + 1 byte
    with store.open("v", "wb") as handle:
        for start in range(0, len(data), MIB):  # written in chunks that straddle no part
            handle.write(data[start : start + MIB])
    assert store.get("v", serialization_mode="raw") == data
    parts = [data[start : start + 5 * MIB] for start in range(0, len(data), 5 * MIB)]
    composite = base64.b64encode(_crc32(b"".join(_crc32(part) for part in parts))).decode()
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key="v", ChecksumMode="ENABLED")
    # AWS appends "-<number of parts>" to a composite checksum; moto leaves it out.
    assert head["ChecksumCRC32"] in (composite, f"{composite}-3")


def test_a_value_below_one_part_is_one_put(bucket: str, s3_endpoint: str) -> None:
    """No multipart upload (and no part checksum) for a value that never fills a part."""
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    with store.open("small", "wb") as handle:
        handle.write(b"s" * (5 * MIB - 1))
    assert store.get("small", serialization_mode="raw") == b"s" * (5 * MIB - 1)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key="small")
    assert "-" not in head["ETag"]  # a multipart object's ETag ends in -<parts>


def test_upload_checksums_can_be_turned_off(bucket: str, s3_endpoint: str) -> None:
    """`upload_checksums=False`: the parts go without a checksum (for services that refuse
    x-amz-checksum headers), so the object has none; the value is the same."""
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint, upload_checksums=False)
    data = os.urandom(6 * MIB)
    with store.open("plain", "wb") as handle:
        handle.write(data)
    assert store.get("plain", serialization_mode="raw") == data
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" not in head
    assert head["ETag"].strip('"').endswith("-2")  # still a multipart upload of two parts


def test_a_failed_part_is_never_published_with_a_hole(
    bucket: str, s3_endpoint: str, monkeypatch: Any
) -> None:
    """A part that fails (its bytes already out of the buffer), an error the caller catches and
    more writes: close raises, nothing is published, and the upload is aborted."""
    from anystore_s3 import writer

    send = writer.MultipartTarget._send

    refused: list[int] = []

    def refuse_part_two(self: writer.MultipartTarget, data: bytes) -> None:
        if self._next_part == 2 and not refused:
            refused.append(len(data))  # its bytes are out of the buffer: lost
            raise BackendUnavailable("part 2 was refused")
        send(self, data)

    monkeypatch.setattr(writer.MultipartTarget, "_send", refuse_part_two)
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    handle = store.open("holey", "wb")
    failures = 0
    for _ in range(4):
        try:
            handle.write(os.urandom(5 * MIB))
        except BackendUnavailable:
            failures += 1
    assert failures == 1 and refused == [5 * MIB]
    with pytest.raises(BackendUnavailable, match="Nothing was published"):
        handle.close()
    assert not store.exists("holey")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_an_abandoned_upload_does_not_hang_the_interpreter_exit(
    bucket: str, s3_endpoint: str
) -> None:
    """A write handle still open at exit is dropped without waiting for the client's event loop,
    which is already stopped then (the exit used to hang for ever); nothing is published."""
    code = (
        "from anystore import get_store\n"
        f"store = get_store('s3://{bucket}', endpoint_url='{s3_endpoint}')\n"
        "handle = store.open('abandoned', 'wb')\n"
        "handle.write(b'x' * (6 * 1024 * 1024))  # a multipart upload is under way\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert not get_store(f"s3://{bucket}", endpoint_url=s3_endpoint).exists("abandoned")


def test_a_service_refusing_checksums_gets_the_upload_without_them(
    bucket: str, s3_endpoint: str, monkeypatch: Any
) -> None:
    """CreateMultipartUpload with ChecksumAlgorithm answered 400 (as some S3-compatible services
    do): the upload starts again without checksums, and the value is written whole."""
    from botocore.exceptions import ClientError

    from anystore_s3 import writer

    created: list[dict[str, Any]] = []
    init = writer.MultipartTarget.__init__

    def refusing_init(self: writer.MultipartTarget, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        call = self._call

        async def picky(method: str, **arguments: Any) -> Any:
            if method == "create_multipart_upload":
                created.append(arguments)
                if "ChecksumAlgorithm" in arguments:
                    raise ClientError(
                        {
                            "Error": {"Code": "InvalidArgument", "Message": "no checksums"},
                            "ResponseMetadata": {"HTTPStatusCode": 400},
                        },
                        method,
                    )
            if method == "upload_part":
                assert "ChecksumCRC32" not in arguments
            return await call(method, **arguments)

        self._call = picky

    monkeypatch.setattr(writer.MultipartTarget, "__init__", refusing_init)
    store = get_store(f"s3://{bucket}", endpoint_url=s3_endpoint)
    data = os.urandom(11 * MIB)
    with store.open("picky", "wb") as handle:
        handle.write(data)
    assert [("ChecksumAlgorithm" in arguments) for arguments in created] == [True, False]
    assert store.get("picky", serialization_mode="raw") == data
