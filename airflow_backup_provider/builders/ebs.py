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

from airflow.sdk import DAG, BaseOperator, Param, task_group

from airflow_backup_provider import names
from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, finish_dag, new_dag, volume_wait_args
from airflow_backup_provider.builders.drill import volume_drill
from airflow_backup_provider.config import EbsPolicy, RiakCluster
from airflow_backup_provider.config.ebs import SnapshotCopy
from airflow_backup_provider.operators.ebs import (
    EbsCopySnapshotsOperator,
    EbsFindTargetsOperator,
    EbsRetentionOperator,
    EbsSnapshotOperator,
)
from airflow_backup_provider.operators.ebs_drill import EbsDrillPlanOperator
from airflow_backup_provider.operators.ebs_restore import (
    EbsCreateRestoreVolumesOperator,
    EbsMountRestoredOperator,
    EbsRestorePlanOperator,
    EbsRestoreRollbackOperator,
    EbsSwapVolumesOperator,
)
from airflow_backup_provider.retention import describe_policy
from airflow_backup_provider.sensors.ebs import EbsSnapshotCompletedSensor, EbsVolumeStateSensor

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
    mounts = {m.volume_id: {"host": m.host, "port": m.port, "path": m.path} for m in entry.mounts}
    drill = volume_drill(entry, EbsDrillPlanOperator, {"mounts": mounts}, f"the EBS volumes of `{entry.name}`")
    return [dag, build_restore(entry), *([drill] if drill else [])]


# ---- the restore ----------------------------------------------------------------------------------

FORM_SNAPSHOT = r"^" + names.SNAPSHOT_ID + FORM_END
FORM_ZONE = r"^(|" + names.ZONE + ")" + FORM_END
FORM_REGION = r"^(|[a-z]{2}(-[a-z]+)+-[0-9]{1,2})" + FORM_END


def restore_params(entry: EbsPolicy | RiakCluster, what: str) -> dict[str, Param]:
    """The form fields both restores share: the date, the confirmation, where the snapshots are."""
    regions = [c.region for c in entry.copy_to]
    return {
        "logical_date": Param(
            "",
            type="string",
            pattern=r"^(|" + FORM_DAY + ")" + FORM_END,
            title="Logical date",
            description="Restore the newest completed snapshot of this logical date (YYYY-MM-DD); empty: the newest.",
        ),
        "source_region": Param(
            "",
            type="string",
            pattern=FORM_REGION,
            title="Source region",
            description="Restore from the snapshots (copies) in this region, e.g. when the first one is gone; "
            f"empty: the entry's own. Copies are kept in: {', '.join(regions) or 'no other region'}.",
        ),
        "confirm": Param(
            "",
            type="string",
            maxLength=200,  # far more than a name: an error quoting it stays readable
            title="Confirm",
            description=f"Type the entry name ({entry.name}) to confirm: {what}",
        ),
    }


def restore_chain(
    entry: EbsPolicy | RiakCluster,
    *,
    part: str = "all",
    stop: BaseOperator | None = None,
    after: list[BaseOperator] | None = None,
    only_mode: str | None = None,
) -> tuple[BaseOperator, BaseOperator, BaseOperator]:
    """create -> wait_available -> [stop] -> swap -> wait_in_use -> mount, and the rollback after them
    all (in the current task group). Returns (wait_available, mount, rollback)."""
    common = {
        "entry_name": entry.name, "part": part, "aws_conn_id": entry.aws_conn_id, "region_name": entry.region,
        "ssh_conn_id": entry.ssh_conn_id, "sudo_user": entry.sudo_user, "dry_run": DRY_RUN,
    }
    waits = volume_wait_args(entry)
    create = EbsCreateRestoreVolumesOperator(task_id="create", only_mode=only_mode, **common)
    available = EbsVolumeStateSensor(task_id="wait_available", volume_ids=create.output, state="available", **waits)
    swap = EbsSwapVolumesOperator(task_id="swap", retries=0, **common)
    in_use = EbsVolumeStateSensor(task_id="wait_in_use", volume_ids=create.output, state="in-use", **waits)
    mount = EbsMountRestoredOperator(task_id="mount", retries=0, **common)
    steps = [create, available, swap, in_use, mount]
    rollback = EbsRestoreRollbackOperator(task_id="rollback", watched_task_ids=[s.task_id for s in steps], **common)
    for upstream in after or []:
        upstream >> create
    create >> available
    if stop is not None:
        available >> stop >> swap
    else:
        available >> swap
    swap >> in_use >> mount >> rollback
    return available, mount, rollback


def build_restore(entry: EbsPolicy) -> DAG:
    mounts = {m.volume_id: {"host": m.host, "port": m.port, "path": m.path} for m in entry.mounts}
    dag = new_dag(
        entry,
        suffix="_restore",
        schedule=None,
        summary=(
            "Restores the entry's volumes from their snapshots (manual runs only): per volume the newest completed "
            "snapshot of `logical_date` (or the given `snapshot_ids`), a new volume with the source's size (or "
            "`size_gib`), type, IOPS/throughput, encryption, key and tags, tagged `backup:restored-from` and "
            "`backup:restore-run` (a re-run makes no second one). `create` leaves them beside the old ones; "
            "`replace` unmounts the mount point (refused when busy), detaches the current volume only once the "
            "new one is available (it is never deleted: tagged `backup:replaced-by`), attaches the new one at "
            "the same device and mounts it after checking its filesystem UUID. On failure the original goes back "
            "and only this run's volumes are deleted."
        ),
        nodes=[f"volume {v}" for v in entry.volume_ids] + [f"{m.volume_id} mounted at {m.host}:{m.path}" for m in entry.mounts],
        params={
            **restore_params(entry, "replace mode detaches the volumes in use and puts the restored ones in their place."),
            "mode": Param(
                "create",
                type="string",
                enum=["create", "replace"],
                title="Mode",
                description="create: new volumes beside the old ones; replace: each new volume in place of the current one, "
                "at its device and mount point (the old one is detached, tagged backup:replaced-by, never deleted).",
            ),
            "snapshot_ids": Param(
                [], type="array", items={"type": "string", "pattern": FORM_SNAPSHOT}, title="Snapshot ids",
                description="Restore exactly these snapshots (one per volume) instead of a date's.",
            ),
            "volumes": Param(
                [], type="array", items={"type": "string", "pattern": r"^vol-[0-9a-f]{8,17}" + FORM_END},
                title="Volumes", description="Restore only these volumes (the snapshots' source volume ids); empty: all.",
            ),
            "availability_zone": Param(
                "", type="string", pattern=FORM_ZONE, title="Availability zone",
                description="Where the new volumes go; empty: the original volume's zone.",
            ),
            "size_gib": Param(
                0, type="integer", minimum=0, maximum=65536, title="Size (GiB)",
                description="A larger size for the new volumes; 0: the source's.",
            ),
        },
        extra_tags=["restore"],
    )
    with dag:
        plan = EbsRestorePlanOperator(
            entry_name=entry.name, mounts=mounts, aws_conn_id=entry.aws_conn_id, region_name=entry.region,
            ssh_conn_id=entry.ssh_conn_id, sudo_user=entry.sudo_user,
        )
        restore_chain(entry, after=[plan])
    finish_dag(dag, entry)
    return dag
