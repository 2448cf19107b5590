"""Test-only DAG file (airflow dag): the house DAG shape with tasks that succeed or fail on demand."""

import os

from airflow.sdk import task

from airflow_backup_provider.builders.common import add_report, new_dag
from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.operators.report import record_outcome

clusters = parse_clusters(
    {
        "defaults": {
            "alert_emails": ["oncall@example.com"],
            "retries": 0,
            "schedule": None,
        },
        "entries": [{"kind": "ebs", "name": "probe", "volume_ids": ["vol-1"], "retries": int(os.environ.get("PROBE_RETRIES", "0")), "retry_delay": "1s", "alert_on_retry": True}],
    }
)
entry = clusters.entries[0]
probe = new_dag(entry, summary="A probe DAG for the foundation tests.", nodes=["node-a", "node-b"])

with probe:

    @task(task_id="backup_node_a")
    def backup_node_a(**context):
        record_outcome(context, status="done", node="node-a", produced=[{"id": "snap-a", "size": 8}])

    @task(task_id="backup_node_b")
    def backup_node_b(**context):
        if os.environ.get("PROBE_FAIL") == "1":
            raise RuntimeError("disk on fire")
        record_outcome(context, status="done", node="node-b", produced=[{"id": "snap-b", "size": 16}])

    @task(task_id="after_b")
    def after_b(**context):
        record_outcome(context, status="skipped", node="node-c", detail="already had one")

    backup_node_a() >> backup_node_b() >> after_b()

add_report(probe, entry)
