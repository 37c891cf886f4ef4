"""open(key, "wb") on S3: what a multipart upload sends with its parts."""

from __future__ import annotations

import base64
import os
import zlib

import boto3

from anystore import get_store

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
