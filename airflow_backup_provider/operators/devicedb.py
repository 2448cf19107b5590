"""The devicedb backup: trigger one cluster snapshot, upload each node's tar, write the manifest.

S3 layout (``<prefix>/<cluster>/``)::

    _runs/<logical date>.json     the UUID the trigger took for that logical date (idempotence);
                                  written before the POST too (uuid null), so that a retry after an
                                  unanswered POST looks for the snapshot it may have taken
    <uuid>/<node>.tar             one node's piece, uploaded as a multipart upload with SHA-256
    <uuid>/manifest.json          written last: a snapshot is complete if and only if it has one
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential

from airflow_backup_provider import dates
from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.hooks.devicedb import (
    DevicedbError,
    DevicedbHook,
    DevicedbTarTooLarge,
    DevicedbUnreachable,
    hook_for_node,
)
from airflow_backup_provider.hooks.object_store import MIB, ObjectStoreHook
from airflow_backup_provider.hooks.remote import RemoteCommandError, RemoteCommandHook, RemoteTransportError
from airflow_backup_provider.operators.base import BackupOperator
from airflow_backup_provider.operators.retention import RetentionGroup, RetentionOperator, RetentionRun
from airflow_backup_provider.retention import BackupItem, planned_backup
from airflow_backup_provider.stores import devicedb as ddb

TRIGGER_TASK_ID = "trigger_snapshot"
# Right after PUT /sites a replica may not have the site yet (nApplied 2 of 3): the check key is
# written again until every replica has it, a bounded number of times.
CHECK_KEY_ATTEMPTS = 8
CHECK_KEY_WAIT = wait_exponential(multiplier=0.5, max=5)


def task_label(label: str) -> str:
    """A node label as it may appear in a task id."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", label)


