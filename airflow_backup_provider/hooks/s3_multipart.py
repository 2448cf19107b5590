"""Stream bytes to S3 as a multipart upload with SHA-256 checksums, and read them back to verify.

Nothing is ever half-visible: the object appears only when ``CompleteMultipartUpload`` succeeds,
and any failure before that aborts the upload (so no orphaned parts are billed either).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from airflow_backup_provider.connections import RequiresAwsConnection

MIB = 1024 * 1024


class UploadVerificationError(RuntimeError):
    """What S3 holds is not what was uploaded."""


@dataclass(frozen=True)
class UploadResult:
    bucket: str
    key: str
    size: int
    sha256: str
    parts: int


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


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


class S3MultipartHook(RequiresAwsConnection, S3Hook):
    """The amazon provider's S3Hook, plus a streaming multipart upload and a read-back check."""

    hook_name = "S3 multipart streaming upload"

    def upload_stream(
        self,
        chunks: Iterable[bytes],
        *,
        bucket: str,
        key: str,
        part_size: int = 16 * MIB,
        metadata: dict[str, str] | None = None,
        content_type: str = "application/x-tar",
    ) -> UploadResult:
        client = self.get_conn()
        upload = client.create_multipart_upload(
            Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", Metadata=metadata or {}, ContentType=content_type
        )
        upload_id = upload["UploadId"]
        whole = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        try:
            for number, part in enumerate(rechunk(chunks, part_size), start=1):
                whole.update(part)
                size += len(part)
                checksum = _b64(hashlib.sha256(part).digest())
                answer = client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number, "ChecksumSHA256": checksum})
                self.log.info("s3://%s/%s: part %d uploaded (%d bytes so far)", bucket, key, number, size)
            if not parts:
                raise ValueError(f"s3://{bucket}/{key}: the stream was empty, nothing to upload")
            client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.log.warning("s3://%s/%s: aborting the multipart upload %s", bucket, key, upload_id)
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as abort_error:  # the original error matters more
                self.log.warning("abort failed: %s", abort_error)
            raise
        return UploadResult(bucket=bucket, key=key, size=size, sha256=whole.hexdigest(), parts=len(parts))

    def verify_object(self, *, bucket: str, key: str, size: int, sha256: str, chunk_size: int = MIB) -> None:
        """Read the object back and compare its size and SHA-256 with what was uploaded."""
        body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
        digest = hashlib.sha256()
        seen = 0
        try:
            for chunk in iter(lambda: body.read(chunk_size), b""):
                digest.update(chunk)
                seen += len(chunk)
        finally:
            body.close()
        if seen != size or digest.hexdigest() != sha256:
            raise UploadVerificationError(
                f"s3://{bucket}/{key}: holds {seen} bytes with SHA-256 {digest.hexdigest()}, "
                f"expected {size} bytes with SHA-256 {sha256}"
            )

    def iter_object(self, *, bucket: str, key: str, chunk_size: int = MIB) -> Iterator[bytes]:
        body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            yield from iter(lambda: body.read(chunk_size), b"")
        finally:
            body.close()

    def put_bytes(self, data: bytes, *, bucket: str, key: str, content_type: str = "application/json") -> None:
        """A small object (manifest, run record) in one PUT, with its SHA-256 checked by S3."""
        self.get_conn().put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumSHA256=_b64(hashlib.sha256(data).digest()),
        )

    def get_bytes(self, *, bucket: str, key: str) -> bytes | None:
        client = self.get_conn()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    def list_keys_under(self, *, bucket: str, prefix: str) -> list[dict[str, Any]]:
        paginator = self.get_conn().get_paginator("list_objects_v2")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend(page.get("Contents") or [])
        return found

    def delete_keys(self, *, bucket: str, keys: list[str]) -> None:
        client = self.get_conn()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                raise RuntimeError(f"s3://{bucket}: could not delete {len(errors)} object(s): {errors[:3]}")
