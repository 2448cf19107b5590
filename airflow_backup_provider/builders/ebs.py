"""The `ebs_<name>` DAG: per volume (mapped), snapshot -> wait -> retention, then the report.

    [find_targets ──>] volume[i]: snapshot ──> wait ──> retention ─────────────────────────> report
                                                  └──> copy_<region> ──> wait_copy_<region> ──> retention_<region>

(one copy branch per `copy_to` region: a region that refuses the copy fails its branch and the
run, while the snapshot and its own region's retention stand.)

(`find_targets` only when volumes are chosen by tags or by instance; listed ids map directly.)

One mapped task group instance per target (volume, or instance for crash-consistent multi-volume
snapshots): a volume that has vanished fails its own group only; the others go on, and the report
fails the run at the end.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, task_group

from airflow_backup_provider.builders.common import finish_dag, new_dag
from airflow_backup_provider.config import EbsPolicy, RiakCluster
from airflow_backup_provider.config.ebs import SnapshotCopy
from airflow_backup_provider.operators.ebs import (
    EbsCopySnapshotsOperator,
    EbsFindTargetsOperator,
    EbsRetentionOperator,
    EbsSnapshotOperator,
)
from airflow_backup_provider.retention import describe_policy
from airflow_backup_provider.sensors.ebs import EbsSnapshotCompletedSensor

DRY_RUN = "{{ params.dry_run }}"


def _targets_text(entry: EbsPolicy) -> list[str]:
    targets = [f"volume {v}" for v in entry.volume_ids]
    if entry.volume_tags:
        targets.append("volumes tagged " + ", ".join(f"{k}={v}" for k, v in entry.volume_tags.items()))
    if entry.instance_id:
        targets.append(f"every volume of instance {entry.instance_id} (crash-consistent)")
    return targets


def add_copy_branch(
    entry: EbsPolicy | RiakCluster,
    copy: SnapshotCopy,
    *,
    after: BaseOperator,
    copier: type[EbsCopySnapshotsOperator],
    copy_args: dict[str, Any],
    retention: type[BaseOperator],
    retention_args: dict[str, Any],
) -> None:
    """One `copy_to` region's branch after `after` (the snapshots completed), for ebs and riak
    entries: copy into the region -> wait for the copies -> that region's retention of them."""
    into = {"aws_conn_id": entry.aws_conn_id, "region_name": copy.region}
    copied = copier(
        task_id=f"copy_{copy.region}", source_region=entry.region, kms_key_id=copy.kms_key_id, dry_run=DRY_RUN,
        **copy_args, **into,
    )
    wait_copies = EbsSnapshotCompletedSensor(
        task_id=f"wait_copy_{copy.region}",
        snapshot_ids=copied.output,
        deferrable=entry.deferrable,
        mode="reschedule",
        poke_interval=entry.poke_interval.total_seconds(),
        timeout=copy.timeout.total_seconds(),
        retries=0,  # a copy in `error` does not heal; the next run makes a new one
        **into,
    )
    kept = retention(
        task_id=f"retention_{copy.region}",
        policy=copy.retention or entry.retention,
        copies=True,
        dry_run=DRY_RUN,
        execution_timeout=timedelta(hours=1),
        **retention_args,
        **into,
    )
    after >> copied >> wait_copies >> kept


def build(entry: EbsPolicy) -> list[DAG]:
    aws = {"aws_conn_id": entry.aws_conn_id, "region_name": entry.region}
    copies = (
        " Each completed snapshot is then copied (once) into "
        + ", ".join(f"`{c.region}`" for c in entry.copy_to)
        + ", tags carried over, where each region applies its own retention to the copies."
        if entry.copy_to
        else ""
    )
    summary = (
        "Snapshots each EBS volume once per logical date (a cleared or re-run day makes no second "
        "snapshot; a volume with a pending snapshot is skipped), waits for completion, then applies "
        f"the retention policy as of the logical date ({describe_policy(entry.retention)}). Only "
        f"snapshots tagged `backup:created-by=airflow-backup-provider` and `backup:name={entry.name}` "
        "are ever deleted; pending ones, the newest completed one and those dated after the run are kept."
        + copies
    )
    dag = new_dag(entry, summary=summary, nodes=_targets_text(entry))
    with dag:
        if entry.volume_tags or entry.instance_id:
            targets = EbsFindTargetsOperator(
                task_id="find_targets",
                volume_ids=entry.volume_ids,
                volume_tags=entry.volume_tags,
                instance_id=entry.instance_id,
                **aws,
            ).output
        else:
            # listed ids need no lookup: a vanished one is reported by its own snapshot task
            targets = list(entry.volume_ids)

        @task_group(group_id="volume")
        def per_target(target):
            snapshot = EbsSnapshotOperator(
                task_id="snapshot",
                target=target,
                name=entry.name,
                tags=entry.tags,
                description=entry.snapshot_description,
                dry_run=DRY_RUN,
                **aws,
            )
            wait = EbsSnapshotCompletedSensor(
                task_id="wait",
                snapshot_ids=snapshot.output["snapshot_ids"],
                deferrable=entry.deferrable,
                mode="reschedule",
                poke_interval=entry.poke_interval.total_seconds(),
                timeout=entry.snapshot_timeout.total_seconds(),
                retries=0,  # a snapshot in `error` does not heal; the next run makes a new one
                **aws,
            )
            retention = EbsRetentionOperator(
                task_id="retention",
                target=target,
                name=entry.name,
                policy=entry.retention,
                listing=snapshot.output["listing"],
                states=wait.output,
                dry_run=DRY_RUN,
                execution_timeout=timedelta(hours=1),
                **aws,
            )
            snapshot >> wait >> retention
            for copy in entry.copy_to:
                add_copy_branch(
                    entry, copy, after=wait,
                    copier=EbsCopySnapshotsOperator,
                    copy_args={"target": target, "name": entry.name, "snapshot_ids": snapshot.output["snapshot_ids"]},
                    retention=EbsRetentionOperator,
                    retention_args={"target": target, "name": entry.name},
                )

        per_target.expand(target=targets)
    finish_dag(dag, entry)
    return [dag]
