"""The blob store on S3, against moto's S3 server on loopback."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lepton.errors import BlobIntegrityError, NotFound
from lepton.store.blobs import BlobStore
from lepton.store.crypto import CHUNK

pytestmark = pytest.mark.s3

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    # Fake credentials, and no profile or config file from the machine running the tests.
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    # The store finds the endpoint the way a user's deployment would: the standard variable.
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return boto3.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"lepton-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def keys(s3: Any, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def object_key(digest: str) -> str:
    return f"prefix/objects/{digest[:2]}/{digest[2:4]}/{digest}"


def test_multi_chunk_round_trip_and_dedup(s3: Any, bucket: str) -> None:
    store = BlobStore(f"s3://{bucket}/prefix", KEY)
    data = os.urandom(3 * CHUNK + 321)

    info = store.put(data[i : i + 100_000] for i in range(0, len(data), 100_000))
    again = store.put_bytes(data)

    assert info == again
    assert info.digest == hashlib.sha256(data).hexdigest()
    assert store.read_bytes(info.digest) == data
    assert keys(s3, bucket) == [object_key(info.digest)]
    stored = s3.get_object(Bucket=bucket, Key=object_key(info.digest))["Body"].read()
    assert data[:64] not in stored


def test_multipart_upload_and_aborted_writer(s3: Any, bucket: str) -> None:
    # 5 MiB parts (the S3 minimum) so a 12 MiB blob goes up as a multipart upload.
    store = BlobStore(
        f"s3://{bucket}/prefix", KEY, storage_options={"default_block_size": 5 * CHUNK}
    )
    data = os.urandom(12 * CHUNK)

    with pytest.raises(RuntimeError, match="client went away"), store.writer() as w:
        w.write(data)
        raise RuntimeError("client went away")
    assert keys(s3, bucket) == []
    # The parts already sent are aborted too, so they do not sit in the bucket costing money.
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    info = store.put_bytes(data)
    assert b"".join(store.open(info.digest)) == data


def test_tampering_through_s3_is_detected(s3: Any, bucket: str) -> None:
    store = BlobStore(f"s3://{bucket}/prefix", KEY)
    info = store.put_bytes(os.urandom(2 * CHUNK + 5))
    key = object_key(info.digest)
    raw = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    raw[CHUNK + 100] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(raw))

    with pytest.raises(BlobIntegrityError, match="altered or truncated"):
        store.read_bytes(info.digest)


def test_delete_digests_and_clean_temp(s3: Any, bucket: str) -> None:
    store = BlobStore(f"s3://{bucket}/prefix", KEY)
    infos = [store.put_bytes(f"blob {i}".encode()) for i in range(3)]
    s3.put_object(Bucket=bucket, Key="prefix/tmp/crashed-writer", Body=b"half a blob")

    assert list(store.digests()) == sorted(i.digest for i in infos)
    assert store.clean_temp() == 0  # written a moment ago: it may be a live writer's
    assert store.clean_temp(older_than_s=0) == 1
    assert not any(k.startswith("prefix/tmp/") for k in keys(s3, bucket))

    store.delete(infos[0].digest)
    store.delete(infos[0].digest)  # already gone: no error
    assert not store.exists(infos[0].digest)
    assert list(store.digests()) == sorted(i.digest for i in infos[1:])
    with pytest.raises(NotFound):
        store.open(infos[0].digest)
