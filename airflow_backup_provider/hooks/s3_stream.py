"""Stream files into and out of S3 through the amazon provider's S3Hook, compressing with zstd.

Nothing is staged on the worker: a reader (an SFTP file on a node, for example) is hashed
(SHA-256 of the original bytes), counted and compressed as boto3's transfer manager pulls the
bytes, part by part. Downloads do the reverse into any writer. S3 faults are retried with
tenacity, each try starting the file again from its first byte (a stream cannot be rewound).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import zstandard
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from airflow_backup_provider.connections import RequiresAwsConnection

CHUNK = 1024 * 1024
_RETRYABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "500", "502", "503", "504"}
)


class ChecksumMismatch(ValueError):
    """Bytes read back from S3 are not the bytes the manifest describes."""


def is_retryable_s3_fault(exc: BaseException) -> bool:
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError | ConnectTimeoutError | ResponseStreamingError):
        return True
    if isinstance(exc, S3UploadFailedError):
        # boto3 wraps the part's ClientError into a message; a 4xx (denied, no bucket) is final
        text = str(exc)
        return not any(word in text for word in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "403", "404"))
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _RETRYABLE_CODES or status >= 500
    return False


@dataclass(frozen=True)
class StreamResult:
    size: int  # bytes read from the source
    sha256: str  # of the bytes read from the source
    compressed_size: int  # bytes stored in S3

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "compressed_size": self.compressed_size}


class _HashingReader(io.RawIOBase):
    """Reads the source, hashing and counting what passes."""

    def __init__(self, source: IO[bytes]):
        self.source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size and size > 0 else CHUNK)
        if data:
            self.sha256.update(data)
            self.size += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _CountingReader(io.RawIOBase):
    """What the transfer manager reads: the compressed stream, counted. Not seekable, so boto3
    streams it in parts instead of asking for its length."""

    def __init__(self, source):
        self.source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size and size > 0 else CHUNK)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _NullSink:
    def __enter__(self) -> _NullSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)


class StreamingS3Hook(RequiresAwsConnection, S3Hook):
    """
    S3Hook that uploads from a stream with on-the-fly zstd and server-side encryption.

    :param sse: ``AES256`` or ``aws:kms`` (``None``: the bucket's default).
    :param kms_key_id: the KMS key for ``aws:kms``.
    :param compression_level: zstd level (1 fastest .. 19 smallest).
    :param attempts: tries per object before an S3 fault is final (tenacity, exponential backoff).
    :param part_size: multipart part size; an object smaller than this goes in one PUT. Memory per
        object in flight is about 4 x part_size.
    """

    hook_name = "Backup streaming S3"

    def __init__(
        self,
        *args: Any,
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
        compression_level: int = 1,
        attempts: int = 5,
        max_backoff: float = 20.0,
        part_size: int = 32 * 1024 * 1024,
        **kwargs: Any,
    ) -> None:
        extra_args: dict[str, str] = dict(kwargs.pop("extra_args", None) or {})
        if kms_key_id:
            sse = "aws:kms"
            extra_args["SSEKMSKeyId"] = kms_key_id
        if sse:
            extra_args["ServerSideEncryption"] = sse
        transfer = dict(kwargs.pop("transfer_config_args", None) or {})
        transfer.setdefault("multipart_threshold", part_size)
        transfer.setdefault("multipart_chunksize", part_size)
        # A stream cannot be re-read, so boto3 holds parts in memory: at most
        # (max_in_memory_upload_chunks + max_concurrency) x part_size per object in flight.
        transfer.setdefault("max_concurrency", 2)
        super().__init__(*args, extra_args=extra_args, transfer_config_args=transfer, **kwargs)
        self.compression_level = compression_level
        self.attempts = max(1, attempts)
        self.max_backoff = max_backoff

    @property
    def transfer_config(self):
        config = super().transfer_config
        config.max_in_memory_upload_chunks = 2  # boto3's TransferConfig does not take it as an argument
        return config

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_retryable_s3_fault),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.max_backoff),
            before_sleep=before_sleep_log(self.log, 30),
            reraise=True,
        )

    # ---- upload ---------------------------------------------------------------------------------
    def upload_stream(self, open_source: Callable[[], IO[bytes]], bucket: str, key: str) -> StreamResult:
        """Compress what `open_source()` yields into `bucket/key`; retried from a fresh source."""
        for attempt in self._retrying():
            with attempt:
                with open_source() as source:
                    return self._upload_once(source, bucket, key)
        raise AssertionError("unreachable")

    def _upload_once(self, source: IO[bytes], bucket: str, key: str) -> StreamResult:
        hashing = _HashingReader(source)
        compressor = zstandard.ZstdCompressor(level=self.compression_level, write_checksum=True)
        with compressor.stream_reader(hashing, read_size=CHUNK, closefd=False) as compressed:
            counting = _CountingReader(compressed)
            self.load_file_obj(counting, key=key, bucket_name=bucket, replace=True)
        return StreamResult(size=hashing.size, sha256=hashing.sha256.hexdigest(), compressed_size=counting.count)

    def put_bytes(self, data: bytes, bucket: str, key: str, content_type: str = "application/octet-stream") -> None:
        """A small object (manifest, schema, status), encrypted like the data."""
        for attempt in self._retrying():
            with attempt:
                self.get_conn().put_object(
                    Bucket=bucket, Key=key, Body=data, ContentType=content_type, **self.extra_args
                )

    # ---- read back -----------------------------------------------------------------------------
    def get_bytes(self, bucket: str, key: str) -> bytes:
        for attempt in self._retrying():
            with attempt:
                return self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
        raise AssertionError("unreachable")

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.get_bytes(bucket, key))

    def head_size(self, bucket: str, key: str) -> int | None:
        """The object's stored size, or None when it does not exist."""
        for attempt in self._retrying():
            with attempt:
                try:
                    return int(self.get_conn().head_object(Bucket=bucket, Key=key)["ContentLength"])
                except ClientError as exc:
                    if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                        return None
                    raise
        raise AssertionError("unreachable")

    def list_all(self, bucket: str, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        """(keys, common prefixes) under `prefix`, every page."""
        paginator = self.get_conn().get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        keys: list[str] = []
        prefixes: list[str] = []
        for attempt in self._retrying():
            with attempt:
                keys, prefixes = [], []
                for page in paginator.paginate(**kwargs):
                    keys += [o["Key"] for o in page.get("Contents", [])]
                    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return keys, prefixes

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix` (which must end with '/'); returns how many."""
        if not prefix.endswith("/") or prefix.count("/") < 2:
            raise ValueError(f"prefix: value {prefix!r} is too broad to delete")
        keys, _ = self.list_all(bucket, prefix)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            for attempt in self._retrying():
                with attempt:
                    self.get_conn().delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                    )
        return len(keys)

    def download_stream(self, bucket: str, key: str, open_sink: Callable[[], Any]) -> StreamResult:
        """Decompress `bucket/key` chunk by chunk into the writer `open_sink()` returns (a context
        manager with `write`); a retried try opens a fresh sink. Returns size and SHA-256 of the
        decompressed bytes, for the caller to compare with the manifest."""
        for attempt in self._retrying():
            with attempt:
                body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
                sha = hashlib.sha256()
                size = 0
                counted = _CountingReader(body)
                with (
                    open_sink() as sink,
                    zstandard.ZstdDecompressor().stream_reader(counted, read_size=CHUNK, closefd=False) as reader,
                ):
                    while chunk := reader.read(CHUNK):
                        sha.update(chunk)
                        size += len(chunk)
                        sink.write(chunk)
                return StreamResult(size=size, sha256=sha.hexdigest(), compressed_size=counted.count)
        raise AssertionError("unreachable")

    def checksum_object(self, bucket: str, key: str) -> StreamResult:
        """Read an object back and hash what it decompresses to (for `verify` with checksums)."""
        return self.download_stream(bucket, key, _NullSink)
