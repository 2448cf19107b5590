"""Which S3 faults StreamingS3Hook retries, and what it streams (no network)."""

from __future__ import annotations

import hashlib
import io

import zstandard
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError

from airflow_backup_provider.hooks import s3_stream
from airflow_backup_provider.hooks.s3_stream import StreamingS3Hook, is_retryable_s3_fault


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
    hook = StreamingS3Hook(aws_conn_id=None, attempts=3, max_backoff=0.01, sse="AES256")
    data = b"sstable " * 50_000
    stored: dict[str, bytes] = {}
    calls = {"n": 0, "opened": 0}

    def fake_load(file_obj, key, bucket_name, replace):
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

    monkeypatch.setattr(hook, "load_file_obj", fake_load)
    monkeypatch.setattr(s3_stream, "CHUNK", 4096)
    result = hook.upload_stream(source, "bucket", "k.zst")
    assert calls == {"n": 2, "opened": 2}
    assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.compressed_size == len(stored["k.zst"]) < len(data)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored["k.zst"]) == data
    assert hook.extra_args["ServerSideEncryption"] == "AES256"


def test_kms_key_means_aws_kms():
    hook = StreamingS3Hook(aws_conn_id=None, kms_key_id="alias/backups")
    assert hook.extra_args == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/backups"}
