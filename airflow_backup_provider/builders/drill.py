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
from airflow_backup_provider.config import CassandraCluster, DevicedbCluster
from airflow_backup_provider.config.common import EntryBase
from airflow_backup_provider.operators.drill import (
    CHECK_TASK_ID,
    CassandraDrillOperator,
    DevicedbDrillOperator,
    DrillCleanupOperator,
)
from airflow_backup_provider.stores.drill import DRILL_SUFFIX


def drill_args(entry: EntryBase) -> dict[str, Any]:
    """Where the drill writes: the entry's drill folder on its drill host (the worker by default)."""
    return {
        "drill_folder": entry.drill_folder,
        "drill_host": entry.drill_host,
        "ssh_conn_id": entry.ssh_conn_id if entry.drill_host else "local",
    }


def drill_dag(entry: EntryBase, *, summary: str, backup_param: Param, make_check: Any) -> DAG | None:
    """The drill DAG of `entry`, or None when its drill_schedule is null (no drill)."""
    if entry.drill_schedule is None:
        return None
    where = f"{entry.drill_host or 'the Airflow worker'}:{entry.drill_folder}/<dag id>/<run>"
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
        check = make_check(task_id=CHECK_TASK_ID, backup="{{ params.backup }}", retries=0)
        cleanup = DrillCleanupOperator(
            drill_folder=entry.drill_folder,
            drill_host=entry.drill_host,
            ssh_conn_id=drill_args(entry)["ssh_conn_id"],
        )
        check >> cleanup
    finish_dag(dag, entry)
    return dag


def cassandra_drill(entry: CassandraCluster, common: dict[str, Any]) -> DAG | None:
    hosts = [n.host for n in entry.node_specs()]

    def make_check(**kwargs: Any) -> CassandraDrillOperator:
        return CassandraDrillOperator(hosts=hosts, threads=entry.upload_threads, **{**common, **drill_args(entry)}, **kwargs)

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
    )


def devicedb_drill(entry: DevicedbCluster, common: dict[str, Any], snapshot_form: str) -> DAG | None:
    """`snapshot_form`: the restore form's pattern of a snapshot (a UUID, a date, or empty)."""

    def make_check(**kwargs: Any) -> DevicedbDrillOperator:
        return DevicedbDrillOperator(**{**common, **drill_args(entry)}, **kwargs)

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
    )
