"""Test-only airflow DAG file: the house DAG shape (new_dag + finish_dag) with tasks that succeed
or fail on demand (PROBE_FAIL=1), to test alerting and the report independently of any kind."""

import os

from airflow.sdk import TaskGroup, task

from airflow_backup_provider.builders.common import finish_dag, new_dag
from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.operators.report import record_outcome

clusters = parse_clusters(
    {
        "defaults": {"alert_emails": ["oncall@example.com", "dba@example.com"], "schedule": None},
        "entries": [
            {
                "kind": "ebs",
                "name": "probe",
                "volume_ids": ["vol-0123456789abcdef1"],
                "retries": int(os.environ.get("PROBE_RETRIES", "0")),
                "retry_delay": "1s",
                "alert_on_retry": True,
            }
        ],
    }
)
entry = clusters.entries[0]
probe = new_dag(entry, summary="A probe DAG for the foundation tests.", nodes=["node-a", "node-b"])

with probe:

    @task(task_id="backup")
    def backup_a(**context):
        record_outcome(context, status="done", node="node-a", produced=[{"id": "snap-a", "size": 8}])

    @task(task_id="backup")
    def backup_b(**context):
        if os.environ.get("PROBE_FAIL") == "1":
            raise RuntimeError("disk on fire")
        record_outcome(context, status="done", node="node-b", produced=[{"id": "snap-b", "size": 16}])

    @task(task_id="later_node")
    def later_node(**context):
        record_outcome(context, status="done", node="node-c", produced=[{"id": "snap-c", "size": 32}])

    @task(task_id="already_done")
    def already_done(**context):
        record_outcome(context, status="skipped", node="node-d", detail="snapshot for this date exists")

    with TaskGroup("node-a"):
        a = backup_a()
    with TaskGroup("node-b"):
        b = backup_b()
    a >> b
    # later nodes go on after a failure (like a rolling backup whose next node does not depend)
    a >> later_node()
    a >> already_done()

finish_dag(probe, entry)
