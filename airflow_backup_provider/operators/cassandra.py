"""Cassandra backup and restore operators: each one action, built on the hooks and the store.

Backup run: snapshot (every node) -> upload (mapped per node) -> verify -> cleanup (mapped per
node) -> retention -> report. Restore run: plan -> restore (mapped per host) -> next steps -> report.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_backup_provider import dates
from airflow_backup_provider.config.cassandra import CassandraNodeSpec
from airflow_backup_provider.flags import as_bool
from airflow_backup_provider.hooks.cassandra import CassandraNodeHook
from airflow_backup_provider.hooks.object_store import ChecksumMismatch, ObjectStoreHook
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionOperator, RetentionRun
from airflow_backup_provider.retention import BackupItem, planned_backup
from airflow_backup_provider.stores import (
    cassandra_files,
    cassandra_layout,
    cassandra_manifest,
    cassandra_restore,
)

VERIFIED_KEY = "verified_hosts"


def write_failed(host: str, folder: str, path: str, exc: OSError) -> AirflowException:
    # SFTP reports ENOSPC only as "Failure": say what it most likely is
    reason = str(exc) or type(exc).__name__
    return AirflowException(
        f"{host}: writing {path} into restore folder {folder} failed: {reason} (disk full, or no permission?)"
    )


class CassandraBaseOperator(BackupOperator):
    """What every Cassandra task knows: the cluster, its bucket, and how to reach nodes and S3."""

    ui_color = "#d5ecf7"

    def __init__(
        self,
        *,
        cluster: str,
        bucket: str,
        prefix: str = "cassandra",
        aws_conn_id: str = "aws_default",
        ssh_conn_id: str = "backup_ssh",
        sudo_user: str | None = None,
        nodetool: str = "nodetool",
        sse: str | None = "AES256",
        kms_key_id: str | None = None,
        compression_level: int = 1,
        s3_attempts: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.ssh_conn_id = ssh_conn_id
        self.sudo_user = sudo_user
        self.nodetool = nodetool
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.compression_level = compression_level
        self.s3_attempts = s3_attempts

    def s3_hook(self) -> ObjectStoreHook:
        return self.aws_hook(
            ObjectStoreHook,
            sse=self.sse,
            kms_key_id=self.kms_key_id,
            compression_level=self.compression_level,
            attempts=self.s3_attempts,
        )

    def node_hook(self, node: CassandraNodeSpec) -> CassandraNodeHook:
        return self.remote_hook(node.host, node.port, hook_class=CassandraNodeHook, nodetool=self.nodetool)

    def run_tag_and_day(self, context: Any) -> tuple[str, str]:
        """The run's snapshot tag and its day folder, both from :meth:`run_date`."""
        moment = self.run_date(context)
        return cassandra_layout.snapshot_tag(moment, context["run_id"]), cassandra_layout.day_of(moment)

    def day_manifests(self, s3: ObjectStoreHook, day: str, host: str | None = None) -> list[cassandra_layout.ManifestRef]:
        base = cassandra_layout.host_prefix(self.prefix, self.cluster, day, host) if host else cassandra_layout.day_prefix(self.prefix, self.cluster, day)
        return cassandra_layout.parse_manifest_keys(s3.list_keys_under(self.bucket, base), self.prefix, self.cluster)

    def required_bytes(self, s3: ObjectStoreHook, key: str) -> bytes:
        body = s3.get_bytes(self.bucket, key)
        if body is None:
            raise FileNotFoundError(f"s3://{self.bucket}/{key} does not exist")
        return body

    def load_manifest(self, s3: ObjectStoreHook, key: str) -> cassandra_manifest.Manifest:
        return cassandra_manifest.parse_manifest(self.required_bytes(s3, key))

    def day_folders(self, s3: ObjectStoreHook) -> list[str]:
        folders = s3.list_folders(self.bucket, cassandra_layout.cluster_prefix(self.prefix, self.cluster))
        return cassandra_layout.parse_day_folders(folders, self.prefix, self.cluster)


