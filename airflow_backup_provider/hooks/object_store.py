"""The one object store: every byte any kind writes to or reads from S3 goes through this hook.

Built on the amazon provider's S3Hook (connections, credentials, endpoint) and s3transfer.

- Encryption is given once (``sse`` ``AES256`` or ``aws:kms`` + ``kms_key_id``) and applied to every
  object the hook writes: small puts, streams, multipart uploads, synced files and manifests.
- Retries are set once, in the client: botocore's ``standard`` retry mode (throttling, 5xx,
  connection faults) for every S3 call; the connection's ``config_kwargs`` may change it. tenacity
  only restarts a *stream* from its first byte (a stream cannot be rewound), see :meth:`upload_stream`.
- Not found is ``None``: :meth:`get_bytes` and :meth:`head` return ``None`` for a missing key.
- Every write carries a SHA-256 that S3 verifies (of the whole object where its digest is known,
  else of each request's body), in a signed header; so the client does not sign bodies as well
  (botocore does over plain HTTP: the same bytes hashed twice). Downloads and read-backs are
  checked against size + SHA-256.
- Deletes raise :class:`DeleteFailed` on any ``Errors`` entry of ``DeleteObjects``.

Streams (Cassandra's SFTP files, devicedb's tars) are hashed as they pass, optionally through zstd,
nothing staged on the worker. Folder sync (bup's repositories) plans with the pure
:mod:`airflow_backup_provider.stores.s3sync` and moves files with s3transfer's TransferManager.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import zstandard
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from airflow_backup_provider.connections import RequiresAwsConnection
from airflow_backup_provider.stores.s3sync import (
    MANIFEST_NAME,
    META_MTIME,
    META_SHA256,
    Compare,
    FileState,
    SyncPlan,
    check_rel_paths,
    decide_with_metadata,
    key_for,
    manifest_dumps,
    manifest_loads,
    plan_sync,
    progress_line,
    refuse_wipe,
    rel_for,
    state_from_metadata,
    without_excluded,
)

MIB = 1024 * 1024
CHUNK = MIB
STREAM_PART_SIZE = 16 * MIB
FILE_PART_SIZE = 128 * MIB
SSE_MODES = ("AES256", "aws:kms")
# botocore's standard mode: exponential backoff with jitter on throttling, 5xx and connection
# faults, for every call of the client (s3transfer's requests included)
DEFAULT_RETRIES = {"mode": "standard", "max_attempts": 5}
# every upload request carries a SHA-256 of its body in a signed header, which S3 checks: signing
# the body as well (botocore does it over plain HTTP) hashes the same bytes once more for nothing
DEFAULT_S3 = {"payload_signing_enabled": False}
_RETRYABLE_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "500", "502", "503", "504"}
)


class ChecksumMismatch(ValueError):
    """Bytes read back from S3 are not the bytes the manifest (or the upload) describes."""


class DeleteFailed(RuntimeError):
    """S3 answered a batch delete with errors: those objects are still there."""


def is_retryable_s3_fault(exc: BaseException) -> bool:
    """Whether a stream that failed with `exc` (after botocore's own retries) is worth restarting."""
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


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound") or (
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
        and exc.response.get("Error", {}).get("Code") != "NoSuchBucket"
    )


def rechunk(chunks: Iterable[bytes], part_size: int) -> Iterator[bytes]:
    """Regroup a stream of chunks into parts of exactly `part_size` bytes (the last may be shorter)."""
    if part_size <= 0:
        raise ValueError(f"part_size: value {part_size!r} must be positive")
    buffer = bytearray()
    for chunk in chunks:
        if not chunk:
            continue
        buffer += chunk
        while len(buffer) >= part_size:
            yield bytes(buffer[:part_size])
            del buffer[:part_size]
    if buffer:
        yield bytes(buffer)


def sha256_file(path: str | os.PathLike, chunk: int = 4 * MIB) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def scan_folder(root: str | os.PathLike) -> dict[str, FileState]:
    """Regular files under `root` (symlinks and special files are not synced)."""
    root = str(root)
    found: dict[str, FileState] = {}
    stack = [root]
    while stack:
        current = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
                    found[rel] = FileState(size=st.st_size, mtime_ns=st.st_mtime_ns)
    return found


