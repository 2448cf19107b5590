"""A trigger conf key that is no param, in a real run: the first task refuses it, nothing is made."""

from __future__ import annotations

import html

import pytest

from tests.harness import clusters_file, load_dag, run_dag
from tests.integration.test_ebs_dag import entry, new_volume, our_snapshots

pytestmark = pytest.mark.sandbox


def test_a_misspelt_dry_run_is_no_real_run(sandbox, airflow_db, tmp_path, mails):
    ec2 = sandbox.boto3_client("ec2")
    volume = new_volume(ec2)
    with clusters_file(tmp_path, entry("misspelt", volume_ids=[volume], region="us-east-1")):
        dag = load_dag("ebs_misspelt")
        # Airflow's own validation lets {"Dry_Run": true} through (it is no param of the DAG)
        states = run_dag(dag, "2026-11-20", conf={"Dry_Run": True})
        assert states["wait_for_other_runs"] == "failed", states
        assert states["volume.snapshot[0]"] == "upstream_failed", states
        assert our_snapshots(ec2, "misspelt") == []
        failure = next(html.unescape(m["body"]) for m in mails if "wait_for_other_runs" in m["body"])
        assert "trigger conf: 'Dry_Run' (did you mean 'dry_run'?) is not a param of this DAG" in failure, failure
        # the param itself passes the gate, in the same real run path
        mails.clear()
        states = run_dag(dag, "2026-11-21", conf={"dry_run": True})
        assert states["wait_for_other_runs"] == "success" and states["report"] == "success", states
        assert our_snapshots(ec2, "misspelt") == []