# ------------------------------------------------------------------------------------------------
# backup


class CassandraSnapshotOperator(CassandraBaseOperator):
    """Phase one on one node: `nodetool flush`, then `nodetool snapshot -t <run tag>`."""

    def __init__(self, *, node: CassandraNodeSpec, keyspaces: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node = node
        self.keyspaces = list(keyspaces)

    def execute(self, context: Any) -> dict[str, Any]:
        tag, day = self.run_tag_and_day(context)
        host = self.node.host
        with self.node_hook(self.node) as remote:
            if self.is_dry_run(context):
                remote.status_text()  # reachable, nodetool answers
                self.record_outcome(context, status="dry_run", node=host, detail=f"would flush and snapshot -t {tag}")
                return {"host": host, "tag": tag, "dry_run": True}
            remote.flush(self.keyspaces)
            result = remote.snapshot(tag, self.keyspaces)
        detail = "snapshot already taken by an earlier try of this run" if result.already_exists else "snapshot taken"
        self.log.info("%s: %s (tag %s, day %s)", host, detail, tag, day)
        self.record_outcome(context, status="done", node=host, produced=[{"id": f"snapshot {tag}"}], detail=detail)
        return {"host": host, "tag": tag}


class CassandraUploadOperator(CassandraBaseOperator):
    """Phase two on one node: stream its snapshot and incremental files to S3, then its manifest.

    The day's earlier manifests decide what is new: a later run the same day uploads only files
    no manifest of that day lists yet. The manifest goes last, after every object it lists is in S3.
    """

    def __init__(
        self,
        *,
        node: CassandraNodeSpec,
        cluster_hosts: Sequence[str],
        scope: dict[str, Sequence[str]] | None = None,
        upload_threads: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.node = node
        self.cluster_hosts = list(cluster_hosts)
        self.scope = dict(scope or {})
        self.upload_threads = upload_threads

    def execute(self, context: Any) -> dict[str, Any]:
        tag, day = self.run_tag_and_day(context)
        host, data_dir = self.node.host, self.node.data_dir
        scope = cassandra_files.Scope(**{k: tuple(v) for k, v in self.scope.items()})
        if self.is_dry_run(context):
            self.record_outcome(context, status="dry_run", node=host, detail="nothing uploaded (dry run)")
            return {"host": host, "dry_run": True}
        s3 = self.s3_hook()
        m_key = cassandra_layout.manifest_key(self.prefix, self.cluster, day, host, tag)
        if s3.head_size(self.bucket, m_key) is not None:
            manifest = self.load_manifest(s3, m_key)
            self.record_outcome(context, status="skipped", node=host, detail=f"{m_key} already written by an earlier try")
            return self._summary(manifest, m_key)
        refs = [r for r in self.day_manifests(s3, day, host) if r.tag != tag]
        earlier = [self.load_manifest(s3, r.key) for r in refs]
        with self.node_hook(self.node) as remote:
            walk = remote.walk(data_dir, tag, scope)
            if not walk.snapshot_tables:
                raise AirflowException(
                    f"{host}: no snapshot {tag} under {data_dir} (cleared by someone, or wrong data_dir?)"
                )
            plan = cassandra_manifest.plan_upload(
                walk.files, earlier, prefix=self.prefix, cluster=self.cluster, day=day, host=host, tag=tag
            )
            self.log.info(
                "%s: %s run, %d files to upload, %d already in today's manifests",
                host, plan.mode, len(plan.upload), len(plan.reuse),
            )

            def upload(item: tuple[cassandra_files.NodeFile, str]) -> tuple[str, dict[str, Any]]:
                node_file, key = item
                result = remote.upload_file(s3, self.bucket, node_file.remote_path, key, node_file.size)
                if result.size != node_file.size:
                    raise AirflowException(
                        f"{host}:{node_file.remote_path}: read {result.size} bytes, listed {node_file.size}"
                        " (the file changed during the upload)"
                    )
                return key, result.as_dict()

            uploaded = dict(remote.parallel(plan.upload, upload, self.upload_threads))
            schema = b"".join(remote.read_file(p).rstrip(b"\n") + b"\n\n" for p in walk.schemas)
            status = remote.status_text().encode()
        schema_key = cassandra_layout.meta_key(self.prefix, self.cluster, day, host, tag, "schema.cql")
        status_key = cassandra_layout.meta_key(self.prefix, self.cluster, day, host, tag, "status.txt")
        s3.put_bytes(self.bucket, schema_key, schema, "text/plain")
        s3.put_bytes(self.bucket, status_key, status, "text/plain")
        manifest = cassandra_manifest.build_manifest(
            cluster=self.cluster,
            host=host,
            day=day,
            tag=tag,
            run_id=context["run_id"],
            created_at=dates.now_utc(),
            plan=plan,
            uploaded=uploaded,
            schema_key=schema_key,
            status_key=status_key,
            data_dir=data_dir,
            cluster_hosts=self.cluster_hosts,
            tables=walk.snapshot_tables,
        )
        # Objects taken from earlier manifests must still be there before a new manifest names them.
        reused = [e for e in manifest.files if e.uploaded_in != tag]
        problems = cassandra_manifest.verify_entries(reused, {e.key: s3.head_size(self.bucket, e.key) for e in reused})
        if problems:
            raise AirflowException(f"{host}: earlier uploads of today are gone: {problems[:5]}")
        s3.put_bytes(self.bucket, m_key, manifest.to_json().encode(), "application/json")
        summary = self._summary(manifest, m_key)
        # A cleared old run or a backfill uploads today's data into an old day folder: say so.
        logical = self.run_date(context)
        late = dates.late_warning(logical, dates.parse_instant(manifest.created_at), f"{host} manifest {m_key}")
        if late:
            self.log.warning("%s", late)
        self.record_outcome(
            context,
            status="done",
            node=host,
            produced=[{"id": m_key, "size": summary["bytes"]}],
            rows=[
                {
                    "node": host,
                    "mode": manifest.mode,
                    "files": summary["files"],
                    "new files": summary["new_files"],
                    "new bytes": summary["new_bytes"],
                    "stored (zstd)": summary["new_compressed_bytes"],
                }
            ],
            detail=f"{manifest.mode}: {summary['new_files']} new files ({summary['new_bytes']} bytes, "
            f"{summary['new_compressed_bytes']} compressed), {summary['files']} files in the manifest; "
            f"logical date {dates.format_instant(logical)}, taken at {manifest.created_at}",
            warnings=[late] if late else (),
        )
        return summary

    @staticmethod
    def _summary(manifest: cassandra_manifest.Manifest, key: str) -> dict[str, Any]:
        new = manifest.new_files
        return {
            "host": manifest.host,
            "manifest": key,
            "tag": manifest.tag,
            "mode": manifest.mode,
            "files": len(manifest.files),
            "bytes": manifest.total_size,
            "new_files": len(new),
            "new_bytes": sum(e.size for e in new),
            "new_compressed_bytes": sum(e.compressed_size for e in new),
        }


class CassandraVerifyOperator(CassandraBaseOperator):
    """Every manifest of this run: each entry exists in S3 with its size; with `checksums`, each
    object is read back, decompressed and its SHA-256 compared (like medusa's `verify`).
    Pushes the verified hosts (XCom `verified_hosts`) before failing, so cleanup can go on for them."""

    template_fields: Sequence[str] = ("checksums",)

    def __init__(self, *, hosts: Sequence[str], checksums: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hosts = list(hosts)
        self.checksums = checksums

    def execute(self, context: Any) -> dict[str, Any]:
        tag, day = self.run_tag_and_day(context)
        if self.is_dry_run(context):
            self.record_outcome(context, status="dry_run", detail="nothing uploaded, nothing to verify (dry run)")
            return {"verified": [], "dry_run": True}
        s3 = self.s3_hook()
        refs = {r.host: r for r in self.day_manifests(s3, day) if r.tag == tag}
        checksums = as_bool(self.checksums, "verify_checksums")
        verified: list[str] = []
        problems: dict[str, list[str]] = {}
        checked_files = 0
        for host in self.hosts:
            ref = refs.get(host)
            if ref is None:
                problems[host] = [f"no manifest for run tag {tag}"]
                continue
            manifest = self.load_manifest(s3, ref.key)
            entries = list(manifest.files)
            found = cassandra_manifest.verify_entries(entries, {e.key: s3.head_size(self.bucket, e.key) for e in entries})
            host_problems = [f"{p.key}: {p.problem}" for p in found]
            if checksums and not found:
                for entry in entries:
                    result = s3.checksum_object(self.bucket, entry.key)
                    if result.sha256 != entry.sha256 or result.size != entry.size:
                        host_problems.append(f"{entry.key}: SHA-256/size differ from the manifest")
            for key in (manifest.schema_key, manifest.status_key):
                if key and s3.head_size(self.bucket, key) is None:
                    host_problems.append(f"{key}: missing")
            checked_files += len(entries)
            if host_problems:
                problems[host] = host_problems
            else:
                verified.append(host)
        context["ti"].xcom_push(key=VERIFIED_KEY, value=verified)
        what = "sizes and SHA-256" if checksums else "sizes"
        if problems:
            text = "; ".join(f"{h}: {', '.join(p[:5])}" for h, p in problems.items())
            self.record_outcome(context, status="failed", detail=f"verify ({what}) failed: {text}")
            raise AirflowException(f"verify ({what}) of run {tag}: {text}")
        self.record_outcome(
            context, status="done", detail=f"{checked_files} objects of {len(verified)} manifests verified ({what})"
        )
        return {"verified": verified, "files": checked_files, "checksums": checksums}


class CassandraCleanupOperator(CassandraBaseOperator):
    """After a verified upload of this node: `nodetool clearsnapshot -t <tag>`, and, when asked,
    delete the uploaded files from `backups/`. A node whose upload was not verified keeps its
    snapshot (for the next try or for a look), and this task says so."""

    def __init__(
        self, *, node: CassandraNodeSpec, verify_task_id: str, remove_incrementals: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.node = node
        self.verify_task_id = verify_task_id
        self.remove_incrementals = remove_incrementals

    def execute(self, context: Any) -> dict[str, Any]:
        tag, day = self.run_tag_and_day(context)
        host = self.node.host
        if self.is_dry_run(context):
            self.record_outcome(context, status="dry_run", node=host, detail=f"would clear snapshot {tag}")
            return {"host": host, "dry_run": True}
        verified = context["ti"].xcom_pull(task_ids=self.verify_task_id, key=VERIFIED_KEY) or []
        if host not in verified:
            self.record_outcome(context, status="skipped", node=host, detail=f"upload not verified: snapshot {tag} kept")
            raise AirflowSkipException(f"{host}: upload not verified, snapshot {tag} kept")
        removed = 0
        with self.node_hook(self.node) as remote:
            if self.remove_incrementals:
                s3 = self.s3_hook()
                manifest = self.load_manifest(s3, cassandra_layout.manifest_key(self.prefix, self.cluster, day, host, tag))
                data_dir = self.node.data_dir
                for entry in manifest.files:
                    if not entry.in_backups:
                        continue
                    keyspace, table_dir, name = entry.path.split("/", 2)
                    remote.remove(posixpath.join(data_dir, keyspace, table_dir, cassandra_layout.BACKUPS_DIR, name))
                    removed += 1
            remote.clear_snapshot(tag)
            # Snapshots of earlier runs that never got verified pin old SSTables on disk; a newer
            # snapshot is now safely in S3, so they go too. Only our own tags, only older ones.
            stale = sorted({s.tag for s in remote.list_snapshots() if cassandra_layout.is_our_tag(s.tag) and s.tag < tag})
            for old_tag in stale:
                remote.clear_snapshot(old_tag)
        detail = f"snapshot {tag} cleared"
        if removed:
            detail += f", {removed} uploaded incremental files removed from backups/"
        if stale:
            detail += f"; older snapshots of unverified runs cleared: {', '.join(stale)}"
        self.record_outcome(context, status="done", node=host, detail=detail)
        return {"host": host, "cleared": tag, "removed_incrementals": removed, "stale": stale}


class CassandraRetentionOperator(RetentionOperator, CassandraBaseOperator):
    """Prune whole day folders by the retention policy. Only days in which every node of the
    cluster wrote a manifest count as backups; the newest such day is never deleted, nor any
    day after this run's logical date, each checked again on the day's fresh manifests just
    before its folder is deleted."""

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        s3 = self.s3_hook()
        items = [item for day in self.day_folders(s3) if (item := self._day(s3, day))]
        today = cassandra_layout.day_of(as_of)
        if dry_run and not any(i.id == today and i.complete for i in items):
            # A dry run uploaded nothing: plan with the day the real run would complete, or it prunes less.
            items = [i for i in items if i.id != today]
            items.append(planned_backup(today, cassandra_layout.day_start(today)))
        return [RetentionGroup(f"cluster {self.cluster}", items)]

    def _day(self, s3: ObjectStoreHook, day: str) -> BackupItem | None:
        """One day folder as a backup, read from its manifests; None when the folder is empty."""
        refs = self.day_manifests(s3, day)
        if not refs and not s3.list_keys_under(self.bucket, cassandra_layout.day_prefix(self.prefix, self.cluster, day)):
            return None
        expected: set[str] = set()
        taken: list[datetime] = []
        for ref in refs:
            manifest = self.load_manifest(s3, ref.key)
            expected.update(manifest.cluster_hosts or [ref.host])
            taken += [t for t in [dates.parse_instant(manifest.created_at)] if t]
        return BackupItem(
            id=day,
            created_at=cassandra_layout.day_start(day),
            complete=bool(refs) and cassandra_restore.is_day_complete(refs, day, expected),
            ours=True,  # a YYYYMMDD folder under this cluster's prefix
            meta={"manifests": len(refs)},
            taken_at=max(taken, default=None),  # the day's last upload
        )

    def reread(self, group: RetentionGroup, item: BackupItem) -> BackupItem | None:
        return self._day(self.s3_hook(), item.id)

    def delete_item(self, group: RetentionGroup, item: BackupItem) -> int:
        return self.s3_hook().delete_prefix(self.bucket, cassandra_layout.day_prefix(self.prefix, self.cluster, item.id))

    def result(self, context: Any, run: RetentionRun) -> dict[str, Any]:
        return {"keep": run.kept, "prune": run.pruned, "deleted_objects": sum(run.deleted.values())}


# ------------------------------------------------------------------------------------------------
# restore


class CassandraRestoreOperator(CassandraBaseOperator):
    """On one host: fetch the files it uploaded itself, decompress, check each SHA-256, and write
    `<restore folder>/<keyspace>/<table dir>/<file>` over SFTP. Never inside the live data folder."""

    template_fields: Sequence[str] = ("target",)

    def __init__(self, *, target: dict[str, Any], restore_threads: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.restore_threads = restore_threads

    def execute(self, context: Any) -> dict[str, Any]:
        target = self.target
        # the plan's target: a node spec of the clusters file plus what to restore
        node = CassandraNodeSpec.from_record(target)
        host, data_dir = node.host, node.data_dir
        folder = cassandra_restore.restore_folder_for(target["restore_folder"], host)
        cassandra_restore.check_outside(folder, data_dir)
        scope = cassandra_files.Scope(
            keyspaces=tuple(target.get("keyspaces") or ()),
            tables=tuple(target.get("tables") or ()),
            exclude_keyspaces=tuple(target.get("exclude_keyspaces") or ()),
        )
        s3 = self.s3_hook()
        manifest = self.load_manifest(s3, target["manifest"])
        if manifest.host != host:
            raise AirflowException(f"{target['manifest']} belongs to {manifest.host}, not {host}")
        self.log.info("%s: restoring day %s (run %s), taken at %s", host, manifest.day, manifest.run_id, manifest.created_at)
        entries = cassandra_restore.select_restore_entries(manifest, scope)
        table_folders = cassandra_restore.select_restore_tables(manifest, scope)
        if not table_folders:
            raise AirflowException(f"{host}: nothing in {target['manifest']} matches keyspaces/tables {scope}")
        if self.is_dry_run(context):
            self.record_outcome(context, status="dry_run", node=host, detail=f"would restore {len(entries)} files to {folder}")
            return {"host": host, "dry_run": True, "files": len(entries)}
        with self.node_hook(node) as remote:
            real_folder = remote.realpath(folder)
            cassandra_restore.check_outside(real_folder, remote.realpath(data_dir))
            try:
                remote.makedirs(folder)
                # every table folder, an empty table's too; then index sub-folders
                for table_folder in sorted(
                    {*(posixpath.join(folder, t) for t in table_folders),
                     *(posixpath.dirname(posixpath.join(folder, e.path)) for e in entries)}
                ):
                    remote.makedirs(table_folder)
            except OSError as exc:
                raise write_failed(host, folder, "its folders", exc) from exc

            def fetch(entry: cassandra_manifest.ManifestEntry) -> int:
                partial = cassandra_restore.partial_name(posixpath.join(folder, entry.path))
                try:
                    result = s3.download_stream(self.bucket, entry.key, lambda: remote.open_for_write(partial))
                    if result.sha256 != entry.sha256 or result.size != entry.size:
                        raise ChecksumMismatch(
                            f"{host}: {entry.key} decompressed to {result.size} bytes sha256 {result.sha256}, "
                            f"manifest says {entry.size} bytes sha256 {entry.sha256}"
                        )
                    written = remote.file_size(partial)
                except OSError as exc:
                    raise write_failed(host, folder, entry.path, exc) from exc
                if written != entry.size:
                    raise AirflowException(
                        f"{host}: restore folder {folder}: {entry.path} has {written} bytes on disk, "
                        f"{entry.size} were written (disk full?)"
                    )
                return entry.size

            # Every file lands under a hidden `.part` name and gets its real name only once its
            # bytes on the node's disk have the manifest's size and SHA-256: a failed write
            # (full disk, no permission) fails the restore and leaves no complete-looking file.
            partials = {cassandra_restore.partial_name(posixpath.join(folder, e.path)): e for e in entries}
            try:
                sizes = remote.parallel(entries, fetch, self.restore_threads)
                schema_partial = None
                if manifest.schema_key:
                    schema = self.required_bytes(s3, manifest.schema_key)
                    schema_partial = cassandra_restore.partial_name(posixpath.join(folder, "schema.cql"))
                    try:
                        with remote.open_for_write(schema_partial) as handle:
                            handle.write(schema)
                    except OSError as exc:
                        raise write_failed(host, folder, "schema.cql", exc) from exc
                expected = {p: e.sha256 for p, e in partials.items()}
                if schema_partial:
                    expected[schema_partial] = hashlib.sha256(schema).hexdigest()
                on_disk = remote.sha256_files(sorted(expected))
                wrong = sorted(p for p, digest in expected.items() if on_disk.get(p) != digest)
                if wrong:
                    raise AirflowException(
                        f"{host}: restore folder {folder}: {len(wrong)} files differ on disk from what was "
                        f"written (SHA-256), e.g. {wrong[:3]}"
                    )
                for partial in expected:
                    remote.replace(partial, cassandra_restore.final_name(partial))
            except BaseException:
                for partial in [*partials, cassandra_restore.partial_name(posixpath.join(folder, "schema.cql"))]:
                    with contextlib.suppress(Exception):
                        remote.remove(partial)
                raise
        tables = table_folders
        self.record_outcome(
            context,
            status="done",
            node=host,
            produced=[{"id": f"{host}:{folder}", "size": sum(sizes)}],
            detail=f"{len(entries)} files, SHA-256 checked, from {manifest.tag}: {', '.join(tables)}",
        )
        return {
            "host": host,
            "folder": folder,
            "data_dir": data_dir,
            "commitlog_dir": target.get("commitlog_dir") or "",
            "files": len(entries),
            "bytes": sum(sizes),
            "tables": tables,
            "tag": manifest.tag,
        }


class CassandraRestorePlanOperator(CassandraBaseOperator):
    """Check the restore params and pick, for each host, the manifest it wrote that day.

    Returns one target per host for the mapped restore task. Bad params fail at once (no retry),
    naming the param and its value."""

    template_fields: Sequence[str] = ("date", "hosts", "keyspaces", "tables", "restore_folder", "tag", "system_keyspaces")

    def __init__(
        self,
        *,
        nodes: Sequence[CassandraNodeSpec],
        date: Any = "",
        hosts: Any = (),
        keyspaces: Any = (),
        tables: Any = (),
        restore_folder: Any = "/tmp/cassandra_restore",
        tag: Any = "",
        system_keyspaces: Any = cassandra_restore.DEFAULT_SYSTEM_KEYSPACES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.system_keyspaces = system_keyspaces
        self.nodes = list(nodes)
        self.date = date
        self.hosts = hosts
        self.keyspaces = keyspaces
        self.tables = tables
        self.restore_folder = restore_folder
        self.tag = tag

    @staticmethod
    def _as_list(value: Any, name: str) -> list[str]:
        if value in (None, "", [], ()):
            return []
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise AirflowFailException(f"param {name!r}: value {value!r} must be a list of names")
        return list(value)

    def execute(self, context: Any) -> list[dict[str, Any]]:
        try:
            hosts = [cassandra_layout.validate_host(h, "param 'hosts'") for h in self._as_list(self.hosts, "hosts")]
            keyspaces = [cassandra_layout.validate_keyspace(k, "param 'keyspaces'") for k in self._as_list(self.keyspaces, "keyspaces")]
            tables = [cassandra_layout.validate_table(t, "param 'tables'") for t in self._as_list(self.tables, "tables")]
            folder_template = str(self.restore_folder or "")
            for node in self.nodes:
                folder = cassandra_restore.restore_folder_for(folder_template, node.host)
                cassandra_restore.check_outside(folder, node.data_dir, "param 'restore_folder'")
            # native rendering turns 20261121 into an int: names and dates are text here
            tag = cassandra_layout.validate_tag(str(self.tag), "param 'tag'") if self.tag else None
            day = cassandra_layout.validate_day(str(self.date), "param 'date'") if self.date else None
            excluded = cassandra_restore.excluded_system_keyspaces(
                str(self.system_keyspaces or cassandra_restore.DEFAULT_SYSTEM_KEYSPACES), keyspaces, tables
            )
        except cassandra_layout.CassandraNameError as exc:
            raise AirflowFailException(str(exc)) from exc
        known = {n.host: n for n in self.nodes}
        unknown = [h for h in hosts if h not in known]
        if unknown:
            raise AirflowFailException(f"param 'hosts': value {unknown!r} are not nodes of cluster {self.cluster} ({sorted(known)})")
        hosts = hosts or list(known)
        s3 = self.s3_hook()
        if day is None:
            days = self.day_folders(s3)
            day = next((d for d in reversed(days) if all(
                cassandra_restore.latest_manifest(self.day_manifests(s3, d), d, h, tag) for h in hosts)), None)
            if day is None:
                raise AirflowFailException(f"no day in s3://{self.bucket}/{self.prefix}/{self.cluster}/ has a manifest for {hosts}")
        refs = self.day_manifests(s3, day)
        chosen = {host: cassandra_restore.latest_manifest(refs, day, host, tag) for host in hosts}
        missing = [host for host, ref in chosen.items() if ref is None]
        if missing:
            raise AirflowFailException(
                f"param 'date': {day} has no manifest{' for tag ' + tag if tag else ''} for hosts {missing}"
            )
        manifests = {host: self.load_manifest(s3, ref.key) for host, ref in chosen.items()}
        # a wrong name (or its case) fails here, once, not on every host
        scope = cassandra_files.Scope(keyspaces=tuple(keyspaces), tables=tuple(tables), exclude_keyspaces=excluded)
        try:
            cassandra_restore.check_restore_names(keyspaces, tables, manifests.values(), f"the backup of {day}")
        except cassandra_layout.CassandraNameError as exc:
            raise AirflowFailException(str(exc)) from exc
        empty = [host for host, manifest in manifests.items() if not cassandra_restore.select_restore_tables(manifest, scope)]
        if empty:
            raise AirflowFailException(
                f"params 'keyspaces'/'tables'/'system_keyspaces': nothing of the backup of {day} on {empty} matches "
                f"keyspaces {keyspaces or 'all'}, tables {tables or 'all'}, system keyspaces left out {list(excluded)}"
            )
        targets = [
            {
                **known[host].as_record(),
                "manifest": ref.key,
                "keyspaces": keyspaces,
                "tables": tables,
                "exclude_keyspaces": list(excluded),
                "restore_folder": folder_template,
            }
            for host, ref in chosen.items()
        ]
        self.log.info("restoring day %s: %s", day, [(t["host"], t["manifest"]) for t in targets])
        return targets


class CassandraRestoreReportOperator(BackupOperator):
    """The restore's last word before the report: what was restored where, and what to do next
    (the node restart method), in the log, the report mail and the return value."""

    def __init__(self, *, restore_task_id: str, data_dir: str, commitlog_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restore_task_id = restore_task_id
        self.data_dir = data_dir
        self.commitlog_dir = commitlog_dir

    def execute(self, context: Any) -> str:
        pulled = context["ti"].xcom_pull(task_ids=self.restore_task_id)
        # one mapped instance comes back as its value, several as a list
        results = [r for r in ([pulled] if isinstance(pulled, dict) else pulled or []) if r]
        if self.is_dry_run(context):
            detail = ", ".join(f"{r['host']}: {r.get('files', 0)} files" for r in results)
            self.record_outcome(context, status="dry_run", detail=f"would restore {detail}")
            return detail
        if not results:
            raise AirflowException("nothing was restored")
        tables = sorted({t for r in results for t in r.get("tables", [])})
        # each node's own folders (a node may have its own data_dir / commitlog_dir)
        nodes = [
            cassandra_restore.RestoredNode(
                host=r["host"],
                folder=r["folder"],
                data_dir=r.get("data_dir") or self.data_dir,
                commitlog_dir=r.get("commitlog_dir") or self.commitlog_dir,
            )
            for r in results
        ]
        text = cassandra_restore.next_steps(nodes, tables)
        self.log.info("%s", text)
        # one status row per line: the report mail shows them as a table, in order
        self.record_outcome(
            context, status="done", detail="restore done; next steps below", rows=[{"next steps": line} for line in text.splitlines()]
        )
        return text
