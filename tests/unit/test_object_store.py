"""The object store hook: which S3 faults restart a stream, what it streams, its retry policy,
its encryption on every write and its checked deletes (no network: stub clients, moto in-process)."""

from __future__ import annotations

import contextlib
import hashlib
import io

import pytest
import zstandard
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError

from airflow_backup_provider.hooks import object_store
from airflow_backup_provider.hooks.object_store import ObjectStoreHook, is_retryable_s3_fault


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_retryable_faults():
    assert is_retryable_s3_fault(client_error("InternalError", 500))
    assert is_retryable_s3_fault(client_error("SlowDown", 503))
    assert is_retryable_s3_fault(EndpointConnectionError(endpoint_url="http://x"))
    assert is_retryable_s3_fault(S3UploadFailedError("Failed to upload: InternalError (500)"))
    assert not is_retryable_s3_fault(client_error("AccessDenied", 403))
    assert not is_retryable_s3_fault(S3UploadFailedError("An error occurred (AccessDenied) when calling PutObject"))
    assert not is_retryable_s3_fault(ValueError("bug"))


def test_upload_retries_from_a_fresh_source_and_hashes_the_original_bytes(monkeypatch):
    hook = ObjectStoreHook(aws_conn_id=None, attempts=3, max_backoff=0.01, sse="AES256")
    data = b"sstable " * 50_000
    stored: dict[str, bytes] = {}
    calls = {"n": 0, "opened": 0}

    def fake_load(file_obj, bucket_name, key):
        calls["n"] += 1
        body = file_obj.read(1000)
        if calls["n"] == 1:
            raise client_error("InternalError", 500)  # fails after part of the stream was read
        while chunk := file_obj.read(65536):
            body += chunk
        stored[key] = body

    def source():
        calls["opened"] += 1
        return io.BytesIO(data)

    monkeypatch.setattr(hook, "_send_stream", fake_load)
    monkeypatch.setattr(object_store, "CHUNK", 4096)
    result = hook.upload_stream("bucket", "k.zst", source)
    assert calls == {"n": 2, "opened": 2}
    assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.compressed_size == len(stored["k.zst"]) < len(data)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored["k.zst"]) == data
    assert hook.extra_args["ServerSideEncryption"] == "AES256"


def test_kms_key_means_aws_kms():
    hook = ObjectStoreHook(aws_conn_id=None, kms_key_id="alias/backups")
    assert hook.extra_args == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/backups"}


class _DeleteAnswers:
    """A stub S3 client whose batch delete reports one object it could not delete."""

    def __init__(self):
        self.deleted: list[str] = []

    def get_paginator(self, name):
        class Pages:
            def paginate(self, **kwargs):
                return [{"Contents": [{"Key": "c/x/20261120/a"}, {"Key": "c/x/20261120/b"}]}]

        return Pages()

    def delete_objects(self, Bucket, Delete):
        self.deleted += [o["Key"] for o in Delete["Objects"]]
        return {"Errors": [{"Key": "c/x/20261120/b", "Code": "AccessDenied", "Message": "Access Denied"}]}


def test_a_delete_that_s3_answers_with_errors_raises(monkeypatch):
    import pytest

    hook = ObjectStoreHook(aws_conn_id=None)
    monkeypatch.setattr(hook, "get_conn", _DeleteAnswers)
    with pytest.raises(object_store.DeleteFailed, match=r"c/x/20261120/b: AccessDenied"):
        hook.delete_prefix("bucket", "c/x/20261120/")


def test_every_write_is_encrypted_and_retries_are_botocores_standard_mode():
    hook = ObjectStoreHook(aws_conn_id=None, region_name="us-east-1")
    assert hook.extra_args == {"ServerSideEncryption": "AES256"}
    assert hook.config.retries["mode"] == "standard"


