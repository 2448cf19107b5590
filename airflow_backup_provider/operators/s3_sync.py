"""Sync a folder to an S3 prefix (or back), rsync-like; see :meth:`~airflow_backup_provider.hooks.object_store.ObjectStoreHook.sync_up`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow_backup_provider.hooks.object_store import ObjectStoreHook
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.stores.paths import check_outside, check_within, normal_path


class S3SyncOperator(BackupOperator):
    """
    Copy only new or changed files between `local_dir` and ``s3://bucket/prefix/``.

    The folder must be readable by the worker running this task: for a backup server's
    repositories, route the task (``queue``) to a worker on that server.

    :param direction: ``upload`` (folder -> S3) or ``download`` (S3 -> folder, the way back when
        the backup server is gone).
    :param compare: ``size_mtime`` (default) or ``checksum`` (SHA-256 of every file).
    :param delete: also remove what the source no longer has (off by default).
    :param dry_run: log the plan, copy and delete nothing; ``None`` takes the run's ``dry_run`` param.
    :param exclude: globs of relative paths neither copied nor deleted (e.g. files still being written).
    :param download_into_empty_only: a download refuses a folder that holds anything (pulling an
        older copy over a live bup repository would roll its branches back).
    :param upload_root: an upload reads only this folder or one inside it (e.g. the repository).
    :param protected_paths: ``(label, path)`` of live data a download never writes into or over.
    :param sse: server-side encryption of every uploaded object and the manifest (``AES256`` or
        ``aws:kms``); :param kms_key_id: the KMS key for ``aws:kms``.

    `local_dir` is checked on the worker, with its symlinks resolved, before anything is read or
    written: no ``..``, never ``/``; one error names the value and the rule it breaks.
    """

    template_fields: Sequence[str] = ("local_dir", "bucket", "prefix", "direction")
    ui_color = "#fff3d6"

    def __init__(
        self,
        *,
        local_dir: str,
        bucket: str,
        prefix: str,
        direction: str = "upload",
        compare: str = "size_mtime",
        delete: bool = False,
        dry_run: bool | None = None,
        concurrency: int = 16,
        exclude: Sequence[str] = (),
        download_into_empty_only: bool = True,
        upload_root: str | None = None,
        protected_paths: Sequence[tuple[str, str]] = (),
        aws_conn_id: str | None = "aws_default",
        node: str | None = None,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if compare not in ("size_mtime", "checksum"):
            raise ValueError(f"compare: value {compare!r} must be 'size_mtime' or 'checksum'")
        self.local_dir = local_dir
        self.bucket = bucket
        self.prefix = prefix
        self.direction = direction
        self.compare = compare
        self.delete = delete
        self.dry_run = dry_run
        self.concurrency = concurrency
        self.exclude = list(exclude)
        self.download_into_empty_only = download_into_empty_only
        self.upload_root = upload_root
        self.protected_paths = [tuple(p) for p in protected_paths]
        self.aws_conn_id = aws_conn_id
        self.node = node
        self.sse = sse
        self.kms_key_id = kms_key_id

    def execute(self, context: Any) -> dict[str, Any]:
        if self.direction not in ("upload", "download"):
            raise ValueError(f"direction: value {self.direction!r} must be 'upload' or 'download'")
        dry_run = self.is_dry_run(context)
        local_dir = self.checked_local_dir()
        hook = self.aws_hook(ObjectStoreHook, concurrency=self.concurrency, sse=self.sse, kms_key_id=self.kms_key_id)
        if self.direction == "upload":
            result = hook.sync_up(
                local_dir, self.bucket, self.prefix, compare=self.compare, delete=self.delete, dry_run=dry_run,
                exclude=self.exclude,
            )
        else:
            result = hook.sync_down(
                self.bucket, self.prefix, local_dir, compare=self.compare, delete=self.delete, dry_run=dry_run,
                exclude=self.exclude,
            )
        summary = result.summary()
        where = f"s3://{self.bucket}/{self.prefix}"
        self.record_outcome(
            context,
            status="dry_run" if dry_run else "done",
            node=self.node,
            produced=[{"id": f"{where} ({result.direction})", "size": result.bytes_copied}] if result.copied else [],
            detail=f"{summary['copied']} copied, {summary['unchanged']} unchanged, {summary['deleted']} deleted in {summary['seconds']}s",
        )
        return summary

    def checked_local_dir(self) -> str:
        """`local_dir` resolved on this worker, or one error naming it (nothing read or written yet)."""
        field = "local_dir"
        given = normal_path(self.local_dir, field)
        real = os.path.realpath(given)
        if real == "/":
            raise ValueError(f"{field}: value {self.local_dir!r} is the root folder: refused")
        if self.direction == "upload":
            if self.upload_root is None:
                return real
            return check_within(
                field, self.local_dir, self.upload_root, label="the repository folder",
                resolved=real, resolved_root=os.path.realpath(normal_path(self.upload_root)),
            )
        protected = [*self.protected_paths]
        protected += [(f"{label}, resolved", os.path.realpath(normal_path(p))) for label, p in self.protected_paths]
        real = check_outside(field, self.local_dir, protected, resolved=real)
        target = Path(real)
        if target.exists() and not target.is_dir():
            raise ValueError(f"{field}: value {self.local_dir!r} is not a folder; download into an empty or new folder")
        if self.download_into_empty_only and target.is_dir() and any(target.iterdir()):
            raise ValueError(f"{field}: value {self.local_dir!r} is not empty; download into an empty or new folder")
        return real
