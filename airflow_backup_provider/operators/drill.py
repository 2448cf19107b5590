"""Restore drills: each kind's newest (or chosen) backup restored into a scratch folder and checked
against what the backup recorded; the scratch folder always removed (``cleanup_scratch``, all_done).

A drill reads S3 and writes only under ``<drill_folder>/<dag id>/<run>`` on the drill host (the
worker unless ``drill_host`` is set): nothing live is touched. Its verdict per backup goes to the
report (``produced`` items with ``verified`` and ``verdict``) and to ``<manifest>.drill.json``
next to the backup's manifest, written with the object store hook (encrypted as the entry says).
A failed check fails the task, naming the file or key that did not match: the run's report
fails and alerts like a failed backup.
"""

from __future__ import annotations

import json
import posixpath
import random
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import zstandard
from airflow.sdk import conf
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from airflow_backup_provider import dates
from airflow_backup_provider.hooks.bup import BupNodeHook
from airflow_backup_provider.hooks.devicedb import DevicedbError, DevicedbHook, DevicedbUnreachable
from airflow_backup_provider.hooks.drill import ScratchHook
from airflow_backup_provider.hooks.object_store import ObjectStoreHook
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.bup import BupError, BupNodeOperator, choose_save, list_saves
from airflow_backup_provider.operators.cassandra import CassandraBaseOperator
from airflow_backup_provider.operators.devicedb import DevicedbBaseOperator
from airflow_backup_provider.operators.remote_job import RemoteJobMixin
from airflow_backup_provider.stores import bup as bup_store
from airflow_backup_provider.stores import cassandra_files, cassandra_layout, cassandra_restore, s3sync
from airflow_backup_provider.stores import devicedb as ddb
from airflow_backup_provider.stores import drill as store

T = TypeVar("T")
CHECK_TASK_ID = "drill"
CLEANUP_TASK_ID = "cleanup_scratch"
SCRATCH_NODE_JOB = "devicedb-scratch-node"  # the devicedb drill's node, in `<scratch>/jobs/`


@dataclass
class BackupCheck:
    """What a drill found for one backup (one node's manifest, one snapshot, one save)."""

    backup: str  # what the report names: a manifest key, a save
    what: str  # what was checked, in words
    record_key: str | None = None  # where the verdict JSON goes (None: the report only)
    files: int = 0
    size: int = 0
    problems: list[str] = field(default_factory=list)