@dataclass(frozen=True)
class StreamResult:
    size: int  # bytes read from the source
    sha256: str  # of the bytes read from the source
    compressed_size: int  # bytes stored in S3 (= size without compression)

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256, "compressed_size": self.compressed_size}


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    size: int
    sha256: str
    parts: int


@dataclass
class SyncResult:
    direction: str
    copied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_copied: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "copied": len(self.copied),
            "deleted": len(self.deleted),
            "unchanged": self.unchanged,
            "bytes_copied": self.bytes_copied,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
        }


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
    """What the transfer manager reads, counted. Not seekable, so boto3 streams it in parts
    instead of asking for its length."""

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


class _Progress(BaseSubscriber):
    """Counts bytes and files for all transfers; logs at most every `interval` seconds."""

    def __init__(self, files_total: int, bytes_total: int, log: Callable[[str], None], interval: float = 5.0):
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0
        self.log, self.interval = log, interval
        self.started = self.last = time.monotonic()
        self.lock = threading.Lock()

    def on_progress(self, future=None, bytes_transferred=0, **kwargs):
        with self.lock:
            self.bytes_done += bytes_transferred
            self._maybe_log()

    def file_done(self) -> None:
        with self.lock:
            self.files_done += 1
            self._maybe_log()

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.log("progress: " + self.line())

    def line(self) -> str:
        return progress_line(
            self.files_done, self.files_total, self.bytes_done, self.bytes_total, time.monotonic() - self.started
        )


def encryption_args(sse: str = "AES256", kms_key_id: str | None = None) -> dict[str, str]:
    """The request arguments of server-side encryption (a KMS key implies ``aws:kms``)."""
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    if sse not in SSE_MODES:
        raise ValueError(f"sse: value {sse!r} must be one of {', '.join(SSE_MODES)}")
    return {"ServerSideEncryption": sse}


