"""`<kind>_<name>_drill` DAGs: the restore drill of an entry, on its `drill_schedule` (null: none).

Every drill DAG is: the turn gate, ``drill`` (restore into the scratch folder and check),
``cleanup_scratch`` (``all_done``: runs whatever the drill did), then the report (:func:`finish_dag`),
which fails the run and alerts when the drill failed. A drill that reads only S3 and writes only
to its scratch folder takes no turn of the cluster: it never blocks a backup.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param

from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, finish_dag, new_dag, volume_wait_args
from airflow_backup_provider.config import BupHost, CassandraCluster, DevicedbCluster, EbsPolicy, RiakCluster
from airflow_backup_provider.config.common import EntryBase
from airflow_backup_provider.operators.drill import (
    CHECK_TASK_ID,
    CLEANUP_TASK_ID,
    BupDrillOperator,
    BupS3CopyDrillOperator,
    CassandraDrillOperator,
    DevicedbDrillOperator,
    DrillCleanupOperator,
)
from airflow_backup_provider.operators.ebs_drill import (
    EbsDrillAttachOperator,
    EbsDrillCheckOperator,
    EbsDrillCleanupOperator,
    drill_plan_form,
)
from airflow_backup_provider.operators.ebs_restore import PLAN_TASK_ID, EbsCreateRestoreVolumesOperator
from airflow_backup_provider.sensors.ebs import EbsVolumeStateSensor
from airflow_backup_provider.stores.drill import DRILL_SUFFIX
from airflow_backup_provider.stores.ebs import TAG_DRILL_RUN, TAG_LAST_DRILL

S3_COPY_TASK_ID = "drill_s3_copy"


def drill_args(entry: EntryBase, ports: dict[str, int | None] | None = None) -> dict[str, Any]:
    """Where the drill writes: the entry's drill folder on its drill host (the worker by default);
    `ports`: the SSH port of each node, for a drill host that is one (else the connection's)."""
    return {
        "drill_folder": entry.drill_folder,
        "drill_host": entry.drill_host,
        "drill_port": (ports or {}).get(entry.drill_host or ""),
        "ssh_conn_id": entry.ssh_conn_id if entry.drill_host else "local",
    }


def drill_turn(entry: EntryBase, touches_nodes: bool) -> list[str]:
    """The DAGs a backup DAG shares its turn with: its drill, when that drill touches the
    cluster's nodes (a drill that reads only S3 never blocks a backup)."""
    return [entry.dag_id(DRILL_SUFFIX)] if touches_nodes and entry.drill_schedule is not None else []


def drill_host_is_a_node(entry: EntryBase, hosts: list[str]) -> bool:
    return entry.drill_host is not None and entry.drill_host in hosts


def drill_dag(
    entry: EntryBase,
    *,
    summary: str,
    backup_param: Param,
    make_check: Any,
    touches_nodes: bool,
    extra_checks: Any = None,
    scratch_on: dict[str, Any] | None = None,
    ports: dict[str, int | None] | None = None,
) -> DAG | None:
    """The drill DAG of `entry`, or None when its drill_schedule is null (no drill).

    `make_check(**kwargs)` builds the ``drill`` task; `extra_checks()` more check tasks (they run
    beside it, before the cleanup); `scratch_on`: where the scratch folder is when not on the
    entry's drill host (``drill_host``, ``drill_port``, ``ssh_conn_id``); `touches_nodes`: the
    drill works on one of the cluster's machines, so it takes the backup DAG's turn."""
    if entry.drill_schedule is None:
        return None
    scratch = scratch_on or {k: v for k, v in drill_args(entry, ports).items() if k != "drill_folder"}
    where = f"{scratch['drill_host'] or 'the Airflow worker'}:{entry.drill_folder}/<dag id>/<run>"
    dag = new_dag(
        entry,
        suffix=DRILL_SUFFIX,
        schedule=entry.drill_schedule,
        summary=summary + f" Writes only to the scratch folder {where}, removed at the end whatever happened; "
        "the verdict goes to the report and to `<manifest>.drill.json` beside the backup's manifest.",
        params={"backup": backup_param},
        extra_tags=["drill"],
    )
    with dag:
        checks = [make_check(task_id=CHECK_TASK_ID, backup="{{ params.backup }}", retries=0)]
        checks += list(extra_checks() if extra_checks else [])
        cleanup = DrillCleanupOperator(drill_folder=entry.drill_folder, **scratch)
        checks >> cleanup
    finish_dag(dag, entry, shares_turn_with=[entry.dag_id()] if touches_nodes else [])
    return dag


def cassandra_drill(entry: CassandraCluster, common: dict[str, Any]) -> DAG | None:
    hosts = [n.host for n in entry.node_specs()]
    ports = {n.host: n.port for n in entry.node_specs()}

    def make_check(**kwargs: Any) -> CassandraDrillOperator:
        return CassandraDrillOperator(hosts=hosts, threads=entry.upload_threads, **{**common, **drill_args(entry, ports)}, **kwargs)

    return drill_dag(
        entry,
        summary=(
            f"Restore drill of Cassandra cluster `{entry.name}`: downloads every node's files of the newest complete "
            "backup day (or the day in the form) as the restore lays them out (`<host>/<keyspace>/<table dir>/`, "
            "index sub-folders), checks each file's size and SHA-256 against the node's manifest and the folders "
            "against the restore's layout. No node is touched."
        ),
        backup_param=Param(
            "",
            type="string",
            pattern=r"^(|[0-9]{8}|" + FORM_DAY + ")" + FORM_END,
            maxLength=10,
            title="Backup day",
            description="The day to drill, YYYY-MM-DD or YYYYMMDD; empty: the newest day every node has a manifest in.",
        ),
        make_check=make_check,
        touches_nodes=drill_host_is_a_node(entry, hosts),
        ports=ports,
    )


def devicedb_drill(entry: DevicedbCluster, common: dict[str, Any], snapshot_form: str) -> DAG | None:
    """`snapshot_form`: the restore form's pattern of a snapshot (a UUID, a date, or empty)."""

    ports: dict[str, int | None] = {n.host: n.port for n in entry.nodes}

    def make_check(**kwargs: Any) -> DevicedbDrillOperator:
        return DevicedbDrillOperator(
            serve_command=entry.drill_serve_command, start_timeout=entry.start_timeout.total_seconds(),
            **{**common, **drill_args(entry, ports)}, **kwargs,
        )

    scratch_node = ""
    if entry.drill_serve_command:
        scratch_node = (
            f" Then on {entry.drill_host} it extracts one node's store into the scratch folder, starts a single-node "
            f"scratch devicedb on it (`{' '.join(entry.drill_serve_command)} <config>`: its own free port and folders, "
            "no peers) and reads the check key back against the value the manifest recorded; the node is stopped "
            "whatever happened."
        )
    return drill_dag(
        entry,
        summary=(
            f"Restore drill of devicedb cluster `{entry.name}`: downloads every node's tar of the newest complete "
            "snapshot (or the one in the form), checks its size and SHA-256 against the manifest, then reads it as "
            "the restore would extract it: plain LevelDB file names only, a `CURRENT` and a `MANIFEST-*`, every "
            "member whole and the end-of-archive marker there." + scratch_node + " No live node's store or port is touched."
        ),
        backup_param=Param(
            "",
            type="string",
            pattern=snapshot_form,
            title="Snapshot",
            description="A snapshot UUID, or a date YYYY-MM-DD meaning its newest complete snapshot; empty: the newest.",
        ),
        make_check=make_check,
        touches_nodes=drill_host_is_a_node(entry, [n.host for n in entry.nodes]),
        ports=ports,
    )


def bup_drill(entry: BupHost, server_args: dict[str, Any], s3_prefix: str | None, save_form: str) -> DAG | None:
    """`server_args`: the backup server's operator arguments (the drill restores there);
    `s3_prefix`: the S3 copy's prefix when the entry syncs one (its objects are drilled too)."""

    def make_check(**kwargs: Any) -> BupDrillOperator:
        return BupDrillOperator(
            branch=entry.backup_set, drill_folder=entry.drill_folder, deferrable=entry.deferrable, **server_args, **kwargs
        )

    def s3_copy_check() -> list[BupS3CopyDrillOperator]:
        sync = entry.s3_sync
        if sync is None or s3_prefix is None:
            return []
        return [
            BupS3CopyDrillOperator(
                task_id=S3_COPY_TASK_ID,
                bucket=sync.bucket,
                prefix=s3_prefix,
                aws_conn_id=entry.aws_conn_id,
                sse=sync.sse,
                kms_key_id=sync.kms_key_id,
                sample=sync.drill_sample,
                threads=min(sync.concurrency, 16),
                drill_folder=entry.drill_folder,
                retries=0,
            )
        ]

    copy = ""
    if entry.s3_sync is not None:
        sample = "every object" if entry.s3_sync.drill_sample is None else f"{entry.s3_sync.drill_sample} objects"
        copy = (f" The S3 copy `s3://{entry.s3_sync.bucket}/{s3_prefix}/` is checked against its sync manifest: every "
                f"object's size, and the SHA-256 of {sample} read back.")
    return drill_dag(
        entry,
        summary=(
            f"Restore drill of the bup backup set `{entry.backup_set}`: on the backup server {entry.server.host}, restores "
            "the newest save (or the one in the form) into a scratch folder and compares every path with what the save "
            "recorded (`bup ls -l -s`: type, mode, size, and the git id of the content), then `bup fsck` verifies the "
            "packs." + copy
        ),
        backup_param=Param(
            "", type="string", pattern=save_form, title="Save",
            description="empty or latest: the newest save; a day YYYY-MM-DD (its newest save) or a save name YYYY-MM-DD-HHMMSS.",
        ),
        make_check=make_check,
        touches_nodes=True,  # it restores on the backup server, from the repository the backup writes
        extra_checks=s3_copy_check,
        scratch_on={"drill_host": server_args["host"], "drill_port": server_args["port"], "ssh_conn_id": server_args["ssh_conn_id"] or "local"},
    )


def volume_drill(entry: EbsPolicy | RiakCluster, plan_class: type, plan_args: dict[str, Any], what: str) -> DAG | None:
    """The drill DAG of an ebs or riak entry (None without drill_schedule or drill_instance_id):
    plan -> create -> wait_available -> attach -> wait_in_use -> drill -> cleanup_scratch (all_done)
    -> report. It reads snapshots and works on the drill instance only: it takes no turn of the cluster."""
    if entry.drill_schedule is None or entry.drill_instance_id is None or entry.drill_host is None:
        return None
    check = " ".join(entry.drill_check) if entry.drill_check else "mount read-only and `ls -la`"
    dag = new_dag(
        entry,
        suffix=DRILL_SUFFIX,
        schedule=entry.drill_schedule,
        summary=(
            f"Restore drill of {what}: a scratch volume from the newest completed snapshot of each volume (or the "
            f"form's), in {entry.drill_availability_zone or 'the source volume’s zone'}, tagged `{TAG_DRILL_RUN}`, "
            f"attached to the drill instance {entry.drill_instance_id} ({entry.drill_host}, never a live node); its "
            f"device found by volume id, its filesystem UUID checked, then the check ({check}) under "
            f"{entry.drill_folder}/<dag id>/<run>. Cleanup (whatever happened) unmounts, detaches and deletes every "
            f"volume of the run's drill tag and the scratch folder. The verdict goes to the report and to the "
            f"snapshot's `{TAG_LAST_DRILL}` tag."
        ),
        params={"backup": Param(
            "", type="string", pattern=drill_plan_form(entry.kind), title="Backup",
            description="empty: each volume's newest completed snapshot; a day YYYY-MM-DD: its snapshots"
            + ("; or snapshot ids, comma-separated." if entry.kind == "ebs" else "."),
        )},
        extra_tags=["drill"],
    )
    common = {
        "entry_name": entry.name, "aws_conn_id": entry.aws_conn_id, "region_name": entry.region,
        "ssh_conn_id": entry.ssh_conn_id, "sudo_user": entry.sudo_user,
    }
    on_drill_host = {
        "drill_folder": entry.drill_folder, "drill_host": entry.drill_host, "drill_instance_id": entry.drill_instance_id,
    }
    waits = volume_wait_args(entry)
    with dag:
        plan = plan_class(
            task_id=PLAN_TASK_ID, drill_instance_id=entry.drill_instance_id, drill_zone=entry.drill_availability_zone,
            **common, **plan_args,
        )
        create = EbsCreateRestoreVolumesOperator(task_id="create", **common)
        available = EbsVolumeStateSensor(task_id="wait_available", volume_ids=create.output, state="available", **waits)
        attach = EbsDrillAttachOperator(task_id="attach", retries=0, **common)
        in_use = EbsVolumeStateSensor(task_id="wait_in_use", volume_ids=create.output, state="in-use", **waits)
        check = EbsDrillCheckOperator(task_id=CHECK_TASK_ID, check=entry.drill_check, retries=0, **common, **on_drill_host)
        cleanup = EbsDrillCleanupOperator(task_id=CLEANUP_TASK_ID, **common, **on_drill_host)
        plan >> create >> available >> attach >> in_use >> check >> cleanup
    finish_dag(dag, entry)
    return dag
