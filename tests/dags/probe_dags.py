"""Test-only airflow DAG file: the house DAG shape (new_dag + finish_dag) with tasks that succeed
or fail on demand (PROBE_FAIL=1), to test alerting and the report independently of any kind.

`ebs_probe_mapped` has per-node tasks mapped over node dicts, the way the cassandra (operator,
`map_index_template`) and devicedb (a `label` in the node dict) builders give them."""

import os

from airflow.sdk import BaseOperator, TaskGroup, task

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


mapped = new_dag(entry, suffix="_mapped", summary="Per-node mapped tasks that fail on one node.")


class ProbeNodeOperator(BaseOperator):
    def __init__(self, *, node: dict, **kwargs):
        super().__init__(**kwargs)
        self.node = node

    def execute(self, context):
        if self.node["host"] == "10.0.0.2":
            raise RuntimeError("nodetool snapshot: connection refused")
        record_outcome(context, status="done", node=self.node["host"], produced=[{"id": "snap", "size": 1}])


with mapped:

    @task(task_id="upload")
    def upload(node: dict, **context):
        if node["label"] == "devicedb-b:9090":
            raise RuntimeError("upload: tar truncated")

    ProbeNodeOperator.partial(task_id="snapshot", map_index_template="{{ task.node['host'] }}").expand(
        node=[{"host": "10.0.0.1", "port": 22}, {"host": "10.0.0.2", "port": 22}]
    )
    upload.expand(node=[{"label": "devicedb-a:9090"}, {"label": "devicedb-b:9090"}])

finish_dag(mapped, entry)
