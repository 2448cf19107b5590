"""`devicedb_<name>` (cluster snapshot to S3) and `devicedb_<name>_restore` (put the cluster back)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param

from airflow_backup_provider import names
from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, finish_dag, new_dag
from airflow_backup_provider.builders.drill import devicedb_drill, drill_host_is_a_node, drill_turn
from airflow_backup_provider.config import DevicedbCluster
from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.operators.devicedb import (
    DevicedbCleanupNodeOperator,
    DevicedbManifestOperator,
    DevicedbRetentionOperator,
    DevicedbTriggerSnapshotOperator,
    DevicedbUploadNodeOperator,
    task_label,
)
from airflow_backup_provider.operators.devicedb_restore import (
    DevicedbEnsureStartedOperator,
    DevicedbFinalizeRestoreOperator,
    DevicedbResolveSnapshotOperator,
    DevicedbRestoreNodeOperator,
    DevicedbRollbackOperator,
)
from airflow_backup_provider.sensors.devicedb import (
    DevicedbNodesUpSensor,
    DevicedbSnapshotSensor,
    DevicedbVerifyRestoreSensor,
)
from airflow_backup_provider.stores.devicedb import node_labels

# The restore form's snapshot: empty (refused by the restore's first task, which says what to
# type), a UUID, or a day YYYY-MM-DD.
SNAPSHOT_FORM = r"^(|" + names.UUID + "|" + FORM_DAY + ")" + FORM_END


def node_specs(entry: DevicedbCluster) -> list[DevicedbNodeSpec]:
    labels = node_labels([(n.host, n.http_port) for n in entry.nodes])
    return [
        DevicedbNodeSpec(
            label=label,
            host=node.host,
            ssh_port=node.port,
            http_port=node.http_port,
            http_host=node.http_host,
            store_dir=entry.node_store_dir(node),
            snapshot_dir=entry.node_snapshot_dir(node),
            transfer_dir=entry.transfer_dir,
        )
        for label, node in zip(labels, entry.nodes, strict=True)
    ]


def _common(entry: DevicedbCluster, specs: list[DevicedbNodeSpec]) -> dict[str, Any]:
    return {
        "cluster": entry.name,
        "nodes": specs,
        "bucket": entry.bucket,
        "prefix": entry.prefix,
        "aws_conn_id": entry.aws_conn_id,
        "ssh_conn_id": entry.ssh_conn_id,
        "http_timeout": entry.http_timeout.total_seconds(),
        "ssh_tunnel": entry.ssh_tunnel,
        "sudo_user": entry.sudo_user,
        "sse": entry.sse,
        "kms_key_id": entry.kms_key_id,
    }


def _sensor_args(entry: DevicedbCluster, specs: list[DevicedbNodeSpec]) -> dict[str, Any]:
    return {
        "nodes": specs,
        "http_timeout": entry.http_timeout.total_seconds(),
        "ssh_tunnel": entry.ssh_tunnel,
        "ssh_conn_id": entry.ssh_conn_id,
        "poke_interval": entry.poke_interval.total_seconds(),
    }


def build_backup(entry: DevicedbCluster) -> DAG:
    specs = node_specs(entry)
    where = f"s3://{entry.bucket}/{entry.prefix}/{entry.name}/<uuid>/"
    dag = new_dag(
        entry,
        summary=(
            "Takes one consistent devicedb cluster snapshot (`POST /snapshot` on the first node that "
            "answers; the UUID is recorded so a retry never takes a second one), waits until every node "
            f"reports it `completed`, reads each node's tar into a spool file on the worker (at the network's "
            f"speed; members and end-of-archive checked), uploads it to `{where}<node>.tar` (multipart, SHA-256, "
            "read back), then writes `manifest.json`: only then is the snapshot complete. Retention "
            "runs over complete snapshots"
            + (", and each node's local snapshot folder is removed after its verified upload." if entry.cleanup_local_snapshots else ".")
        ),
        nodes=[f"{s.label} (http {s.http_port})" for s in specs],
    )
    common = _common(entry, specs)
    with dag:
        trigger = DevicedbTriggerSnapshotOperator(
            check_site=entry.check_site,
            check_bucket=entry.check_bucket,
            check_key=entry.check_key,
            missing_grace=entry.missing_grace.total_seconds(),
            **common,
        )
        wait = DevicedbSnapshotSensor(
            missing_grace=entry.missing_grace.total_seconds(),
            timeout=entry.gate_timeout.total_seconds(),
            deferrable=entry.deferrable,
            **_sensor_args(entry, specs),
        )
        uploads = [
            DevicedbUploadNodeOperator(
                task_id=f"upload_{task_label(spec.label)}",
                node=spec,
                part_size_mb=entry.part_size_mb,
                verify_upload=entry.verify_upload,
                spool_dir=entry.spool_dir,
                spool_max_bytes=entry.spool_max_bytes,
                **common,
            )
            for spec in specs
        ]
        manifest = DevicedbManifestOperator(upload_task_ids=[u.task_id for u in uploads], **common)
        retention = DevicedbRetentionOperator(policy=entry.retention, **common)
        trigger >> wait >> uploads >> manifest >> retention
        if entry.cleanup_local_snapshots:
            for spec in specs:
                manifest >> DevicedbCleanupNodeOperator(
                    task_id=f"cleanup_{task_label(spec.label)}", node=spec, **common
                )
    finish_dag(dag, entry, shares_turn_with=drill_turn(entry, drill_host_is_a_node(entry, [s.host for s in specs])))
    return dag


def _service_task(entry: DevicedbCluster, spec: DevicedbNodeSpec, action: str, **kwargs: Any):
    """The generic service operators: the file's command, verified by its status command."""
    from airflow_backup_provider.operators.service import ServiceStartOperator, ServiceStopOperator

    operator, command = {
        "stop": (ServiceStopOperator, entry.service_stop_command),
        "start": (ServiceStartOperator, entry.service_start_command),
    }[action]
    return operator(
        task_id=f"{action}_{task_label(spec.label)}",
        command=command,
        verify_command=entry.service_status_command,
        verify_expect=[entry.service_running_output],
        host=spec.host,
        port=spec.ssh_port,
        node=spec.label,
        ssh_conn_id=entry.ssh_conn_id,
        sudo_user=entry.sudo_user,
        **kwargs,
    )