def read_failure(key: str, exc: BaseException) -> str | None:
    """The problem an object read ended in, naming the key; None for a fault that is not the
    object's (the task fails on those, and Airflow's retry tries again)."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            return f"{key}: missing from the bucket"
        return None
    if isinstance(exc, zstandard.ZstdError | zlib.error | EOFError):
        return f"{key}: cannot be decompressed ({exc}): changed or cut short"
    return None


def each_collecting(items: Sequence[T], work: Callable[[T], list[str]], threads: int) -> list[str]:
    """Run `work` on every item, `threads` at a time, and gather every problem (a drill reports
    all it found, not the first); an exception that is not a finding fails the task."""
    if threads <= 1 or len(items) <= 1:
        return [p for item in items for p in work(item)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="drill") as pool:
        return [p for found in pool.map(work, items) for p in found]


class DrillMixin:
    """Where a drill writes, and how it reports. Mixed before a kind's base operator."""

    drill_folder: str
    drill_host: str | None
    drill_port: int | None

    def init_drill(self, *, drill_folder: str, drill_host: str | None = None, drill_port: int | None = None) -> None:
        self.drill_folder = drill_folder
        self.drill_host = drill_host
        self.drill_port = drill_port

    def scratch_hook(self, context: Any) -> ScratchHook:
        scratch = store.scratch_folder(self.drill_folder, context["ti"].dag_id, context["run_id"])
        # the drill host is reached as the SSH user itself: the scratch folder is its own
        conn = self.ssh_conn_id if self.drill_host else "local"  # type: ignore[attr-defined]
        return ScratchHook(ssh_conn_id=conn, host=self.drill_host, port=self.drill_port, scratch=scratch)

    def finish_drill(
        self,
        context: Any,
        s3: ObjectStoreHook | None,
        bucket: str | None,
        checks: Sequence[BackupCheck],
        warnings: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Record each backup's verdict (JSON next to its manifest, the report), then fail naming
        what did not match, if anything did."""
        now = dates.now_utc()
        failed = [c for c in checks if c.problems]
        for check in checks:
            if check.record_key and s3 is not None and bucket:
                record = store.build_record(
                    dag_id=context["ti"].dag_id,
                    run_id=context["run_id"],
                    backup=check.backup,
                    manifest_key=check.record_key.removesuffix(store.RECORD_SUFFIX),
                    checked_at=now,
                    files=check.files,
                    size=check.size,
                    problems=check.problems,
                    what=check.what,
                )
                s3.put_bytes(bucket, check.record_key, store.record_json(record), "application/json")
        produced = [store.produced_entry(c.backup, c.size, c.problems) for c in checks]
        rows = [
            {"backup": c.backup, "files": c.files, "bytes": c.size, "verdict": store.FAILED if c.problems else store.PASSED}
            for c in checks
        ]
        if failed:
            text = " | ".join(f"{c.backup}: {store.named(c.problems)}" for c in failed)
            self.record_outcome(  # type: ignore[attr-defined]
                context, status="failed", produced=produced, rows=rows, detail=f"verdict {store.FAILED}: {text}", warnings=warnings
            )
            raise AirflowFailException(f"restore drill failed: {text}")
        detail = f"verdict {store.PASSED}: " + "; ".join(f"{c.backup}: {c.files} files, {c.what}" for c in checks)
        self.record_outcome(context, status="done", produced=produced, rows=rows, detail=detail, warnings=warnings)  # type: ignore[attr-defined]
        return {"verdict": store.PASSED, "backups": [c.backup for c in checks], "files": sum(c.files for c in checks)}


class DrillCleanupOperator(DrillMixin, BackupOperator):
    """Remove the run's scratch folder on the drill host, whatever the drill did (``all_done``)."""

    ui_color = "#f0e0d0"

    def __init__(
        self,
        *,
        drill_folder: str,
        drill_host: str | None = None,
        drill_port: int | None = None,
        ssh_conn_id: str = "local",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("task_id", CLEANUP_TASK_ID)
        super().__init__(**kwargs)
        self.init_drill(drill_folder=drill_folder, drill_host=drill_host, drill_port=drill_port)
        self.ssh_conn_id = ssh_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        with self.scratch_hook(context) as scratch:
            existed = scratch.remove_scratch()
        where = f"{scratch.target}:{scratch.scratch}"
        self.record_outcome(context, status="done", detail=f"removed {where}" if existed else f"nothing at {where}")
        return {"scratch": scratch.scratch, "removed": existed}


# ------------------------------------------------------------------------------------------------
# cassandra


class CassandraDrillOperator(DrillMixin, CassandraBaseOperator):
    """Download every node's files of one backup day into the scratch folder, exactly where the
    restore puts them (`<host>/<keyspace>/<table dir>/[.<index>/]<file>`), checking size and SHA-256
    of each file against the manifest and then the folder's layout against the restore's."""

    template_fields: Sequence[str] = ("backup",)

    def __init__(
        self,
        *,
        hosts: Sequence[str],
        backup: Any = "",
        drill_folder: str,
        drill_host: str | None = None,
        drill_port: int | None = None,
        threads: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_drill(drill_folder=drill_folder, drill_host=drill_host, drill_port=drill_port)
        self.hosts = list(hosts)
        self.backup = backup
        self.threads = threads

    def choose_day(self, s3: ObjectStoreHook) -> tuple[str, list[str]]:
        """The form's day, or the newest day every node of the cluster has a manifest in; and a
        warning for each newer day that is not a complete backup."""
        wanted = str(self.backup or "").strip()
        if wanted:
            try:
                day = cassandra_layout.validate_day(wanted, "param 'backup'")
            except cassandra_layout.CassandraNameError as exc:
                raise AirflowFailException(str(exc)) from exc
            if not cassandra_restore.is_day_complete(self.day_manifests(s3, day), day, self.hosts):
                raise AirflowFailException(f"param 'backup': {day} is not a complete backup (a manifest of every node: {self.hosts})")
            return day, []
        incomplete: list[str] = []
        for day in reversed(self.day_folders(s3)):
            refs = self.day_manifests(s3, day)
            if cassandra_restore.is_day_complete(refs, day, self.hosts):
                return day, incomplete
            # a newer day without every node's manifest: a backup running now, or a broken one
            missing = sorted(set(self.hosts) - cassandra_restore.complete_hosts(refs, day))
            incomplete.append(f"the newer day {day} is not a complete backup: no manifest of {missing}")
        raise AirflowFailException(
            f"no complete backup in s3://{self.bucket}/{self.prefix}/{self.cluster}/ to drill"
            + (f" ({'; '.join(incomplete[:3])})" if incomplete else "")
        )

    def execute(self, context: Any) -> dict[str, Any]:
        s3 = self.s3_hook()
        day, incomplete = self.choose_day(s3)
        for warning in incomplete:
            self.log.warning("%s", warning)
        refs = self.day_manifests(s3, day)
        chosen = {h: cassandra_restore.latest_manifest(refs, day, h) for h in self.hosts}
        manifests = {h: (ref.key, self.load_manifest(s3, ref.key)) for h, ref in chosen.items() if ref}
        if self.is_dry_run(context):
            plan = ", ".join(f"{h}: {len(m.files)} files of {key}" for h, (key, m) in manifests.items())
            self.record_outcome(context, status="dry_run", detail=f"would download and check {plan}")
            return {"day": day, "dry_run": True}
        checks = []
        with self.scratch_hook(context) as scratch:
            for host, (key, manifest) in manifests.items():
                checks.append(self._drill_host(s3, scratch, host, key, manifest))
        return {"day": day, **self.finish_drill(context, s3, self.bucket, checks, warnings=incomplete)}

    def _drill_host(self, s3: ObjectStoreHook, scratch: ScratchHook, host: str, key: str, manifest: Any) -> BackupCheck:
        folder = posixpath.join(scratch.scratch, host)
        check = BackupCheck(backup=key, what="size, SHA-256 and restore layout", record_key=store.record_key(key))
        if manifest.host != host:
            check.problems.append(f"{key}: belongs to {manifest.host}, not {host}")
            return check
        entries = list(manifest.files)
        # the folders the restore makes: every table folder (an empty table's too), index sub-folders
        tables = cassandra_restore.select_restore_tables(manifest, cassandra_files.Scope())
        folders = store.folders_of([e.path for e in entries], tables)
        scratch.makedirs(folder, *(posixpath.join(folder, f) for f in folders))

        def fetch(entry: Any) -> list[str]:
            try:
                got = s3.download_stream(self.bucket, entry.key, lambda: scratch.open_for_write(posixpath.join(folder, entry.path)))
            except Exception as exc:
                problem = read_failure(entry.key, exc)
                if problem is None:
                    raise
                return [problem]
            if (got.size, got.sha256) != (entry.size, entry.sha256):
                return [
                    f"{entry.key}: decompressed to {got.size} bytes with SHA-256 {got.sha256}, "
                    f"the manifest says {entry.size} bytes with {entry.sha256}"
                ]
            return []

        # the restore also needs the node's schema (it fails without it)
        for meta in (manifest.schema_key, manifest.status_key):
            if meta and s3.head_size(self.bucket, meta) is None:
                check.problems.append(f"{meta}: missing from the bucket")
        check.problems += each_collecting(entries, fetch, self.threads)
        check.files, check.size = len(entries), sum(e.size for e in entries)
        found = scratch.list_tree(folder)
        # a file whose download failed is already named; the layout check says the rest
        named_paths = {e.path for e in entries if any(p.startswith(e.key + ":") for p in check.problems)}
        layout = store.compare_tree(
            [t for t in found if t.path not in named_paths],
            {e.path: e.size for e in entries if e.path not in named_paths},
            folders,
        )
        check.problems += [f"{host} restore layout: {p}" for p in layout]
        self.log.info("%s: %d files of %s checked, %d problems", host, check.files, key, len(check.problems))
        return check


# ------------------------------------------------------------------------------------------------
# devicedb


class DevicedbDrillOperator(DrillMixin, DevicedbBaseOperator):
    """Download every node's tar of one complete snapshot into the scratch folder, check its size
    and SHA-256 against the manifest, then its members: plain LevelDB file names, every member's
    data and the end-of-archive marker there, a `CURRENT` and a `MANIFEST-*` among them."""

    template_fields: Sequence[str] = ("backup",)

    def __init__(
        self,
        *,
        backup: Any = "",
        drill_folder: str,
        drill_host: str | None = None,
        drill_port: int | None = None,
        serve_command: Sequence[str] | None = None,
        start_timeout: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_drill(drill_folder=drill_folder, drill_host=drill_host, drill_port=drill_port)
        self.backup = backup
        # a scratch node needs a host with devicedb: only on the drill host, never on the worker
        self.serve_command = list(serve_command) if serve_command and drill_host else None
        self.start_timeout = start_timeout

    def choose(self) -> dict[str, Any]:
        manifests = self.complete_manifests()
        wanted = str(self.backup or "").strip()
        if wanted:
            try:
                return dict(ddb.choose_snapshot(manifests, wanted))
            except (LookupError, ValueError) as exc:
                raise AirflowFailException(f"param 'backup': {exc}") from exc
        if not manifests:
            raise AirflowFailException(f"no complete snapshot in s3://{self.bucket}/{self.prefix}/{self.cluster}/ to drill")
        return dict(max(manifests, key=lambda m: (m["logical_date"], m["created_at"])))

    def execute(self, context: Any) -> dict[str, Any]:
        s3 = self.s3()
        manifest = self.choose()
        key = ddb.manifest_key(self.prefix, self.cluster, manifest["uuid"])
        if self.is_dry_run(context):
            self.record_outcome(
                context, status="dry_run", detail=f"would download and check {len(manifest['nodes'])} node tars of {key}"
            )
            return {"uuid": manifest["uuid"], "dry_run": True}
        check = BackupCheck(backup=key, what="size, SHA-256 and LevelDB members", record_key=store.record_key(key))
        # the restore refuses a snapshot of other nodes than the clusters file's: so does the drill
        configured, recorded = sorted(n.label for n in self.nodes), sorted(n["node"] for n in manifest["nodes"])
        if configured != recorded:
            check.problems.append(f"{key}: its nodes {recorded} are not the clusters file's nodes {configured}")
        with self.scratch_hook(context) as scratch:
            scratch.makedirs(scratch.scratch)
            good = []
            for piece in manifest["nodes"]:
                problems = self._check_node(s3, scratch, piece)
                check.problems += problems
                good += [] if problems else [piece]
                check.files += 1
                check.size += piece["size"]
            if self.serve_command and manifest.get("check") and good:
                check.what += ", check key read back from a scratch node"
                check.problems += self._read_back(context, scratch, good[0], manifest["check"])
            elif self.serve_command and not manifest.get("check"):
                self.log.warning("%s records no check key (check_site null): no scratch node started", key)
        return {"uuid": manifest["uuid"], **self.finish_drill(context, s3, self.bucket, [check])}

    def _read_back(self, context: Any, scratch: ScratchHook, piece: dict[str, Any], check: dict[str, str]) -> list[str]:
        """Start a single scratch node on `piece`'s store, extracted under the scratch folder, on
        a free port of the drill host; read the check key back; stop the node whatever happened
        (``cleanup_scratch`` stops it too, should this task die first)."""
        node = piece["node"]
        tar = posixpath.join(scratch.scratch, f"{ddb.run_tag(node)}.tar")
        home = posixpath.join(scratch.scratch, "node")
        store_dir, snapshots = posixpath.join(home, "store"), posixpath.join(home, "snapshots")
        scratch.makedirs(store_dir, snapshots)
        scratch.run(["tar", "-xf", tar, "-C", store_dir], timeout=3600).check(f"extracting {tar} into {store_dir}")
        scratch.run(["rm", "-f", "--", tar], timeout=600)  # the store is what the node reads now
        listening = scratch.run(store.listening_ports_argv(), timeout=60).check("listing the drill host's TCP ports")
        live_ports = [spec.http_port for spec in self.nodes if spec.host == self.drill_host]
        port = store.free_port(store.parse_listening_ports(listening.stdout), live_ports, context["run_id"])
        config = posixpath.join(home, "config.json")
        body = ddb.scratch_node_config(address=self.drill_host, port=port, store=store_dir, snapshot_store=snapshots)
        with scratch.open_for_write(config) as handle:
            handle.write(json.dumps(body, indent=2).encode())
        job = scratch.job(SCRATCH_NODE_JOB, (*self.serve_command, config))
        where = f"scratch node {self.drill_host}:{port} on the store of {node}"
        scratch.start_job(job)
        try:
            hook = DevicedbHook(
                self.drill_host, port, http_host=self.drill_host, timeout=self.http_timeout, ssh_tunnel=self.ssh_tunnel,
                ssh_conn_id=self.ssh_conn_id, ssh_port=self.drill_port or 22,
            )
            with hook:
                try:
                    self._wait_answering(scratch, job, hook, where)
                    found = hook.get_key(check["site"], check["bucket"], check["key"])
                except DevicedbError as exc:
                    return [f"node {node}: check key {check['key']!r} unreadable on the {where}: {exc}"]
            problem = ddb.check_key_problem(node, check, found)
            self.log.info("%s: check key %r reads %r: %s", where, check["key"], found, problem or "as recorded")
            return [problem] if problem else []
        finally:
            scratch.stop_job(job)

    def _wait_answering(self, scratch: ScratchHook, job: Any, hook: DevicedbHook, where: str) -> None:
        """Until the scratch node answers `GET /cluster` (tenacity, bounded by start_timeout); a
        node that exited (its port taken, its store unreadable) fails at once with its log."""

        def answering() -> bool:
            status = scratch.job_status(job)
            if status.state in ("done", "gone"):
                raise DevicedbError(hook.node, "starting", f"the {where} exited: {status.log.strip()[-500:] or '(no output)'}")
            try:
                hook.cluster_nodes()
            except DevicedbUnreachable:
                return False
            return True

        retrying = Retrying(
            retry=retry_if_result(lambda ok: not ok),
            stop=stop_after_delay(self.start_timeout),
            wait=wait_exponential(multiplier=0.2, max=5),
            retry_error_callback=lambda state: state.outcome.result(),
        )
        if not retrying(answering):
            raise DevicedbError(hook.node, "GET /cluster", f"the {where} does not answer within {self.start_timeout}s")

    def _check_node(self, s3: ObjectStoreHook, scratch: ScratchHook, piece: dict[str, Any]) -> list[str]:
        key = piece["key"]
        target = posixpath.join(scratch.scratch, f"{ddb.run_tag(piece['node'])}.tar")
        try:
            got = s3.download_stream(self.bucket, key, lambda: scratch.open_for_write(target), decompress=False)
        except Exception as exc:
            problem = read_failure(key, exc)
            if problem is None:
                raise
            return [problem]
        if (got.size, got.sha256) != (piece["size"], piece["sha256"]):
            return [
                f"{key}: {got.size} bytes with SHA-256 {got.sha256}, the manifest says "
                f"{piece['size']} bytes with {piece['sha256']}"
            ]
        # the members, as the restore's extraction would meet them: tarfile reads it where it lies
        try:
            with scratch.open_for_read(target) as handle:
                members = ddb.check_snapshot_tar(handle).members
        except ValueError as exc:
            return [f"{key}: {exc}"]
        self.log.info("node %s: %s, %d bytes, %d LevelDB files: good", piece["node"], key, got.size, len(members))
        return []


# ------------------------------------------------------------------------------------------------
# bup


class BupDrillOperator(DrillMixin, RemoteJobMixin, BupNodeOperator):
    """On the backup server (where the repository is): restore one save (the newest unless the form
    names one) of the backup set into the scratch folder, compare every path with what the save
    recorded (`bup ls -l -s`: type, mode, size, and the content's git id: `git hash-object`, or
    `bup split --noop -t` for a file bup stored in chunks), then verify the packs (`bup fsck`,
    a detached job). The verdict names the save and each path that did not match."""

    template_fields: Sequence[str] = ("backup",)

    def __init__(
        self,
        *,
        branch: str,
        backup: Any = "",
        drill_folder: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # the scratch folder is on the server itself: the restore reads the repository there
        self.init_drill(drill_folder=drill_folder, drill_host=self.host, drill_port=self.port)
        self.branch = bup_store.check_branch(branch)
        self.backup = backup
        self.deferrable = deferrable

    def scratch_hook(self, context: Any) -> ScratchHook:
        scratch = store.scratch_folder(self.drill_folder, context["ti"].dag_id, context["run_id"])
        return ScratchHook(ssh_conn_id=self.ssh_conn_id, host=self.host, port=self.port, scratch=scratch)

    def saved_entries(self, hook: BupNodeHook, root: str) -> list[store.SavedEntry]:
        """Every path of the save under `root` (``/<branch>/<save>/``), folder by folder."""
        found: list[store.SavedEntry] = []
        pending = [""]
        while pending:
            rel = pending.pop()
            argv = self.commands.ls(root + rel, remote=False, long=True, hashes=True, show_all=True)
            listed = self._check(hook.run(argv, timeout=600), f"bup ls {root + rel}")
            for entry in bup_store.parse_ls(listed.stdout, long=True):
                path = rel + entry.name
                found.append(store.SavedEntry(path, entry.kind, entry.mode or "", entry.size or 0, entry.hash or ""))
                if entry.kind == "dir":
                    pending.append(path + "/")
        return found

    def content_problems(self, hook: BupNodeHook, target: str, files: list[store.SavedEntry]) -> list[str]:
        """Each restored file's git id against the save's: a blob (`git hash-object`), or for a file
        bup split into chunks, the chunk tree (`bup split --noop -t`, which writes nothing)."""
        problems = []
        for start in range(0, len(files), 200):
            batch = files[start : start + 200]
            paths = [posixpath.join(target, f.path) for f in batch]
            result = self._check(hook.run(["git", "hash-object", "--no-filters", "--", *paths], timeout=self.command_timeout), "git hash-object")
            ids = result.stdout.split()
            if len(ids) != len(batch):
                raise BupError(f"git hash-object gave {len(ids)} ids for {len(batch)} files")
            for entry, path, blob in zip(batch, paths, ids, strict=True):
                if blob == entry.hash:
                    continue
                tree = hook.run(self.commands.split_tree_id(path), timeout=self.command_timeout)
                if tree.ok and tree.stdout.strip() == entry.hash:
                    continue
                problems.append(f"{entry.path}: restored content (git id {blob}) is not the saved {entry.hash}")
        return problems

    def execute(self, context: Any) -> dict[str, Any]:
        wanted = str(self.backup or "latest")
        backup = f"{self.host}:{self.bup_dir} /{self.branch}/{wanted}"
        problems: list[str] = []
        recorded: list[store.SavedEntry] = []
        with self.node_hook() as hook:
            try:
                saves = list_saves(hook, self.commands, self.branch, remote=False) or []
                chosen = choose_save(saves, wanted)
            except BupError as exc:
                if self.backup:  # the form named a save that is not there: the form's fault
                    raise AirflowFailException(str(exc).replace("param 'save'", "param 'backup'")) from exc
                # no readable save: that is this drill's finding (a damaged repository reads as none)
                problems.append(f"/{self.branch}: {exc} that bup can read")
                chosen = None
            if chosen is not None:
                root = f"/{self.branch}/{chosen.name}/"
                backup = f"{self.host}:{self.bup_dir} {root}"
                if self.is_dry_run(context):
                    self.record_outcome(context, status="dry_run", node=self.host, detail=f"would restore and check {backup}, then bup fsck")
                    return {"save": chosen.name, "dry_run": True}
                try:
                    recorded = self.saved_entries(hook, root)
                except BupError as exc:
                    problems.append(f"{root}: the save cannot be listed: {exc}")
            if recorded:
                problems += self.restore_and_compare(context, hook, root, recorded)
            files = [e for e in recorded if e.kind == "file"]
            self.log.info("%s: %d paths (%d files) compared, %d problems; now bup fsck", backup, len(recorded), len(files), len(problems))
            return self.run_remote_job(
                context, hook, self.commands.fsck(), step="drill-fsck", method_name="verified", timeout=self.command_timeout,
                kwargs={"backup": backup, "problems": problems, "files": len(files), "size": sum(e.size for e in files)},
            )

    def restore_and_compare(self, context: Any, hook: BupNodeHook, root: str, recorded: list[store.SavedEntry]) -> list[str]:
        with self.scratch_hook(context) as scratch:
            target = posixpath.join(scratch.scratch, "restore")
            scratch.makedirs(target)
            restored = hook.run(self.commands.restore(root, target, remote=False, quiet=True), timeout=self.command_timeout)
            if not restored.ok:
                return [f"{root}: bup restore failed: {(restored.stderr or restored.stdout).strip()[-500:]}"]
            found = scratch.list_tree(target)
            problems = store.compare_save(recorded, found)
            restored_files = {t.path for t in found if t.kind == "f"}
            files = [e for e in recorded if e.kind == "file" and e.path in restored_files]
            return problems + self.content_problems(hook, target, files)

    def verified(self, context: Any, event: dict[str, Any], backup: str, problems: list[str], files: int, size: int) -> dict[str, Any]:
        with self.node_hook() as hook:
            fsck = self.remote_job_result(hook, event, what=f"bup fsck on {self.host}")
        if not fsck.ok:
            problems = [*problems, f"bup fsck of {self.bup_dir}: {(fsck.stderr or fsck.stdout).strip()[-500:]}"]
        check = BackupCheck(backup=backup, what="type, mode, size and git id of every path, bup fsck", files=files, size=size, problems=problems)
        return self.finish_drill(context, None, None, [check])


class BupS3CopyDrillOperator(DrillMixin, BackupOperator):
    """The S3 copy of a bup repository against its sync manifest: every recorded object there with
    its size, none unrecorded, and a sample (`drill_sample`; all when null) read back whole and
    compared by SHA-256. Reads S3 only: no node is touched."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        aws_conn_id: str = "aws_default",
        sse: str = "AES256",
        kms_key_id: str | None = None,
        sample: int | None = 20,
        threads: int = 8,
        drill_folder: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_drill(drill_folder=drill_folder)
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.sample = sample
        self.threads = threads

    def execute(self, context: Any) -> dict[str, Any]:
        s3 = self.aws_hook(ObjectStoreHook, sse=self.sse, kms_key_id=self.kms_key_id)
        where = f"s3://{self.bucket}/{self.prefix}/"
        listed = s3.list_prefix(self.bucket, self.prefix)
        manifest = s3.read_manifest(self.bucket, self.prefix)
        if not manifest:
            raise AirflowFailException(f"{where} has no readable sync manifest ({s3sync.MANIFEST_NAME}): nothing to drill")
        chosen = sorted(r for r in manifest if r in listed and listed[r] == manifest[r].size)
        if self.sample is not None and len(chosen) > self.sample:
            # another sample every run (seeded by the run: a retry reads the same objects)
            chosen = sorted(random.Random(context["run_id"]).sample(chosen, self.sample))
        if self.is_dry_run(context):
            self.record_outcome(context, status="dry_run", detail=f"would read back {len(chosen)} of {len(manifest)} objects of {where}")
            return {"dry_run": True, "sampled": len(chosen)}
        problems = store.compare_listing(
            {s3sync.key_for(self.prefix, r): s.size for r, s in manifest.items()},
            {s3sync.key_for(self.prefix, r): size for r, size in listed.items()},
        )

        def read_back(rel: str) -> list[str]:
            key, expected = s3sync.key_for(self.prefix, rel), manifest[rel]
            if not expected.sha256:
                return [f"{key}: the sync manifest records no SHA-256"]
            try:
                got = s3.checksum_object(self.bucket, key, decompress=False)
            except Exception as exc:
                problem = read_failure(key, exc)
                if problem is None:
                    raise
                return [problem]
            if (got.size, got.sha256) != (expected.size, expected.sha256):
                return [f"{key}: {got.size} bytes with SHA-256 {got.sha256}, the sync manifest says {expected.size} bytes with {expected.sha256}"]
            return []

        problems += each_collecting(chosen, read_back, self.threads)
        check = BackupCheck(
            backup=where,
            what=f"every object's size, SHA-256 of {len(chosen)} of {len(manifest)}",
            record_key=self.prefix.rstrip("/") + store.RECORD_SUFFIX,  # beside the prefix: never synced back
            files=len(chosen),
            size=sum(manifest[r].size for r in chosen),
            problems=problems,
        )
        return self.finish_drill(context, s3, self.bucket, [check])