class DevicedbBaseOperator(BackupOperator):
    """What every devicedb task knows: the cluster, its nodes, where the snapshots go."""

    ui_color = "#e0f0e8"

    def __init__(
        self,
        *,
        cluster: str,
        nodes: Sequence[DevicedbNodeSpec],
        bucket: str,
        prefix: str,
        aws_conn_id: str = "aws_default",
        ssh_conn_id: str = "backup_ssh",
        http_timeout: float = 30.0,
        ssh_tunnel: bool = False,
        sudo_user: str | None = None,
        sse: str = "AES256",
        kms_key_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sse = sse
        self.kms_key_id = kms_key_id
        self.cluster = cluster
        self.nodes = list(nodes)
        self.bucket = bucket
        self.prefix = prefix
        self.aws_conn_id = aws_conn_id
        self.ssh_conn_id = ssh_conn_id
        self.http_timeout = http_timeout
        self.ssh_tunnel = ssh_tunnel
        self.sudo_user = sudo_user

    def devicedb(self, spec: DevicedbNodeSpec) -> DevicedbHook:
        return hook_for_node(spec, timeout=self.http_timeout, ssh_tunnel=self.ssh_tunnel, ssh_conn_id=self.ssh_conn_id)

    def s3(self) -> ObjectStoreHook:
        return self.aws_hook(ObjectStoreHook, sse=self.sse, kms_key_id=self.kms_key_id)

    def remote(self, spec: DevicedbNodeSpec) -> RemoteCommandHook:
        return self.remote_hook(spec.host, spec.ssh_port)

    def refuse_overlap(self, context: Any, other_dag_id: str, what: str) -> None:
        """The backup and the restore of one cluster never run at the same time."""
        running = context["ti"].get_dr_count(dag_id=other_dag_id, states=["queued", "running"])
        if running:
            raise AirflowException(f"{other_dag_id} has {running} run(s) in progress: {what}")

    def snapshot_of_run(self, context: Any) -> dict[str, Any]:
        record = context["ti"].xcom_pull(task_ids=TRIGGER_TASK_ID)
        if not record or not record.get("uuid"):
            raise AirflowException(f"{TRIGGER_TASK_ID} recorded no snapshot UUID for this run")
        return record

    def snapshot_folders(self, spec: DevicedbNodeSpec) -> list[ddb.SnapshotFolder]:
        """The snapshot folders in a node's -snapshot_store (``snapshot-<uuid>-<nodeID>``), over SSH."""
        folder = spec.snapshot_dir
        with self.remote(spec) as remote:
            listing = remote.run(["ls", "-1", "--", folder], timeout=60).check(
                f"listing the snapshot store {folder} (snapshot_dir) of node {spec.label}"
            )
        return ddb.parse_snapshot_folders(listing.stdout.splitlines())

    def read_manifest(self, uuid: str) -> dict[str, Any] | None:
        body = self.s3().get_bytes(self.bucket, ddb.manifest_key(self.prefix, self.cluster, uuid))
        if body is None:
            return None
        return ddb.parse_manifest(body, source=f"s3://{self.bucket}/{ddb.manifest_key(self.prefix, self.cluster, uuid)}")

    def complete_manifests(self) -> list[dict[str, Any]]:
        """The manifest of every complete snapshot of the cluster (an unreadable one is skipped, logged)."""
        found = []
        for obj in self.s3().list_objects(self.bucket, ddb.cluster_prefix(self.prefix, self.cluster)):
            uuid = ddb.uuid_from_key(self.prefix, self.cluster, obj["Key"])
            if uuid and obj["Key"] == ddb.manifest_key(self.prefix, self.cluster, uuid):
                try:
                    found.append(self.read_manifest(uuid))
                except ddb.DevicedbResponseError as exc:
                    self.log.warning("ignoring %s: %s", obj["Key"], exc)
        return [m for m in found if m]


class DevicedbTriggerSnapshotOperator(DevicedbBaseOperator):
    """
    Start one cluster snapshot and return ``{"uuid", "triggered_at", "node", "check"}``.

    Idempotent per logical date: the UUID is recorded in S3 (``_runs/<date>.json``) right after
    the POST, and a retry or a cleared run reuses it instead of taking a second snapshot. Only a
    recorded snapshot that some node reports ``failed``, or still ``missing`` after the grace
    period, is replaced by a new one (the old one is recorded as an orphan for the cleanup).

    Without quorum devicedb never answers the POST, yet takes the snapshot later on every node. So
    the record is written before the POST too (no UUID, with the snapshot folders every node had),
    and a retry that finds it adopts the one snapshot that appeared since; it takes a new one only
    once a majority of the nodes answers again and none appeared (several are all orphans).

    Before the snapshot, the check key (if configured) is written with a value unique to this
    backup, again until every replica has applied it; the manifest records it, and a restore
    reads it back.
    """

    def __init__(
        self,
        *,
        check_site: str | None = None,
        check_bucket: str = "lww",
        check_key: str = "airflow-backup-check",
        missing_grace: float = 300.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", TRIGGER_TASK_ID)
        super().__init__(**kwargs)
        self.missing_grace = timedelta(seconds=missing_grace)
        self.check_site = check_site
        self.check_bucket = check_bucket
        self.check_key = check_key

    def execute(self, context: Any) -> dict[str, Any]:
        logical_date = self.run_date(context)
        record_key = ddb.run_record_key(self.prefix, self.cluster, logical_date)
        s3 = self.s3()
        if self.is_dry_run(context):
            detail = f"dry run: would take a cluster snapshot through {self.nodes[0].label} and record it at s3://{self.bucket}/{record_key}"
            self.log.info(detail)
            self.record_outcome(context, status="dry_run", node=self.nodes[0].label, detail=detail)
            raise AirflowSkipException(detail)

        self.refuse_overlap(
            context, f"devicedb_{self.cluster}_restore", "no snapshot is taken of a cluster being restored"
        )
        where = f"s3://{self.bucket}/{record_key}"
        previous = s3.get_bytes(self.bucket, record_key)
        recorded: dict[str, Any] = json.loads(previous) if previous is not None else {}
        orphans = list(recorded.get("orphans") or [])
        if recorded.get("uuid"):
            uuid = ddb.check_uuid(recorded.get("uuid"), f"{where} uuid")
            if self.read_manifest(uuid) is not None:
                detail = f"snapshot {uuid} of this logical date is already complete"
                self.record_outcome(context, status="skipped", node=recorded.get("node"), detail=detail)
                raise AirflowSkipException(detail)
            broken = self._broken(uuid, datetime.fromisoformat(recorded["triggered_at"]))
            if not broken:
                self.log.info("Reusing snapshot %s recorded for this logical date (no second snapshot)", uuid)
                return recorded
            self.log.warning("Recorded snapshot %s is unusable (%s): taking a new one", uuid, broken)
            orphans.append(uuid)
        elif recorded:
            adopted = self._after_unanswered_post(recorded, where)
            if adopted is not None:
                s3.put_bytes(self.bucket, record_key, json.dumps(adopted, indent=2).encode(), "application/json")
                return adopted
            orphans = list(recorded.get("orphans") or [])

        check = None
        if self.check_site:
            check = {
                "site": self.check_site,
                "bucket": self.check_bucket,
                "key": self.check_key,
                "value": ddb.check_key_value(self.cluster, logical_date, secrets.token_hex(8)),
            }
        # What the stores held before this POST (kept from the first try: whatever appeared since
        # is this run's doing); written before the POST, which may never answer.
        before = recorded.get("before") if recorded and not recorded.get("uuid") else None
        intent = {
            "uuid": None,
            "posted_at": dates.now_utc().isoformat(),
            "node": self.nodes[0].label,
            "check": check,
            "before": before if before is not None else self._snapshots_on_nodes(),
            "orphans": sorted(set(orphans)),
            "unanswered": bool(recorded.get("unanswered")) or (bool(recorded) and not recorded.get("uuid")),
            "logical_date": logical_date.isoformat(),
            "dag_id": context["ti"].dag_id,
            "run_id": context["run_id"],
        }
        s3.put_bytes(self.bucket, record_key, json.dumps(intent, indent=2).encode(), "application/json")
        info, node = self._trigger(check)
        recorded = {**intent, "uuid": info.uuid, "node": node, "triggered_at": dates.now_utc().isoformat()}
        s3.put_bytes(self.bucket, record_key, json.dumps(recorded, indent=2).encode(), "application/json")
        self.log.info("Cluster snapshot %s started through %s (status %s)", info.uuid, node, info.status)
        return recorded

    def _snapshots_on_nodes(self) -> dict[str, list[str]] | None:
        """Per node, the UUIDs in its snapshot store (None: no snapshot_dir; [] per node never listed)."""
        if not all(spec.snapshot_dir for spec in self.nodes):
            return None
        found: dict[str, list[str]] = {}
        for spec in self.nodes:
            try:
                found[spec.label] = sorted({f.uuid for f in self.snapshot_folders(spec)})
            except (RemoteCommandError, RemoteTransportError) as exc:  # left out of the comparison
                self.log.warning("node %s: snapshot store not listed (%s)", spec.label, exc)
        return found

    def _after_unanswered_post(self, recorded: dict[str, Any], where: str) -> dict[str, Any] | None:
        """A try before this one wrote its record and posted, but never learnt the UUID: adopt the
        snapshot that appeared since (None: none did and the cluster has quorum: take a new one)."""
        posted = f"the POST /snapshot of {recorded.get('posted_at')}"
        before = recorded.get("before")
        if before is None:
            raise AirflowFailException(
                f"{posted} got no answer (no quorum?): devicedb may still take that snapshot on every node once "
                f"quorum returns, and without snapshot_dir (the nodes' -snapshot_store) this run cannot find it. "
                f"Set snapshot_dir, or delete {where} to take a new snapshot anyway."
            )
        appeared: dict[str, set[str]] = {}
        compared = 0  # nodes listed both before the POST and now
        for spec in self.nodes:
            label = spec.label
            if label not in before:
                continue
            try:
                folders = self.snapshot_folders(spec)
            except (RemoteCommandError, RemoteTransportError) as exc:
                self.log.warning("node %s: snapshot store not listed (%s)", label, exc)
                continue
            compared += 1
            for uuid in ddb.new_snapshots(before[label], folders):
                appeared.setdefault(uuid, set()).add(label)
        if not compared or (not appeared and not self._quorum()):
            raise AirflowException(
                f"{posted} got no answer, and no snapshot has appeared since: the cluster has no quorum yet "
                "(or its stores cannot be listed); the snapshot may still be taken, so none is posted now"
            )
        if len(appeared) == 1:
            (uuid,) = appeared
            self.log.warning(
                "%s got no answer; snapshot %s appeared since on %s: adopted (no second snapshot)",
                posted, uuid, ", ".join(sorted(appeared[uuid])),
            )
            return {**recorded, "uuid": uuid, "triggered_at": dates.now_utc().isoformat(), "adopted": True, "unanswered": True}
        if appeared:
            # which of them the lost POST took cannot be told, nor what each holds of the check key
            self.log.warning("%s got no answer; several snapshots appeared since (%s): all orphans, taking a new one", posted, sorted(appeared))
            recorded["orphans"] = sorted({*(recorded.get("orphans") or []), *appeared})
        else:
            self.log.warning("%s got no answer and no snapshot appeared although the cluster has quorum: taking a new one", posted)
        recorded["unanswered"] = True
        return None

    def _quorum(self) -> bool:
        """A majority of the nodes answers GET /cluster (an entry proposed now would commit)."""
        answering = 0
        for spec in self.nodes:
            with self.devicedb(spec) as hook:
                try:
                    hook.cluster_nodes()
                    answering += 1
                except DevicedbError as exc:
                    self.log.info("%s", exc)
        return answering > len(self.nodes) // 2

    def _broken(self, uuid: str, triggered_at: datetime) -> str:
        """Why a recorded snapshot cannot be reused ('' if it can): failed somewhere, or still
        missing somewhere long after the grace period (that node will never have it)."""
        statuses: dict[str, str] = {}
        for spec in self.nodes:
            with self.devicedb(spec) as hook:
                try:
                    statuses[spec.label] = hook.snapshot_status(uuid).status
                except DevicedbError as exc:
                    self.log.warning("%s", exc)
                    if ddb.status_error_kind(exc.http_status, exc.detail) == ddb.NO_SNAPSHOT_STORE:
                        # no new snapshot would fare better on that node
                        raise AirflowFailException(f"{exc} (node {spec.label} runs without -snapshot_store)") from exc
                    statuses[spec.label] = ddb.UNREACHABLE
        failed = sorted(n for n, s in statuses.items() if s == ddb.FAILED)
        if failed:
            return f"failed on {', '.join(failed)}"
        missing = sorted(n for n, s in statuses.items() if s == ddb.MISSING)
        if missing and dates.now_utc() - triggered_at > self.missing_grace:
            return f"still missing on {', '.join(missing)} {dates.now_utc() - triggered_at} after the trigger"
        return ""

    def _trigger(self, check: dict[str, str] | None) -> tuple[ddb.SnapshotInfo, str]:
        """POST /snapshot on the first node that accepts connections; never on two nodes."""
        errors: list[str] = []
        for spec in self.nodes:
            with self.devicedb(spec) as hook:
                try:
                    if check:
                        hook.ensure_site(check["site"])
                        self._write_check_key(hook, check)
                    return hook.trigger_snapshot(), spec.label
                except DevicedbUnreachable as exc:
                    if not exc.refused:
                        raise  # the request may have reached the node: another node could take a second snapshot
                    errors.append(str(exc))
                    self.log.warning("%s; trying the next node", exc)
        raise AirflowException("no devicedb node accepted the snapshot: " + "; ".join(errors))

    def _write_check_key(self, hook: DevicedbHook, check: dict[str, str]) -> None:
        """Write the check key until every replica applied it (a replica that misses it would fail
        the restore's check on that node)."""

        def write() -> ddb.BatchResult:
            return hook.put_key(check["site"], check["bucket"], check["key"], check["value"])

        def gave_up(state: RetryCallState) -> ddb.BatchResult:
            return state.outcome.result()

        result = Retrying(
            stop=stop_after_attempt(CHECK_KEY_ATTEMPTS),
            wait=CHECK_KEY_WAIT,
            retry=retry_if_result(lambda r: not r.everywhere),
            retry_error_callback=gave_up,
            before_sleep=lambda state: self.log.info(
                "devicedb node %s: check key on %d of %d replicas; writing it again",
                hook.node, state.outcome.result().applied, state.outcome.result().replicas,
            ),
        )(write)
        if not result.everywhere:
            raise AirflowException(
                f"devicedb node {hook.node}: check key {check['key']!r} of site {check['site']!r} reached only "
                f"{result.applied} of {result.replicas} replicas (Quorum {str(result.quorum).lower()}) after "
                f"{CHECK_KEY_ATTEMPTS} writes: no snapshot taken, a node without it would fail the restore's check"
            )


class DevicedbUploadNodeOperator(DevicedbBaseOperator):
    """Upload one node's snapshot tar to ``<prefix>/<cluster>/<uuid>/<node>.tar``, then verify it.

    devicedb cuts a response after its 45 s write timeout, so the tar is first read at the
    network's speed into a file in ``spool_dir`` on the worker (at most ``spool_max_bytes``), checked
    whole (its members, its end-of-archive marker: it comes without Content-Length), and only then
    uploaded. The spool file is removed whatever happens.
    """

    def __init__(
        self,
        *,
        node: DevicedbNodeSpec,
        part_size_mb: int = 16,
        verify_upload: bool = True,
        spool_dir: str | None = None,
        spool_max_bytes: int = 64 * 1024**3,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.node_spec = node
        self.node = node.label
        self.part_size_mb = part_size_mb
        self.verify_upload = verify_upload
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes

    def execute(self, context: Any) -> dict[str, Any]:
        snapshot = self.snapshot_of_run(context)
        uuid = snapshot["uuid"]
        key = ddb.node_tar_key(self.prefix, self.cluster, uuid, self.node)
        s3 = self.s3()
        spool_dir = self.spool_dir or tempfile.gettempdir()
        if not os.path.isdir(spool_dir) or not os.access(spool_dir, os.W_OK):
            raise AirflowFailException(f"spool_dir: value {spool_dir!r} is not a writable folder on this worker")
        prefix = f"devicedb-{task_label(self.cluster)}-{task_label(self.node)}-{uuid}-"
        # NamedTemporaryFile removes the spool file on close, whatever happened before
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=prefix, suffix=".tar") as spool:
            try:
                with self.devicedb(self.node_spec) as hook:
                    got = hook.download_snapshot_tar(uuid, spool, max_bytes=self.spool_max_bytes)
                spool.flush()
            except DevicedbTarTooLarge as exc:
                raise AirflowFailException(str(exc)) from exc
            except OSError as exc:
                raise AirflowException(
                    f"spool_dir {spool_dir!r}: the tar of node {self.node} could not be written there ({exc})"
                ) from exc
            try:
                checked = ddb.check_snapshot_tar(spool)
            except ValueError as exc:
                raise AirflowException(
                    f"devicedb node {self.node}: the tar of {uuid} ({got.size} bytes) is not whole, nothing uploaded: {exc}"
                ) from exc
            self.log.info(
                "devicedb node %s: tar of %s read in %.1fs (%d bytes, members %s)",
                self.node, uuid, got.seconds, got.size, " ".join(checked.members),
            )
            spool.seek(0)
            result = s3.upload_parts(
                self.bucket,
                key,
                iter(lambda: spool.read(MIB), b""),
                part_size=self.part_size_mb * MIB,
                metadata={"devicedb-uuid": uuid, "devicedb-node": self.node, "devicedb-cluster": self.cluster},
            )
        if (result.size, result.sha256) != (got.size, got.sha256):
            raise AirflowException(
                f"devicedb node {self.node}: {got.size} bytes (SHA-256 {got.sha256}) arrived from the node, "
                f"{result.size} (SHA-256 {result.sha256}) were uploaded from the spool"
            )
        if self.verify_upload:
            s3.verify_object(self.bucket, key, size=result.size, sha256=result.sha256)
        self.log.info("s3://%s/%s: %d bytes, SHA-256 %s (%d part(s))", self.bucket, key, result.size, result.sha256, result.parts)
        self.record_outcome(
            context,
            status="done",
            node=self.node,
            produced=[{"id": f"s3://{self.bucket}/{key}", "size": result.size}],
            rows=[
                {
                    "node": self.node,
                    "snapshot": uuid,
                    "bytes": result.size,
                    "sha256": result.sha256[:16] + "...",
                    "verified": "read back" if self.verify_upload else "no",
                }
            ],
        )
        return {
            "node": self.node,
            "host": self.node_spec.host,
            "http_port": self.node_spec.http_port,
            "key": key,
            "size": result.size,
            "sha256": result.sha256,
            "verified": self.verify_upload,
        }


class DevicedbManifestOperator(DevicedbBaseOperator):
    """Write the manifest: the snapshot becomes complete (listed, restorable) only now."""

    def __init__(self, *, upload_task_ids: Sequence[str], **kwargs: Any):
        kwargs.setdefault("task_id", "write_manifest")
        super().__init__(**kwargs)
        self.upload_task_ids = list(upload_task_ids)

    def execute(self, context: Any) -> dict[str, Any]:
        snapshot = self.snapshot_of_run(context)
        uuid = snapshot["uuid"]
        ti = context["ti"]
        artifacts = []
        for task_id in self.upload_task_ids:
            uploaded = ti.xcom_pull(task_ids=task_id)
            if not uploaded:
                raise AirflowException(f"{task_id} recorded no upload: the snapshot {uuid} stays incomplete")
            artifacts.append(
                ddb.NodeArtifact(
                    node=uploaded["node"],
                    host=uploaded["host"],
                    http_port=uploaded["http_port"],
                    key=uploaded["key"],
                    size=uploaded["size"],
                    sha256=uploaded["sha256"],
                )
            )
        membership = self._membership()
        manifest = ddb.build_manifest(
            cluster=self.cluster,
            uuid=uuid,
            logical_date=self.run_date(context),
            created_at=datetime.fromisoformat(snapshot["triggered_at"]),
            artifacts=artifacts,
            check=snapshot.get("check"),
            membership=membership,
            dag_id=ti.dag_id,
            run_id=context["run_id"],
        )
        key = ddb.manifest_key(self.prefix, self.cluster, uuid)
        body = ddb.manifest_json(manifest)
        self.s3().put_bytes(self.bucket, key, body, "application/json")
        # A cleared old run or a backfill snapshots today's data under an old date: say so.
        logical, taken = self.run_date(context), dates.parse_instant(manifest["created_at"])
        late = dates.late_warning(logical, taken, f"snapshot {uuid}")
        if late:
            self.log.warning("%s", late)
        self.record_outcome(
            context,
            status="done",
            node=self.cluster,
            produced=[{"id": f"snapshot {uuid} complete", "size": None}, {"id": f"s3://{self.bucket}/{key}", "size": len(body)}],
            detail=f"{len(artifacts)} node tar(s); logical date {dates.format_instant(logical)}, "
            f"taken at {dates.format_instant(taken) if taken else '-'}",
            warnings=[late] if late else (),
        )
        return {"uuid": uuid, "manifest": key, "total_size": manifest["total_size"]}

    def _membership(self) -> list[str] | None:
        """Node ids as the cluster reports them now (recorded for information; None if unavailable)."""
        for spec in self.nodes:
            with self.devicedb(spec) as hook:
                try:
                    return hook.membership()
                except DevicedbError as exc:
                    self.log.info("membership not recorded: %s", exc)
        return None


class DevicedbCleanupNodeOperator(DevicedbBaseOperator):
    """Delete a node's local ``<snapshot_dir>/snapshot-<uuid>-<nodeID>`` folder once its upload is
    in a manifest, and the run's orphans: snapshots it replaced, or that an unanswered POST took."""

    def __init__(self, *, node: DevicedbNodeSpec, **kwargs: Any):
        super().__init__(**kwargs)
        self.node_spec = node
        self.node = node.label

    def execute(self, context: Any) -> None:
        snapshot = self.snapshot_of_run(context)
        uuid = snapshot["uuid"]
        manifest = self.read_manifest(uuid)
        entry = next((n for n in (manifest or {}).get("nodes", []) if n["node"] == self.node), None)
        if entry is None:
            raise AirflowException(f"node {self.node}: snapshot {uuid} has no verified upload in a manifest; local copy kept")
        store = self.node_spec.snapshot_dir.rstrip("/")
        folders = self.snapshot_folders(self.node_spec)
        node_id = self._node_id()
        mine = ddb.folder_to_remove(folders, uuid, node_id)
        if mine is None:
            # the snapshot completed on this node, so its folder must be there: a wrong
            # snapshot_dir would otherwise "clean up" forever and free nothing
            raise AirflowException(
                f"node {self.node}: no folder snapshot-{uuid}-{node_id or '<nodeID>'} in {store} although the snapshot "
                f"completed there (found {[f.name for f in folders][:10]}): is snapshot_dir the node's -snapshot_store?"
            )
        orphans = set(snapshot.get("orphans") or [])
        before = (snapshot.get("before") or {}).get(self.node)
        if snapshot.get("unanswered") and before is not None:
            # an unanswered POST may have been taken after the snapshot this run kept
            orphans |= set(ddb.new_snapshots(before, folders))
        orphans.discard(uuid)
        doomed = [mine] + [f for f in (ddb.folder_to_remove(folders, o, node_id) for o in sorted(orphans)) if f]
        with self.remote(self.node_spec) as remote:
            for folder in doomed:
                path = f"{store}/{folder.name}"
                remote.run(["rm", "-rf", "--", path], timeout=600).check(f"removing {path}")
        detail = f"removed local snapshot folder {store}/{mine.name}"
        if len(doomed) > 1:
            detail += f"; orphaned snapshot(s) removed: {', '.join(f.uuid for f in doomed[1:])}"
            self.log.warning("node %s: %s", self.node, detail)
        self.record_outcome(context, status="done", node=self.node, detail=detail)

    def _node_id(self) -> str | None:
        """The node's id as the cluster overview gives it (None: use the folder name alone)."""
        with self.devicedb(self.node_spec) as hook:
            try:
                return hook.node_id()
            except DevicedbError as exc:
                self.log.info("node id not known from GET /cluster (%s): going by the folder name", exc)
                return None


class DevicedbRetentionOperator(RetentionOperator, DevicedbBaseOperator):
    """Apply the retention policy to this cluster's snapshots (complete ones, by their manifests),
    each checked again on its fresh listing and manifest just before its delete. Incomplete
    leftovers older than ``incomplete_grace`` (a failed run's tars) go too."""

    def __init__(self, *, incomplete_grace: timedelta = timedelta(days=2), **kwargs: Any):
        kwargs.setdefault("task_id", "retention")
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.incomplete_grace = incomplete_grace

    def list_groups(self, context: Any, as_of: datetime, dry_run: bool) -> list[RetentionGroup]:
        listing = self.s3().list_objects(self.bucket, ddb.cluster_prefix(self.prefix, self.cluster))
        items = [
            ddb.snapshot_backup_item(uuid, objects, self._manifest(uuid, objects), self.cluster)
            for uuid, objects in ddb.group_snapshot_objects(listing, self.prefix, self.cluster).items()
        ]
        if dry_run and not any(i.complete and i.created_at == as_of for i in items):
            # A dry run took no snapshot: plan with the one the real run would make, or it prunes less.
            items.append(planned_backup("(this run's snapshot)", as_of))
        return [RetentionGroup(f"cluster {self.cluster}", items, leftovers_before=as_of - self.incomplete_grace)]

    def _manifest(self, uuid: str, objects: dict[str, Any]) -> dict[str, Any] | None:
        if ddb.manifest_key(self.prefix, self.cluster, uuid) not in objects["keys"]:
            return None
        try:
            return self.read_manifest(uuid)
        except ddb.DevicedbResponseError as exc:
            self.log.warning("snapshot %s: ignoring its manifest: %s", uuid, exc)
            return None

    def _objects(self, uuid: str) -> dict[str, Any] | None:
        listing = self.s3().list_objects(self.bucket, ddb.snapshot_prefix(self.prefix, self.cluster, uuid))
        return ddb.group_snapshot_objects(listing, self.prefix, self.cluster).get(uuid)

    def reread(self, group: RetentionGroup, item: BackupItem) -> BackupItem | None:
        objects = self._objects(item.id)
        if objects is None:
            return None
        return ddb.snapshot_backup_item(item.id, objects, self._manifest(item.id, objects), self.cluster)

    def delete_item(self, group: RetentionGroup, item: BackupItem) -> int:
        s3 = self.s3()
        keys = (self._objects(item.id) or {"keys": []})["keys"]
        manifest = ddb.manifest_key(self.prefix, self.cluster, item.id)
        # The manifest goes first: a half-deleted snapshot is never listed as complete.
        if manifest in keys:
            s3.delete_keys(self.bucket, [manifest])
        s3.delete_keys(self.bucket, [k for k in keys if k != manifest])
        return len(keys)

    def outcome_node(self) -> str:
        return self.cluster

    def result(self, context: Any, run: RetentionRun) -> dict[str, Any]:
        return {"kept": run.kept, "pruned": run.pruned, "stale": run.leftovers, "deleted": list(run.deleted)}