def build_restore(entry: DevicedbCluster) -> DAG:
    specs = node_specs(entry)
    dag = new_dag(
        entry,
        suffix="_restore",
        summary=(
            "Puts the whole cluster back to one snapshot (manual runs only): checks the params (`snapshot`: a UUID, "
            "or a date meaning its newest complete snapshot; `confirm`: the cluster name), stops every "
            "node, renames each live store aside (never deleted before verification), extracts that "
            "node's tar (size and SHA-256 checked against the manifest) into a new store, starts the "
            "nodes, and verifies that every node reports the same membership and that the key recorded "
            "at backup time reads back. On any failure the old stores are put back, the nodes started, "
            "and an alert is sent."
        ),
        nodes=[s.label for s in specs],
        schedule=None,
        params={
            "snapshot": Param(
                "",
                type="string",
                pattern=SNAPSHOT_FORM,
                title="Snapshot",
                description="The snapshot UUID, or a date YYYY-MM-DD meaning the newest complete snapshot of that logical date.",
            ),
            "confirm": Param(
                "",
                type="string",
                maxLength=200,  # far more than a cluster name: an error quoting it stays readable
                title="Confirm",
                description=f"Type the cluster name ({entry.name}) to confirm: every node is stopped and every store replaced.",
            ),
        },
        extra_tags=["restore"],
    )
    common = _common(entry, specs)
    with dag:
        resolve = DevicedbResolveSnapshotOperator(**common)
        stops = {s.label: _service_task(entry, s, "stop") for s in specs}
        restores = [
            DevicedbRestoreNodeOperator(
                task_id=f"restore_{task_label(s.label)}",
                node=s,
                status_command=entry.service_status_command,
                deferrable=entry.deferrable,
                **common,
            )
            for s in specs
        ]
        # Only once every store is restored; whatever fails, rollback then ensure_started start
        # every node this run stopped.
        starts = {
            s.label: _service_task(
                entry, s, "start", trigger_rule="all_success", only_after=stops[s.label].task_id
            )
            for s in specs
        }
        wait_up = DevicedbNodesUpSensor(
            task_id="wait_for_nodes",
            timeout=entry.start_timeout.total_seconds(),
            **_sensor_args(entry, specs),
        )
        verify = DevicedbVerifyRestoreSensor(
            membership_check=entry.membership_check,
            timeout=entry.start_timeout.total_seconds(),
            **_sensor_args(entry, specs),
        )
        finalize = DevicedbFinalizeRestoreOperator(
            keep_old_stores=entry.keep_old_stores, restore_task_ids=[r.task_id for r in restores],
            deferrable=entry.deferrable, **common,
        )
        watched = [r.task_id for r in restores] + [t.task_id for t in starts.values()] + [wait_up.task_id, verify.task_id]
        rollback = DevicedbRollbackOperator(
            stop_command=entry.service_stop_command,
            status_command=entry.service_status_command,
            running_output=entry.service_running_output,
            watched_task_ids=watched,
            alert_emails=entry.alert_emails,
            smtp_conn_id=entry.smtp_conn_id,
            from_email=entry.alert_from,
            **common,
        )
        ensure_started = DevicedbEnsureStartedOperator(
            start_command=entry.service_start_command,
            status_command=entry.service_status_command,
            running_output=entry.service_running_output,
            stop_task_ids={label: t.task_id for label, t in stops.items()},
            start_task_ids={label: t.task_id for label, t in starts.items()},
            **common,
        )
        resolve >> list(stops.values())
        for stop in stops.values():
            stop >> restores
        for start in starts.values():
            restores >> start
            start >> wait_up
        wait_up >> verify >> finalize
        [*restores, *starts.values(), wait_up, verify] >> rollback
        [rollback, finalize, *stops.values()] >> ensure_started
    finish_dag(dag, entry)
    return dag


def build(entry: DevicedbCluster) -> list[DAG]:
    drill = devicedb_drill(entry, _common(entry, node_specs(entry)), SNAPSHOT_FORM)
    return [build_backup(entry), build_restore(entry), *([drill] if drill else [])]
