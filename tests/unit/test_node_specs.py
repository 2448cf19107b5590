"""Builders hand typed node specs to operators: fields checked once by the clusters file, folders
resolved once by the entry; the DAGs still serialize for the scheduler, and a trigger's specs
survive the triggerer's round trip."""

from __future__ import annotations

import json

from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

from airflow_backup_provider.config import parse_clusters
from airflow_backup_provider.config.cassandra import CassandraNodeSpec
from airflow_backup_provider.config.devicedb import DevicedbNodeSpec
from airflow_backup_provider.factory import build_entry
from airflow_backup_provider.triggers.devicedb import DevicedbSnapshotTrigger

CASSANDRA = {
    "kind": "cassandra",
    "name": "c1",
    "bucket": "b",
    "data_dir": "/data",
    "nodes": [{"host": "10.0.0.1"}, {"host": "10.0.0.2", "port": 2222, "data_dir": "/disk2/data", "commitlog_dir": "/disk2/cl"}],
}
DEVICEDB = {
    "kind": "devicedb",
    "name": "d1",
    "bucket": "b",
    "snapshot_dir": "/snaps",
    "nodes": [{"host": "10.0.0.1", "http_port": 9090}, {"host": "10.0.0.1", "http_port": 9091, "store_dir": "/s2"}],
}


def dags(entry):
    parsed = parse_clusters({"entries": [entry]})
    assert not parsed.errors
    return {dag.dag_id: dag for dag in build_entry(parsed.entries[0])}


def test_cassandra_operators_get_specs_with_each_nodes_own_folders():
    backup = dags(CASSANDRA)["cassandra_c1"]
    specs = backup.task_dict["upload"].expand_input.value["node"]
    assert specs == [
        CassandraNodeSpec(host="10.0.0.1", port=22, data_dir="/data", commitlog_dir="/var/lib/cassandra/commitlog"),
        CassandraNodeSpec(host="10.0.0.2", port=2222, data_dir="/disk2/data", commitlog_dir="/disk2/cl"),
    ]
    assert backup.task_dict["cleanup"].expand_input.value["node"] == specs
    plan = dags(CASSANDRA)["cassandra_c1_restore"].task_dict["plan"]
    assert plan.nodes == specs


def test_a_restore_target_record_gives_the_spec_back():
    spec = CassandraNodeSpec(host="10.0.0.2", port=2222, data_dir="/disk2/data", commitlog_dir="/disk2/cl")
    target = {"host": "10.0.0.2", "port": 2222, "data_dir": "/disk2/data", "commitlog_dir": "/disk2/cl", "manifest": "k"}
    assert CassandraNodeSpec.from_record(target) == spec


def test_devicedb_tasks_get_specs_labelled_and_resolved():
    backup = dags(DEVICEDB)["devicedb_d1"]
    upload = backup.task_dict["upload_10_0_0_1-9091"]
    assert upload.node_spec == DevicedbNodeSpec(
        label="10.0.0.1-9091", host="10.0.0.1", ssh_port=22, http_port=9091, http_host=None,
        store_dir="/s2", snapshot_dir="/snaps", transfer_dir=None,
    )
    assert all(isinstance(n, DevicedbNodeSpec) for n in upload.nodes)
    assert [n.store_dir for n in upload.nodes] == ["/var/lib/devicedb/store", "/s2"]


def test_the_dags_serialize_for_the_scheduler_with_typed_specs():
    for entry in (CASSANDRA, DEVICEDB):
        for dag in dags(entry).values():
            back = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
            assert set(back.task_dict) == set(dag.task_dict)
    backup = DagSerialization.from_dict(DagSerialization.to_dict(dags(CASSANDRA)["cassandra_c1"]))
    # the scheduler expands the mapped tasks from the serialized list: one instance per node
    assert len(backup.task_dict["upload"].expand_input.value["node"]) == 2


def test_the_devicedb_trigger_specs_survive_the_triggerers_round_trip():
    nodes = [
        DevicedbNodeSpec(label="n1", host="10.0.0.1", ssh_port=2222, http_port=9090, http_host="127.0.0.1",
                         store_dir="/s", snapshot_dir="/snaps", transfer_dir=None),
    ]
    trigger = DevicedbSnapshotTrigger(
        nodes=nodes, uuid="19a7e40e-adcc-4cc2-87a7-ae599272b050", triggered_at="2026-11-20T00:00:00+00:00", missing_grace=60
    )
    classpath, kwargs = trigger.serialize()
    # what the triggerer stores and reads back: JSON through Airflow's own serializer
    stored = json.loads(json.dumps(BaseSerialization.serialize(kwargs)))
    back = DevicedbSnapshotTrigger(**BaseSerialization.deserialize(stored))
    assert back.nodes == nodes
    assert back.serialize() == (classpath, kwargs)
