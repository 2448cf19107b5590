"""The Cassandra DAGs of the example clusters file: shape, limits, params, and config validation."""

from __future__ import annotations

import pytest

from airflow_backup_provider.config import parse_clusters
from tests.harness import REPO, clusters_file, load_dagbag


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    with clusters_file(tmp_path_factory.mktemp("c"), (REPO / "dags" / "clusters.yaml").read_text()):
        bag = load_dagbag()
    assert not bag.import_errors, bag.import_errors
    return bag


def test_backup_dag_shape(bag):
    dag = bag.dags["cassandra_events"]
    assert dag.max_active_runs == 1
    snapshot, upload, verify = dag.get_task("snapshot"), dag.get_task("upload"), dag.get_task("verify")
    # every node's snapshot before any upload: upload depends on the whole mapped snapshot task
    assert upload.upstream_task_ids == {"snapshot"} and snapshot.downstream_task_ids == {"upload"}
    assert upload.partial_kwargs["max_active_tis_per_dagrun"] == 2
    assert [n.host for n in upload.expand_input.value["node"]] == [
        "cassandra-1.example.internal", "cassandra-2.example.internal", "cassandra-3.example.internal"
    ]
    assert verify.trigger_rule == "all_done"
    assert dag.get_task("cleanup").upstream_task_ids == {"verify"}
    assert dag.get_task("retention").upstream_task_ids == {"verify"}
    assert dag.get_task("report").trigger_rule == "all_done"
    assert {"dry_run", "verify_checksums"} <= set(dag.params)


def test_restore_dag_params(bag):
    dag = bag.dags["cassandra_events_restore"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    params = dag.params
    assert params["restore_folder"] == "/tmp/cassandra_restore"
    assert params["keyspaces"] == [] and params["tables"] == [] and params["hosts"] == []
    assert {"date", "tag", "dry_run"} <= set(params)
    # the form chooses the system keyspaces; by default all but the node-local `system`
    assert params["system_keyspaces"] == "cluster"
    assert params.get_param("system_keyspaces").schema["enum"] == ["all", "cluster", "none"]
    assert dag.get_task("plan").system_keyspaces == "{{ params.system_keyspaces }}"
    assert dag.get_task("next_steps").upstream_task_ids == {"restore"}


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("keyspaces", ["ok", "bad-name"], "keyspaces.1"),
        ("tables", ["shop.orders; drop"], "tables.0"),
        ("nodetool", "nodetool; reboot", "nodetool"),
        ("restore_folder", "/tmp/../etc", "restore_folder"),
        ("sse", "none", "sse"),
        ("bucket", "b$(id)", "bucket"),
        ("kms_key_id", "alias/x; rm -rf /", "kms_key_id"),
    ],
)
def test_bad_cassandra_fields_name_field_and_value(field, value, needle):
    entry = {"kind": "cassandra", "name": "c", "nodes": [{"host": "n1"}], "bucket": "b", field: value}
    parsed = parse_clusters({"entries": [entry]})
    assert not parsed.entries
    text = str(parsed.errors[0])
    assert needle in text and repr(value if not isinstance(value, list) else value[-1 if field == "keyspaces" else 0]) in text


@pytest.mark.parametrize(
    "key",
    [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/backups",
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:alias/team/backups",
    ],
)
def test_every_form_of_kms_key_is_accepted(key):
    entry = {"kind": "cassandra", "name": "c", "nodes": [{"host": "n1"}], "bucket": "b", "kms_key_id": key}
    parsed = parse_clusters({"entries": [entry]})
    assert not parsed.errors and parsed.entries[0].kms_key_id == key