class ObjectStoreHook(RequiresAwsConnection, S3Hook):
    """
    S3 for every kind: encrypted writes, checked streams, read-back, listing, checked deletes, sync.

    :param sse: ``AES256`` (SSE-S3, the default) or ``aws:kms``; every object written gets it.
    :param kms_key_id: the KMS key for ``aws:kms`` (implies it).
    :param compression_level: zstd level of compressed streams (1 fastest .. 19 smallest).
    :param attempts: tries of a whole stream before a fault is final (tenacity, from the first byte).
    :param part_size: multipart part size; a stream or file smaller than this goes in one PUT.
        By default 16 MiB for streams, which are held in memory (about 4 x part_size per stream in
        flight), and 128 MiB for synced files, which are read from disk as they are sent: a file below
        it goes in one PUT with its SHA-256, one request instead of several and no parts for the
        receiver to assemble (rclone's cutoff is 200 MiB, awscli's 8 MiB).
    :param concurrency: parallel requests of a folder sync (threads and HTTP connection pool).
    """

    hook_name = "Backup object store (S3)"

    def __init__(
        self,
        *args: Any,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        compression_level: int = 1,
        attempts: int = 5,
        max_backoff: float = 20.0,
        part_size: int | None = None,
        concurrency: int = 16,
        progress_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        stream_part_size = part_size or STREAM_PART_SIZE
        transfer = dict(kwargs.pop("transfer_config_args", None) or {})
        transfer.setdefault("multipart_threshold", stream_part_size)
        transfer.setdefault("multipart_chunksize", stream_part_size)
        # A stream cannot be re-read, so boto3 holds parts in memory: at most
        # (max_in_memory_upload_chunks + max_concurrency) x part_size per stream in flight.
        transfer.setdefault("max_concurrency", 2)
        super().__init__(*args, extra_args=encryption_args(sse, kms_key_id), transfer_config_args=transfer, **kwargs)
        self.compression_level = compression_level
        self.attempts = max(1, attempts)
        self.max_backoff = max_backoff
        self.part_size = stream_part_size
        self.file_part_size = part_size or FILE_PART_SIZE
        self.concurrency = concurrency
        self.progress_interval = progress_interval
        self._session: Any = None
        self._session_lock = threading.RLock()

    # ---- the client: one retry policy, set here ------------------------------------------------
    @property
    def config(self) -> Config:
        """The hook's defaults (standard retries, a pool for `concurrency`), under what the
        connection's ``config_kwargs`` (or a ``config`` given to the hook) sets."""
        default = Config(
            retries=dict(DEFAULT_RETRIES),
            max_pool_connections=self.concurrency + 4,
            request_checksum_calculation="when_supported",
            s3=dict(DEFAULT_S3),
        )
        given = self.conn_config.botocore_config
        if given is None:
            return default
        merged = default.merge(given)
        merged.retries = {**DEFAULT_RETRIES, **(given.retries or {})}
        merged.s3 = {**DEFAULT_S3, **(given.s3 or {})}
        return merged

    def get_session(self, region_name: str | None = None, deferrable: bool = False):
        """One boto3 session for the hook's clients (:meth:`get_conn`'s and :attr:`stream_read_client`):
        a second client of a session reuses its loaded service model, a new session's costs 0.1-0.3 s."""
        if deferrable or region_name != self.region_name:
            return super().get_session(region_name=region_name, deferrable=deferrable)
        with self._session_lock:
            if self._session is None:
                self._session = super().get_session(region_name=region_name)
            return self._session

    def get_client_type(self, region_name: str | None = None, config: Config | None = None, deferrable: bool = False):
        with self._session_lock:  # a boto3 session is not thread-safe: its clients are made one at a time
            return super().get_client_type(region_name=region_name, config=config, deferrable=deferrable)

    @cached_property
    def stream_read_client(self):
        """The client of :meth:`download_stream`: botocore does not hash GET bodies itself
        (``response_checksum_validation="when_required"``; by default it recomputes S3's stored
        SHA-256/CRC of every byte read). Each caller compares the size and SHA-256 of what the
        stream wrote with its manifest, and a zstd frame checks its own content: the same bytes
        hashed twice for nothing."""
        config = self.config.merge(Config(response_checksum_validation="when_required"))
        return self.get_client_type(region_name=self.region_name, config=config)

    @property
    def transfer_config(self):
        config = super().transfer_config
        config.max_in_memory_upload_chunks = 2  # boto3's TransferConfig does not take it as an argument
        return config

    def _stream_retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(is_retryable_s3_fault),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, min=0.5, max=self.max_backoff),
            before_sleep=before_sleep_log(self.log, 30),
            reraise=True,
        )

    # ---- small objects -------------------------------------------------------------------------
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """A small object (manifest, schema, run record) in one PUT, SHA-256 checked by S3, encrypted."""
        self.get_conn().put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumSHA256=_b64(hashlib.sha256(data).digest()),
            **self.extra_args,
        )

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        try:
            return self.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject's answer (``ContentLength``, ``Metadata``, ``ServerSideEncryption``...), or None."""
        try:
            return self.get_conn().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def head_size(self, bucket: str, key: str) -> int | None:
        """The object's stored size, or None when it does not exist."""
        answer = self.head(bucket, key)
        return None if answer is None else int(answer["ContentLength"])

    # ---- listing and deletes -------------------------------------------------------------------
    def list_objects(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Every object under `prefix` (``Key``, ``Size``, ``LastModified``...), every page."""
        found: list[dict[str, Any]] = []
        for page in self.get_conn().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(page.get("Contents") or [])
        return found

    def list_keys_under(self, bucket: str, prefix: str) -> list[str]:
        return [o["Key"] for o in self.list_objects(bucket, prefix)]

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        """The common prefixes one level below `prefix` (each ends with '/')."""
        found: list[str] = []
        paginator = self.get_conn().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            found.extend(p["Prefix"] for p in page.get("CommonPrefixes") or [])
        return found

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> int:
        """Delete `keys`, 1000 a request; any ``Errors`` entry raises :class:`DeleteFailed`."""
        client = self.get_conn()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                shown = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message', '')}".strip() for e in errors[:5])
                raise DeleteFailed(f"s3://{bucket}: {len(errors)} object(s) could not be deleted and are still there: {shown}")
            self.log.info("s3://%s: deleted %d object(s)", bucket, len(batch))
        return len(keys)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix` (which must end with '/'); returns how many."""
        if not prefix.endswith("/") or prefix.count("/") < 2:
            raise ValueError(f"prefix: value {prefix!r} is too broad to delete")
        return self.delete_keys(bucket, self.list_keys_under(bucket, prefix))

    # ---- streams -------------------------------------------------------------------------------
    def upload_stream(
        self, bucket: str, key: str, open_source: Callable[[], IO[bytes]], *, compress: bool = True
    ) -> StreamResult:
        """What `open_source()` yields into `bucket/key` (zstd when `compress`), hashed as it passes;
        a failed try starts again from a fresh source."""
        for attempt in self._stream_retrying():
            with attempt:
                with open_source() as source:
                    return self._upload_once(source, bucket, key, compress)
        raise AssertionError("unreachable")

    def _upload_once(self, source: IO[bytes], bucket: str, key: str, compress: bool) -> StreamResult:
        hashing = _HashingReader(source)
        if not compress:
            counting = _CountingReader(hashing)
            self._send_stream(counting, bucket, key)
            return StreamResult(size=hashing.size, sha256=hashing.sha256.hexdigest(), compressed_size=counting.count)
        compressor = zstandard.ZstdCompressor(level=self.compression_level, write_checksum=True)
        with compressor.stream_reader(hashing, read_size=CHUNK, closefd=False) as compressed:
            counting = _CountingReader(compressed)
            self._send_stream(counting, bucket, key)
        return StreamResult(size=hashing.size, sha256=hashing.sha256.hexdigest(), compressed_size=counting.count)

    def _send_stream(self, reader: IO[bytes], bucket: str, key: str) -> None:
        """s3transfer's upload of a stream (parts held in memory), each part with its SHA-256."""
        self.get_conn().upload_fileobj(
            reader, bucket, key, ExtraArgs={**self.extra_args, "ChecksumAlgorithm": "SHA256"}, Config=self.transfer_config
        )

    def upload_parts(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        part_size: int | None = None,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/x-tar",
    ) -> UploadResult:
        """A multipart upload of `chunks`, each part with its SHA-256 for S3 to check.

        Nothing is ever half-visible: the object appears only when ``CompleteMultipartUpload``
        succeeds, and any failure before that aborts the upload (no orphaned parts are billed).
        """
        client = self.get_conn()
        upload = client.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", Metadata=metadata or {}, ContentType=content_type,
            **self.extra_args,
        )
        upload_id = upload["UploadId"]
        whole = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        try:
            for number, part in enumerate(rechunk(chunks, part_size or self.part_size), start=1):
                whole.update(part)
                size += len(part)
                checksum = _b64(hashlib.sha256(part).digest())
                answer = client.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part, ChecksumSHA256=checksum,
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumSHA256": checksum})
                self.log.info("s3://%s/%s: part %d uploaded (%d bytes so far)", bucket, key, number, size)
            if not parts:
                raise ValueError(f"s3://{bucket}/{key}: the stream was empty, nothing to upload")
            client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self.log.warning("s3://%s/%s: aborting the multipart upload %s", bucket, key, upload_id)
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as abort_error:  # the original error matters more
                self.log.warning("abort failed: %s", abort_error)
            raise
        return UploadResult(bucket=bucket, key=key, size=size, sha256=whole.hexdigest(), parts=len(parts))

    def iter_object(self, bucket: str, key: str, chunk_size: int = MIB) -> Iterator[bytes]:
        """The object's stored bytes, chunk by chunk."""
        body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield from iter(lambda: body.read(chunk_size), b"")
        finally:
            body.close()

    def download_stream(
        self, bucket: str, key: str, open_sink: Callable[[], Any], *, decompress: bool = True
    ) -> StreamResult:
        """`bucket/key` (zstd-decompressed when `decompress`) chunk by chunk into the writer
        `open_sink()` returns (a context manager with `write`); a failed try opens a fresh sink.
        Returns size and SHA-256 of what was written, for the caller to compare with its manifest."""
        for attempt in self._stream_retrying():
            with attempt:
                body = self.stream_read_client.get_object(Bucket=bucket, Key=key)["Body"]
                counted = _CountingReader(body)
                sha = hashlib.sha256()
                size = 0
                reading = (
                    zstandard.ZstdDecompressor().stream_reader(counted, read_size=CHUNK, closefd=False)
                    if decompress
                    else contextlib.nullcontext(counted)
                )
                with reading as reader, open_sink() as sink:
                    while chunk := reader.read(CHUNK):
                        sha.update(chunk)
                        size += len(chunk)
                        sink.write(chunk)
                return StreamResult(size=size, sha256=sha.hexdigest(), compressed_size=counted.count)
        raise AssertionError("unreachable")

    def checksum_object(self, bucket: str, key: str, *, decompress: bool = True) -> StreamResult:
        """Read an object back and hash what it holds (decompressed when `decompress`)."""
        return self.download_stream(bucket, key, _NullSink, decompress=decompress)

    def verify_object(self, bucket: str, key: str, *, size: int, sha256: str, decompress: bool = False) -> None:
        """Read the object back and compare its size and SHA-256 with what was uploaded."""
        seen = self.checksum_object(bucket, key, decompress=decompress)
        if seen.size != size or seen.sha256 != sha256:
            raise ChecksumMismatch(
                f"s3://{bucket}/{key}: holds {seen.size} bytes with SHA-256 {seen.sha256}, "
                f"expected {size} bytes with SHA-256 {sha256}"
            )

    # ---- folder sync ---------------------------------------------------------------------------
    def list_prefix(self, bucket: str, prefix: str) -> dict[str, int]:
        """relative path -> size of every object under `prefix/` (the manifest left out)."""
        base = prefix.strip("/")
        sizes: dict[str, int] = {}
        for obj in self.list_objects(bucket, f"{base}/" if base else ""):
            rel = rel_for(prefix, obj["Key"])
            if rel and rel != MANIFEST_NAME:
                sizes[rel] = obj["Size"]
        check_rel_paths(sizes)
        return sizes

    def read_manifest(self, bucket: str, prefix: str) -> dict[str, FileState]:
        body = self.get_bytes(bucket, key_for(prefix, MANIFEST_NAME))
        if body is None:
            return {}
        try:
            return manifest_loads(body)
        except ValueError as exc:
            self.log.warning("ignoring unreadable manifest s3://%s/%s: %s", bucket, key_for(prefix, MANIFEST_NAME), exc)
            return {}

    def write_manifest(self, bucket: str, prefix: str, files: dict[str, FileState]) -> None:
        self.put_bytes(bucket, key_for(prefix, MANIFEST_NAME), manifest_dumps(files), "application/json")

    def object_state(self, bucket: str, key: str) -> FileState:
        answer = self.head(bucket, key)
        if answer is None:
            raise FileNotFoundError(f"s3://{bucket}/{key} is gone")
        return state_from_metadata(answer["ContentLength"], answer.get("Metadata", {}))

    def _settle_metadata(self, plan: SyncPlan, bucket: str, prefix: str, source: dict[str, FileState], compare: Compare):
        if not plan.need_metadata:
            return
        self.log.info("reading the metadata of %d object(s) missing from the manifest", len(plan.need_metadata))
        with ThreadPoolExecutor(self.concurrency) as pool:
            states = dict(zip(plan.need_metadata, pool.map(lambda r: self.object_state(bucket, key_for(prefix, r)), plan.need_metadata), strict=True))
        for rel in plan.need_metadata:
            decide_with_metadata(plan, rel, source[rel], states[rel], compare)
        plan.need_metadata = []

    def _manager(self) -> TransferManager:
        config = TransferConfig(
            multipart_threshold=self.file_part_size,
            multipart_chunksize=self.file_part_size,
            max_request_concurrency=self.concurrency,
            max_submission_concurrency=max(5, self.concurrency // 2),
            max_io_queue_size=1000,
        )
        return TransferManager(self.get_conn(), config)

    def _hash_all(self, root: Path, rels: list[str]) -> dict[str, str]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return dict(zip(rels, pool.map(lambda r: sha256_file(root / r), rels), strict=True))

    def _file_upload_args(self, state: FileState, sha256: str) -> dict[str, Any]:
        """Encryption, the file's record as metadata, and a SHA-256 S3 verifies: a single PUT
        carries the file's (hashed once, for the manifest too), each part of a larger file its own."""
        extra: dict[str, Any] = {**self.extra_args, "Metadata": {META_MTIME: str(state.mtime_ns), META_SHA256: sha256}}
        if state.size < self.file_part_size:
            extra["ChecksumSHA256"] = _b64(bytes.fromhex(sha256))
        else:
            extra["ChecksumAlgorithm"] = "SHA256"
        return extra

    def sync_up(
        self,
        local_dir: str | os.PathLike,
        bucket: str,
        prefix: str,
        *,
        compare: Compare = "size_mtime",
        delete: bool = False,
        dry_run: bool = False,
        exclude: Sequence[str] = (),
    ) -> SyncResult:
        """Bring ``s3://bucket/prefix/`` to what the folder holds, copying only what changed."""
        started = time.monotonic()
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"sync source {str(root)!r} is not a folder")
        source = without_excluded(scan_folder(root), exclude)
        if compare == "checksum":
            digests = self._hash_all(root, sorted(source))
            source = {r: FileState(s.size, s.mtime_ns, digests[r]) for r, s in source.items()}
        target = without_excluded(self.list_prefix(bucket, prefix), exclude)
        manifest = self.read_manifest(bucket, prefix)
        plan = plan_sync(source, target, manifest, compare=compare, delete=delete)
        refuse_wipe(plan, len(source), f"s3://{bucket}/{prefix}")
        self._settle_metadata(plan, bucket, prefix, source, compare)
        result = SyncResult("upload", dry_run=dry_run, unchanged=len(plan.unchanged), reasons=plan.reasons)
        total = plan.copy_bytes({r: s.size for r, s in source.items()})
        self.log.info(
            "s3 sync %s -> s3://%s/%s: %d file(s) to upload (%d bytes), %d unchanged, %d to delete%s",
            root, bucket, prefix, len(plan.copy), total, len(plan.unchanged), len(plan.delete),
            " (dry run)" if dry_run else "",
        )
        if dry_run:
            for rel in plan.copy:
                self.log.info("dry run: would upload %s (%s)", rel, plan.reasons.get(rel))
            for rel in plan.delete:
                self.log.info("dry run: would delete %s", key_for(prefix, rel))
            result.copied, result.deleted, result.bytes_copied = list(plan.copy), list(plan.delete), total
            result.seconds = time.monotonic() - started
            return result

        recorded = {r: manifest[r] for r in plan.unchanged if r in manifest}
        # objects whose file is gone but that stay (no delete) keep their record: a download
        # checks them against it like every other object
        recorded.update(
            {r: manifest[r] for r in target if r not in source and r not in plan.delete and r in manifest}
        )
        for rel in plan.unchanged:  # unchanged objects known only from their metadata
            recorded.setdefault(rel, source[rel])
        progress = _Progress(len(plan.copy), total, self.log.info, self.progress_interval)
        uploaded: dict[str, FileState] = {}
        if plan.copy:
            digests: dict[str, str] = {}
            # each file is hashed once (its metadata, the manifest, the PUT's checksum), then handed
            # to the transfer manager at once: hashing the next files overlaps the first uploads
            with self._manager() as manager, ThreadPoolExecutor(min(self.concurrency, 8)) as hasher:
                futures = {}
                hashing = {
                    hasher.submit(lambda r: source[r].sha256 or sha256_file(root / r), rel): rel for rel in plan.copy
                }
                for done in as_completed(hashing):
                    rel = hashing[done]
                    try:
                        digests[rel] = done.result()
                    except FileNotFoundError:
                        self.log.warning("%s disappeared before it was uploaded: skipped", rel)
                        continue
                    futures[rel] = manager.upload(
                        str(root / rel), bucket, key_for(prefix, rel),
                        extra_args=self._file_upload_args(source[rel], digests[rel]), subscribers=[progress],
                    )
                errors = []
                for rel, future in futures.items():
                    try:
                        future.result()
                    except Exception as exc:
                        errors.append(f"{rel}: {exc}")
                        continue
                    progress.file_done()
                    after = (root / rel).stat()
                    state = source[rel]
                    if after.st_size != state.size or after.st_mtime_ns != state.mtime_ns:
                        self.log.warning("%s changed while it was uploaded: the next sync copies it again", rel)
                        continue
                    uploaded[rel] = FileState(state.size, state.mtime_ns, digests[rel])
            if errors:
                recorded.update(uploaded)
                self.write_manifest(bucket, prefix, recorded)
                raise RuntimeError(f"{len(errors)} upload(s) failed: " + "; ".join(errors[:10]))
        recorded.update(uploaded)
        if plan.delete:
            self.delete_keys(bucket, [key_for(prefix, r) for r in plan.delete])
        if recorded != manifest:  # nothing copied, deleted or learned: no write at all
            self.write_manifest(bucket, prefix, recorded)
        result.copied, result.deleted, result.bytes_copied = list(plan.copy), list(plan.delete), total
        result.seconds = time.monotonic() - started
        self.log.info("done: %s; %d deleted", progress.line(), len(plan.delete))
        return result

    def sync_down(
        self,
        bucket: str,
        prefix: str,
        local_dir: str | os.PathLike,
        *,
        compare: Compare = "size_mtime",
        delete: bool = False,
        dry_run: bool = False,
        exclude: Sequence[str] = (),
    ) -> SyncResult:
        """The way back: bring the folder to what the prefix holds, verifying every byte."""
        started = time.monotonic()
        root = Path(local_dir)
        remote_sizes = without_excluded(self.list_prefix(bucket, prefix), exclude)
        manifest = self.read_manifest(bucket, prefix)
        remote = {r: manifest.get(r) or FileState(size) for r, size in remote_sizes.items()}
        local = without_excluded(scan_folder(root), exclude) if root.is_dir() else {}
        if compare == "checksum" and local:
            digests = self._hash_all(root, sorted(local))
            local = {r: FileState(s.size, s.mtime_ns, digests[r]) for r, s in local.items()}
        plan = plan_sync(remote, {r: s.size for r, s in local.items()}, local, compare=compare, delete=delete)
        refuse_wipe(plan, len(remote), str(root))
        for rel in plan.need_metadata:  # no manifest entry: size alone cannot prove it is the same
            plan.copy.append(rel)
            plan.reasons[rel] = "not in the manifest"
        plan.need_metadata = []
        total = sum(remote_sizes[r] for r in plan.copy)
        result = SyncResult("download", dry_run=dry_run, unchanged=len(plan.unchanged), reasons=plan.reasons)
        self.log.info(
            "s3 sync s3://%s/%s -> %s: %d file(s) to download (%d bytes), %d unchanged, %d to delete%s",
            bucket, prefix, root, len(plan.copy), total, len(plan.unchanged), len(plan.delete),
            " (dry run)" if dry_run else "",
        )
        result.copied, result.deleted, result.bytes_copied = list(plan.copy), list(plan.delete), total
        if dry_run:
            result.seconds = time.monotonic() - started
            return result
        root.mkdir(parents=True, exist_ok=True)
        progress = _Progress(len(plan.copy), total, self.log.info, self.progress_interval)
        errors = []
        with self._manager() as manager:
            futures = {}
            for rel in plan.copy:
                final = root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                partial = final.with_name(final.name + ".s3sync-partial")
                futures[rel] = (partial, manager.download(bucket, key_for(prefix, rel), str(partial), subscribers=[progress]))
            for rel, (partial, future) in futures.items():
                try:
                    future.result()
                    self._verify_and_place(partial, root / rel, remote[rel], manifest.get(rel) is None)
                except Exception as exc:
                    partial.unlink(missing_ok=True)
                    errors.append(f"{rel}: {exc}")
                    continue
                progress.file_done()
        if errors:
            raise RuntimeError(f"{len(errors)} download(s) failed: " + "; ".join(errors[:10]))
        for rel in plan.delete:
            (root / rel).unlink(missing_ok=True)
        result.seconds = time.monotonic() - started
        self.log.info("done: %s; %d local file(s) deleted", progress.line(), len(plan.delete))
        return result

    def _verify_and_place(self, partial: Path, final: Path, expected: FileState, unrecorded: bool) -> None:
        size = partial.stat().st_size
        if size != expected.size:
            raise ValueError(f"size {size} != {expected.size} recorded")
        if expected.sha256:
            digest = sha256_file(partial)
            if digest != expected.sha256:
                raise ValueError(f"sha256 {digest} != {expected.sha256} recorded")
        elif not unrecorded:
            raise ValueError("no sha256 recorded")
        if expected.mtime_ns is not None:
            os.utime(partial, ns=(expected.mtime_ns, expected.mtime_ns))
        os.replace(partial, final)

