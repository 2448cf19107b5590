"""A connection id that does not exist: one clear error naming it, from every AWS hook and from the
first task of every DAG (which checks exactly the connections the DAG's tasks use)."""

from __future__ import annotations

import json

import pytest

from airflow_backup_provider.connections import MissingConnectionError, connections_used
from airflow_backup_provider.hooks.ebs import EbsHook
from airflow_backup_provider.hooks.object_store import ObjectStoreHook
from tests.harness import REPO, clusters_file, load_dagbag

MISSING = "aws_nowhere"


@pytest.fixture(autouse=True)
def no_default_credentials(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_an_ebs_call_with_a_missing_connection_names_it(monkeypatch):
    # before: a warning in the log, then botocore's NoCredentialsError at the first call
    hook = EbsHook(aws_conn_id=MISSING, region_name="us-east-1")
    with pytest.raises(MissingConnectionError, match=rf"^aws_conn_id: Airflow connection '{MISSING}' does not exist"):
        hook.find_volumes(volume_ids=["vol-0123456789abcdef0"])


def test_the_object_store_hook_names_a_missing_connection():
    hook = ObjectStoreHook(aws_conn_id=MISSING)
    with pytest.raises(MissingConnectionError, match=f"'{MISSING}'"):
        hook.get_conn()


def test_an_existing_connection_and_none_still_work(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_THERE",
        json.dumps({"conn_type": "aws", "login": "key-id", "password": "secret-key", "extra": {"region_name": "eu-west-1"}}),
    )
    assert EbsHook(aws_conn_id="aws_there").conn_config.region_name == "eu-west-1"
    assert EbsHook(aws_conn_id=None, region_name="us-east-1").conn_config.region_name == "us-east-1"  # the default chain


@pytest.fixture(scope="module")
def example_dags(tmp_path_factory):
    with clusters_file(tmp_path_factory.mktemp("c"), (REPO / "dags" / "clusters.yaml").read_text()):
        bag = load_dagbag()
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_each_dag_checks_the_connections_its_tasks_use(example_dags):
    def backup_dag(kind: str):
        """The entry's backup DAG, never its restore or drill (whatever order the DagBag gives)."""
        return next(d for i, d in sorted(example_dags.items())
                    if i.startswith(f"{kind}_") and not i.endswith(("_restore", "_drill")))

    riak, ebs, cassandra = backup_dag("riak"), backup_dag("ebs"), backup_dag("cassandra")
    gate = "wait_for_other_runs"
    assert {"backup_ssh", "aws_default"} <= set(riak.get_task(gate).connections)
    # an EBS policy names an ssh_conn_id too (a default), but none of its tasks uses it
    assert "backup_ssh" not in ebs.get_task(gate).connections
    assert ebs.get_task(gate).connections["aws_default"] == "aws_conn_id"
    assert {"backup_ssh", "aws_default"} <= set(cassandra.get_task(gate).connections)  # mapped tasks too
    # a drill on the worker (no drill_host) reads S3 and writes locally: no SSH connection needed
    drill = next(d for i, d in example_dags.items() if i.startswith("cassandra_") and i.endswith("_drill"))
    assert "aws_default" in drill.get_task(gate).connections and "backup_ssh" not in drill.get_task(gate).connections
    for dag in example_dags.values():
        wanted = dag.get_task(gate).connections
        assert ("smtp_default" in wanted) == ("mail_report" in dag.task_ids), dag.dag_id


def test_local_and_templated_ids_are_not_connections():
    class Task:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    tasks = [Task(ssh_conn_id="local"), Task(aws_conn_id="{{ params.conn }}"), Task(ssh_conn_id="ssh_a", aws_conn_id=None)]
    assert connections_used(tasks, extra={"smtp_x": "smtp_conn_id"}) == {"smtp_x": "smtp_conn_id", "ssh_a": "ssh_conn_id"}
