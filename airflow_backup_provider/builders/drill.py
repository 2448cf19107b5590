"""`<kind>_<name>_drill` DAGs: the restore drill of an entry, on its `drill_schedule` (null: none).

Every drill DAG is: the turn gate, ``drill`` (restore into the scratch folder and check),
``cleanup_scratch`` (``all_done``: runs whatever the drill did), then the report (:func:`finish_dag`),
which fails the run and alerts when the drill failed. A drill that reads only S3 and writes only
to its scratch folder takes no turn of the cluster: it never blocks a backup.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param

from airflow_backup_provider.builders.common import FORM_DAY, FORM_END, finish_dag, new_dag
from airflow_backup_provider.config import BupHost, CassandraCluster, DevicedbCluster
from airflow_backup_provider.config.common import EntryBase
from airflow_backup_provider.operators.drill import (
    CHECK_TASK_ID,
    BupDrillOperator,
    BupS3CopyDrillOperator,
    CassandraDrillOperator,
    DevicedbDrillOperator,
    DrillCleanupOperator,
)
from airflow_backup_provider.stores.drill import DRILL_SUFFIX

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
        return DevicedbDrillOperator(**{**common, **drill_args(entry, ports)}, **kwargs)

    return drill_dag(
        entry,
        summary=(
            f"Restore drill of devicedb cluster `{entry.name}`: downloads every node's tar of the newest complete "
            "snapshot (or the one in the form), checks its size and SHA-256 against the manifest, then reads it as "
            "the restore would extract it: plain LevelDB file names only, a `CURRENT` and a `MANIFEST-*`, every "
            "member whole and the end-of-archive marker there. No node is touched."
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
