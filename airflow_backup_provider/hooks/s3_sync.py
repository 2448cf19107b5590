"""rsync-like sync between a local folder and an S3 prefix, on the amazon provider's S3Hook.

Uploads and downloads go through s3transfer's TransferManager: concurrent, multipart above
``multipart_threshold``, every upload request carrying a SHA-256 checksum that S3 verifies.
Each file's size, mtime and whole-file SHA-256 are recorded in the object's metadata and in the
prefix's manifest (:mod:`airflow_backup_provider.stores.s3sync`); downloads are checked against
them before they replace anything.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.config import Config
from botocore.exceptions import ClientError
from s3transfer.manager import TransferConfig, TransferManager
from s3transfer.subscribers import BaseSubscriber

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

MiB = 1024 * 1024


def sha256_file(path: str | os.PathLike, chunk: int = 4 * MiB) -> str:
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


class S3SyncHook(RequiresAwsConnection, S3Hook):
    """
    Sync a folder to an S3 prefix (upload) or back (download), copying only what changed.

    :param concurrency: parallel requests (transfer threads and the HTTP connection pool).
    :param multipart_threshold: files at least this big go up in parts of `multipart_chunksize`.
    """

    hook_name = "Backup S3 sync"

    def __init__(
        self,
        *args: Any,
        concurrency: int = 16,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 16 * MiB,
        progress_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("config", Config(max_pool_connections=concurrency + 4, retries={"mode": "standard"}))
        super().__init__(*args, **kwargs)
        self.concurrency = concurrency
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.progress_interval = progress_interval

    # ---- listings ----------------------------------------------------------------------------
    def list_prefix(self, bucket: str, prefix: str) -> dict[str, int]:
        """relative path -> size of every object under `prefix/` (the manifest left out)."""
        client = self.get_conn()
        base = prefix.strip("/")
        sizes: dict[str, int] = {}
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{base}/" if base else ""):
            for obj in page.get("Contents", ()):
                rel = rel_for(prefix, obj["Key"])
                if rel and rel != MANIFEST_NAME:
                    sizes[rel] = obj["Size"]
        check_rel_paths(sizes)
        return sizes

    def read_manifest(self, bucket: str, prefix: str) -> dict[str, FileState]:
        try:
            body = self.get_conn().get_object(Bucket=bucket, Key=key_for(prefix, MANIFEST_NAME))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return {}
            raise
        try:
            return manifest_loads(body)
        except ValueError as exc:
            self.log.warning("ignoring unreadable manifest s3://%s/%s: %s", bucket, key_for(prefix, MANIFEST_NAME), exc)
            return {}

    def write_manifest(self, bucket: str, prefix: str, files: dict[str, FileState]) -> None:
        self.get_conn().put_object(
            Bucket=bucket,
            Key=key_for(prefix, MANIFEST_NAME),
            Body=manifest_dumps(files),
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
        )

    def object_state(self, bucket: str, key: str) -> FileState:
        head = self.get_conn().head_object(Bucket=bucket, Key=key)
        return state_from_metadata(head["ContentLength"], head.get("Metadata", {}))

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
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_request_concurrency=self.concurrency,
            max_submission_concurrency=max(5, self.concurrency // 2),
            max_io_queue_size=1000,
        )
        return TransferManager(self.get_conn(), config)

    def _hash_all(self, root: Path, rels: list[str], known: dict[str, FileState]) -> dict[str, str]:
        todo = [r for r in rels if not (known.get(r) and known[r].sha256)]
        with ThreadPoolExecutor(self.concurrency) as pool:
            hashes = dict(zip(todo, pool.map(lambda r: sha256_file(root / r), todo), strict=True))
        return {r: hashes.get(r) or known[r].sha256 for r in rels}

    # ---- upload ------------------------------------------------------------------------------
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
        started = time.monotonic()
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"sync source {str(root)!r} is not a folder")
        source = without_excluded(scan_folder(root), exclude)
        if compare == "checksum":
            digests = self._hash_all(root, sorted(source), {})
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
            # each file is hashed (for its metadata and the manifest), then handed to the transfer
            # manager at once: hashing the next files overlaps the uploads of the first ones
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
                    state = source[rel]
                    extra = {
                        "ChecksumAlgorithm": "SHA256",
                        "Metadata": {META_MTIME: str(state.mtime_ns), META_SHA256: digests[rel]},
                    }
                    futures[rel] = manager.upload(
                        str(root / rel), bucket, key_for(prefix, rel), extra_args=extra, subscribers=[progress]
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
            self._delete_keys(bucket, [key_for(prefix, r) for r in plan.delete])
        if recorded != manifest:  # nothing copied, deleted or learned: no write at all
            self.write_manifest(bucket, prefix, recorded)
        result.copied, result.deleted, result.bytes_copied = list(plan.copy), list(plan.delete), total
        result.seconds = time.monotonic() - started
        self.log.info("done: %s; %d deleted", progress.line(), len(plan.delete))
        return result

    def _delete_keys(self, bucket: str, keys: list[str]) -> None:
        client = self.get_conn()
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            if response.get("Errors"):
                raise RuntimeError(f"delete failed for {response['Errors'][:5]}")
            self.log.info("deleted %d object(s)", len(batch))

    # ---- download ----------------------------------------------------------------------------
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
            digests = self._hash_all(root, sorted(local), {})
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