def test_every_path_that_writes_stores_the_object_under_the_configured_kms_key(aws, tmp_path):
    """S3 encrypts unconfigured buckets with AES256 anyway: a KMS key proves the setting reached each write."""
    aws.s3.create_bucket(Bucket="backups")
    hook = ObjectStoreHook(aws_conn_id="aws_default", kms_key_id="alias/backups")
    hook.put_bytes("backups", "small/manifest.json", b"{}", "application/json")
    hook.upload_stream("backups", "stream/file.zst", lambda: io.BytesIO(b"x" * 1000))
    hook.upload_parts("backups", "parts/node.tar", [b"y" * (5 * 1024 * 1024), b"z" * 10], part_size=5 * 1024 * 1024)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "pack").write_bytes(b"p" * 100)
    hook.sync_up(tmp_path / "repo", "backups", "sync")
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket="backups")["Contents"]]
    assert {"small/manifest.json", "stream/file.zst", "parts/node.tar", "sync/pack"} <= set(keys)
    assert any(k.startswith("sync/") and k != "sync/pack" for k in keys), keys  # the sync's manifest
    for key in keys:
        head = aws.s3.head_object(Bucket="backups", Key=key)
        assert (key, head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == (key, "aws:kms", "alias/backups")


def test_every_upload_request_carries_a_sha256_and_no_body_signature(aws, tmp_path, monkeypatch):
    """Over plain HTTP botocore would SHA-256-sign each body on top of its checksum (the same bytes
    hashed twice): the hook turns body signing off, so every PutObject/UploadPart must carry a
    SHA-256 S3 checks instead, a small synced file in one PUT with the file's own SHA-256."""
    import base64
    import json
    import os

    monkeypatch.setenv(
        "AIRFLOW_CONN_PLAIN_HTTP",
        json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1", "endpoint_url": "http://s3.amazonaws.com"}}),
    )
    aws.s3.create_bucket(Bucket="backups")
    mib = 1024 * 1024
    hook = ObjectStoreHook(aws_conn_id="plain_http", part_size=5 * mib)
    sent: list[tuple[str, dict[str, str]]] = []

    def record(request, event_name, **kwargs):
        if event_name.rsplit(".", 1)[-1] in ("PutObject", "UploadPart"):
            headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
            sent.append((event_name.rsplit(".", 1)[-1], headers))

    hook.get_conn().meta.events.register("before-send.s3", record)
    noise = os.urandom(6 * mib)  # incompressible: the stream goes up in two parts
    hook.put_bytes("backups", "small/manifest.json", b"{}", "application/json")
    hook.upload_stream("backups", "stream/file.zst", lambda: io.BytesIO(noise))
    hook.upload_parts("backups", "parts/node.tar", [noise], part_size=5 * mib)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "small.pack").write_bytes(noise[:mib])
    (tmp_path / "repo" / "large.pack").write_bytes(noise)  # above part_size: in parts
    hook.sync_up(tmp_path / "repo", "backups", "sync")

    kinds = [kind for kind, _ in sent]
    assert kinds.count("UploadPart") == 6 and kinds.count("PutObject") == 3, kinds  # +1 PUT: the manifest
    for kind, headers in sent:
        assert headers.get("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD", (kind, headers)
        assert headers.get("x-amz-checksum-sha256"), (kind, headers)
    file_digest = base64.b64encode(hashlib.sha256(noise[:mib]).digest()).decode()
    assert [h["x-amz-checksum-sha256"] for _, h in sent].count(file_digest) == 1


def test_a_stream_read_is_hashed_once_and_other_reads_keep_s3s_checksum(aws):
    """download_stream's GET asks no response checksum (its caller compares the SHA-256 it returns
    with a manifest: botocore would hash the same bytes again); a plain read still has S3's checked."""
    import os

    aws.s3.create_bucket(Bucket="backups")
    hook = ObjectStoreHook(aws_conn_id="aws_default")
    data = os.urandom(300_000) + b"sstable " * 50_000
    uploaded = hook.upload_stream("backups", "stream/file.zst", lambda: io.BytesIO(data))
    hook.put_bytes("backups", "small/manifest.json", b"{}", "application/json")
    modes: list[tuple[str, str | None]] = []

    def record(request, **kwargs):
        mode = request.headers.get("x-amz-checksum-mode")
        modes.append((request.url.rsplit("/", 1)[-1], mode.decode() if isinstance(mode, bytes) else mode))

    assert hook.stream_read_client is not hook.get_conn()
    for client in (hook.get_conn(), hook.stream_read_client):
        client.meta.events.register("before-send.s3.GetObject", record)
    sink = io.BytesIO()
    got = hook.download_stream("backups", "stream/file.zst", lambda: contextlib.nullcontext(sink))
    assert (got.size, got.sha256) == (len(data), hashlib.sha256(data).hexdigest()) == (uploaded.size, uploaded.sha256)
    assert sink.getvalue() == data
    assert hook.get_bytes("backups", "small/manifest.json") == b"{}"
    assert modes == [("file.zst", None), ("manifest.json", "ENABLED")], modes
    # a changed stored byte is still found without S3's checksum: zstd's frame checks its content
    stored = bytearray(aws.s3.get_object(Bucket="backups", Key="stream/file.zst")["Body"].read())
    stored[len(stored) // 2] ^= 0x01
    aws.s3.put_object(Bucket="backups", Key="stream/file.zst", Body=bytes(stored))
    with pytest.raises(zstandard.ZstdError):
        hook.download_stream("backups", "stream/file.zst", lambda: contextlib.nullcontext(io.BytesIO()))


# ---- the upload path's SFTP side (hooks/cassandra.py) -------------------------------------------


class _PrefetchedFile:
    """Stands in for a prefetched paramiko file: answers each read from its pieces, as paramiko does."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.asked = data, 0, []

    def read(self, size=None):
        self.asked.append(size)
        size = len(self.data) - self.pos if size is None or size < 0 else size
        piece = self.data[self.pos : self.pos + size]
        self.pos += len(piece)
        return piece


def test_sftp_files_are_read_one_request_piece_at_a_time():
    """paramiko's read(n) concatenates pieces into one growing bytes object (quadratic in n): the
    reader asks for at most one request's piece per call and joins a read's pieces once."""
    from airflow_backup_provider.hooks import cassandra

    data = bytes(range(256)) * 20_000  # 5 MB: not a multiple of 1 MiB or of the piece
    handle = _PrefetchedFile(data)
    reader = cassandra._PiecewiseReader(handle)
    got = b"".join(iter(lambda: reader.read(1024 * 1024), b""))
    assert got == data
    assert max(handle.asked) <= cassandra.SFTP_READ_SIZE
    assert cassandra.SFTP_WINDOW >= cassandra.SFTP_READ_SIZE * cassandra.SFTP_PREFETCH_LIMIT  # all in flight fit


def test_the_cassandra_ssh_link_is_not_compressed_unless_the_connection_asks(monkeypatch):
    """SSTables are compressed twice already (Cassandra, zstd); zlib on the link was the largest CPU cost
    of an upload, on the node. The ssh provider compresses by default."""
    import json

    from airflow_backup_provider.hooks.cassandra import CassandraNodeHook

    def hook_with(extra):
        monkeypatch.setenv("AIRFLOW_CONN_NODE_SSH", json.dumps({"conn_type": "ssh", "host": "10.0.0.1", "login": "c", "extra": extra}))
        return CassandraNodeHook(ssh_conn_id="node_ssh").ssh_hook

    assert hook_with({}).compress is False
    assert hook_with({"compress": "true"}).compress is True
    assert hook_with({"compress": "false"}).compress is False
