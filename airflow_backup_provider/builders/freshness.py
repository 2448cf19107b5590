"""``backup_freshness``: one hourly DAG over the whole clusters file (dags/backup_freshness.py)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from airflow_backup_provider.catalog import Entry, entry_of
from airflow_backup_provider.config import ClustersFile
from airflow_backup_provider.kinds import KINDS
from airflow_backup_provider.names import InvalidName, check_name
from airflow_backup_provider.operators.freshness import BackupFreshnessOperator

DAG_ID = "backup_freshness"


def broken_entries(clusters: ClustersFile) -> list[tuple[Entry, str]]:
    """The entries that no longer validate (so their DAGs are gone), where kind and name still say
    which cluster they are: its backups have stopped, which the on-call must hear about."""
    broken = []
    for error in clusters.errors:
        try:
            name = check_name(error.name)
        except InvalidName:
            continue
        if error.kind in KINDS:
            entry = Entry(kind=error.kind, name=name, dag_id=f"{error.kind}_{name}", max_age=None)
            broken.append((entry, "; ".join(error.problems)))
    return broken


def build_freshness_dag(clusters: ClustersFile, schedule: str | None = "@hourly") -> DAG:
    defaults = clusters.defaults
    entries = [(entry_of(entry), list(entry.alert_emails)) for entry in clusters.entries]
    dag = DAG(
        dag_id=DAG_ID,
        schedule=schedule,
        start_date=defaults.start_date,
        catchup=False,
        max_active_runs=1,
        default_args={"owner": defaults.owner, "retries": 2, "retry_delay": timedelta(minutes=5)},
        tags=["backup", "freshness"],
        description="Mails the on-call when a cluster's last good backup is older than its max_age, once per staleness.",
        doc_md=(
            "### backup_freshness\n\nEvery hour, for each entry of the clusters file "
            f"({clusters.path}): its last good backup (the newest event of its catalog Asset from its backup DAG) "
            "against its `max_age` (default twice the schedule's period). A stale cluster is mailed to its "
            "`alert_emails` once; a new backup clears it. Reads the clusters file and Airflow's metadata, not the "
            "DagBag: a paused DAG, or one that no longer imports, is checked like any other. An entry that no longer "
            "validates (its DAG is gone) is mailed once, to the defaults' `alert_emails`, with its problems."
        ),
    )
    with dag:
        BackupFreshnessOperator(
            task_id="check_freshness",
            entries=entries,
            broken=broken_entries(clusters),
            broken_alert_emails=list(defaults.alert_emails),
            smtp_conn_id=defaults.smtp_conn_id,
            from_email=defaults.alert_from,
        )
    return dag
