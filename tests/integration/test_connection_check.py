"""A connection the clusters file names but Airflow does not have: the first task fails at once,
naming it, and nothing else runs."""

from __future__ import annotations

import uuid

import pytest

from tests.harness import clusters_file, load_dag, run_dag

pytestmark = pytest.mark.sandbox


def test_a_missing_aws_connection_fails_the_first_task_naming_it(airflow_db, sandbox, tmp_path, mails):
    name = f"c{uuid.uuid4().hex[:8]}"
    entry = {
        "kind": "ebs",
        "name": name,
        "volume_ids": ["vol-0123456789abcdef1"],
        "aws_conn_id": "aws_prod_typo",
        "alert_emails": ["oncall@example.com"],
        "retries": 2,  # a missing connection is not retried: it fails at once
        "retry_delay": "1s",
        "schedule": None,
    }
    with clusters_file(tmp_path, {"entries": [entry]}):
        states = run_dag(load_dag(f"ebs_{name}"))
    assert states["wait_for_other_runs"] == "failed", states
    assert states["volume.snapshot[0]"] == "upstream_failed", states  # no volume was touched
    assert states["report"] == "failed"
    (alert,) = [m for m in mails if m["subject"].startswith("[backup failed]")]
    assert f"ebs_{name}.wait_for_other_runs" in alert["subject"] and "(try 1/3)" in alert["subject"]
    assert "MissingConnectionError: aws_conn_id: Airflow connection &#x27;aws_prod_typo&#x27; does not exist" in alert["body"]
