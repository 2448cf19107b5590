"""The Cassandra restore drill on the 3-node sandbox: a good backup passes, a changed byte or a
deleted object fails naming it, the scratch folder is gone either way, and nothing live changes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.harness import clusters_file, load_dag, run_dag, xcom
from tests.integration.test_cassandra_sandbox import (  # noqa: F401
    BUCKET,
    all_keys,
    entry_for,
    fresh_bucket,
    proxy,
    run_id_of,
    s3,
)
from tests.sandbox.kinds import cassandra as sim

pytestmark = pytest.mark.sandbox

LAYOUT = {"shop": ["orders", "customers"], "audit": ["events"]}
INDEX = "orders_by_customer_idx"


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def bucket_digest(client, prefix: str) -> dict[str, str]:
    """Every backup object (drill records left out) with a hash of its bytes."""
    return {
        key: hashlib.sha256(client.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()
        for key in all_keys(client, BUCKET, prefix)
        if not key.endswith(".drill.json")
    }


def live_digest(nodes, client, prefix: str) -> dict:
    return {"nodes": {n.address: tree_digest(sim.data_dir(n)) for n in nodes}, "bucket": bucket_digest(client, prefix)}


def drill_records(client, prefix: str) -> dict[str, dict]:
    return {
        key: json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        for key in all_keys(client, BUCKET, prefix)
        if key.endswith(".drill.json")
    }


def leftovers(drill_folder: Path) -> list[str]:
    return [str(p) for p in drill_folder.rglob("*")] if drill_folder.exists() else []


def test_drill_passes_then_catches_a_changed_byte_and_a_deleted_object(sandbox, airflow_db, proxy, s3, tmp_path, mails):  # noqa: F811
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, LAYOUT)
    for node in nodes:
        sim.add_index(node, "shop", "orders", INDEX)
        sim.write(node, "shop", "orders", 2_000, seed=f"{node.name}-drill")
        sim.sim(node, "create", "shop", "returns")  # an empty table: a table folder without files
    drill_folder = tmp_path / "drills"
    entry = entry_for(sandbox, tmp_path, "drilled", drill_folder=str(drill_folder))
    with clusters_file(tmp_path, entry):
        states = run_dag(load_dag("cassandra_drilled"), "2026-11-20T01:00:00")
        assert states["report"] == "success", states
        prefix = "backups/drilled/"
        manifests = sorted(k for k in all_keys(s3, BUCKET, prefix) if k.endswith("/manifest.json"))
        assert len(manifests) == 3

        drill = load_dag("cassandra_drilled_drill")
        before = live_digest(nodes, s3, prefix)
        states = run_dag(drill, "2026-11-21T00:00:00")
        assert states["drill"] == "success" and states["cleanup_scratch"] == "success", states
        assert states["report"] == "success", states
        assert leftovers(drill_folder) == []
        assert live_digest(nodes, s3, prefix) == before
        records = drill_records(s3, prefix)
        assert sorted(records) == [m + ".drill.json" for m in manifests]
        assert {r["verdict"] for r in records.values()} == {"passed"}
        assert all(r["files"] > 10 and r["problems"] == [] for r in records.values())
        run_id = run_id_of(drill)
        outcome = xcom("cassandra_drilled_drill", run_id, "drill", key="backup_outcome")
        assert sorted(p["id"] for p in outcome["produced"]) == manifests
        assert all(p["verified"] is True and p["verdict"] == "passed" for p in outcome["produced"])
        # the record is encrypted as the entry says, like every object the project writes
        head = s3.head_object(Bucket=BUCKET, Key=manifests[0] + ".drill.json")
        assert head["ServerSideEncryption"] == "AES256"

        # one byte of one object changed in S3 (an index SSTable of the second node)
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[1])["Body"].read())
        target = next(f["key"] for f in manifest["files"] if f"/.{INDEX}/" in f["path"] and f["path"].endswith("Data.db"))
        body = bytearray(s3.get_object(Bucket=BUCKET, Key=target)["Body"].read())
        body[len(body) // 2] ^= 0x01
        s3.put_object(Bucket=BUCKET, Key=target, Body=bytes(body))
        before = live_digest(nodes, s3, prefix)
        states = run_dag(drill, "2026-11-22T00:00:00")
        assert states["drill"] == "failed", states
        assert states["cleanup_scratch"] == "success" and states["report"] == "failed", states
        assert leftovers(drill_folder) == []
        assert live_digest(nodes, s3, prefix) == before
        records = drill_records(s3, prefix)
        failed = records[manifests[1] + ".drill.json"]
        assert failed["verdict"] == "failed" and any(target in p for p in failed["problems"]), failed
        assert {records[m + ".drill.json"]["verdict"] for m in (manifests[0], manifests[2])} == {"passed"}
        outcome = xcom("cassandra_drilled_drill", run_id_of(drill), "drill", key="backup_outcome")
        assert target in outcome["detail"] and outcome["status"] == "failed"
        alert = [m for m in mails if "cassandra_drilled_drill" in m["subject"] and "FAILED" in m["subject"]]
        assert alert and any(target in m["body"] for m in alert), [m["subject"] for m in mails]

        # another object deleted (a file of the third node)
        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifests[2])["Body"].read())
        gone = manifest["files"][0]["key"]
        s3.delete_object(Bucket=BUCKET, Key=gone)
        states = run_dag(drill, "2026-11-23T00:00:00")
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success", states
        assert leftovers(drill_folder) == []
        failed = drill_records(s3, prefix)[manifests[2] + ".drill.json"]
        assert any(p.startswith(f"{gone}: missing") for p in failed["problems"]), failed

        # a chosen day that is not a backup: one clear error naming the param
        states = run_dag(drill, "2026-11-24T00:00:00", conf={"backup": "2026-11-19"})
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success", states


def test_drill_schedule_null_builds_no_drill_and_a_bad_one_names_the_field(tmp_path):
    from airflow_backup_provider.config import parse_clusters

    base = {"kind": "cassandra", "name": "c", "nodes": [{"host": "10.0.0.1"}], "bucket": "b"}
    clusters = parse_clusters({"entries": [{**base, "drill_schedule": None}]})
    from airflow_backup_provider.builders.cassandra import build

    assert [d.dag_id for d in build(clusters.entries[0])] == ["cassandra_c", "cassandra_c_restore"]
    clusters = parse_clusters({"entries": [{**base}]})
    dags = {d.dag_id: d for d in build(clusters.entries[0])}
    assert "cassandra_c_drill" in dags
    assert {"drill", "cleanup_scratch", "report", "wait_for_other_runs"} <= set(dags["cassandra_c_drill"].task_dict)
    assert dags["cassandra_c_drill"].task_dict["cleanup_scratch"].trigger_rule == "all_done"
    assert dags["cassandra_c_drill"].schedule == "@weekly"
    # a drill host that is a node is reached on that node's SSH port, by the drill and its cleanup
    (on_node,) = parse_clusters({"entries": [{**base, "nodes": [{"host": "10.0.0.1", "port": 2222}], "drill_host": "10.0.0.1"}]}).entries
    drill = {d.dag_id: d for d in build(on_node)}["cassandra_c_drill"]
    assert drill.task_dict["drill"].drill_port == drill.task_dict["cleanup_scratch"].drill_port == 2222
    assert drill.task_dict["cleanup_scratch"].ssh_conn_id == "backup_ssh"
    assert dags["cassandra_c_drill"].task_dict["cleanup_scratch"].ssh_conn_id == "local"
    (error,) = parse_clusters({"entries": [{**base, "drill_schedule": "every tuesday"}]}).errors
    assert "drill_schedule" in str(error) and "every tuesday" in str(error)
    (error,) = parse_clusters({"entries": [{**base, "drill_folder": "/"}]}).errors
    assert "drill_folder" in str(error)
    (error,) = parse_clusters({"entries": [{**base, "drill_host": "10.0.0.1", "drill_folder": "/var/lib/cassandra/data/x"}]}).errors
    assert "drill_folder" in str(error) and "/var/lib/cassandra/data/x" in str(error) and "live data" in str(error)


def test_drill_on_a_drill_host_over_ssh_writes_only_its_scratch_folder_there(sandbox, airflow_db, proxy, s3, tmp_path):  # noqa: F811
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, {"shop": ["orders"]})
    drill_folder = tmp_path / "remote-drills"
    entry = entry_for(sandbox, tmp_path, "remote", drill_host=nodes[0].address, drill_folder=str(drill_folder))
    with clusters_file(tmp_path, entry):
        assert run_dag(load_dag("cassandra_remote"), "2026-11-20T01:00:00")["report"] == "success"
        prefix = "backups/remote/"
        before = live_digest(nodes, s3, prefix)
        drill = load_dag("cassandra_remote_drill")
        assert drill.task_dict["drill"].drill_host == nodes[0].address
        states = run_dag(drill, "2026-11-21T00:00:00", conf={"backup": "20261120"})
        assert states["drill"] == "success" and states["cleanup_scratch"] == "success" and states["report"] == "success", states
        assert leftovers(drill_folder) == [] and live_digest(nodes, s3, prefix) == before
        assert {r["verdict"] for r in drill_records(s3, prefix).values()} == {"passed"}


def test_a_newer_incomplete_day_is_named_and_a_missing_schema_fails_the_drill(sandbox, airflow_db, proxy, s3, tmp_path):  # noqa: F811
    fresh_bucket(s3, BUCKET)
    sim.setup_cluster(sandbox, {"shop": ["orders"]})
    entry = entry_for(sandbox, tmp_path, "partial", drill_folder=str(tmp_path / "drills"))
    with clusters_file(tmp_path, entry):
        backup = load_dag("cassandra_partial")
        assert run_dag(backup, "2026-11-20T01:00:00")["report"] == "success"
        assert run_dag(backup, "2026-11-21T01:00:00")["report"] == "success"
        prefix = "backups/partial/"
        newest = sorted(k for k in all_keys(s3, BUCKET, prefix + "20261121/") if k.endswith("/manifest.json"))
        s3.delete_object(Bucket=BUCKET, Key=newest[0])  # that day is no complete backup any more
        drill = load_dag("cassandra_partial_drill")
        states = run_dag(drill, "2026-11-22T00:00:00")
        assert states["drill"] == "success", states
        outcome = xcom("cassandra_partial_drill", run_id_of(drill), "drill", key="backup_outcome")
        assert all("/20261120/" in p["id"] for p in outcome["produced"]), outcome
        assert any("20261121 is not a complete backup" in w for w in outcome["warnings"]), outcome

        manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=outcome["produced"][0]["id"])["Body"].read())
        s3.delete_object(Bucket=BUCKET, Key=manifest["schema_key"])
        states = run_dag(drill, "2026-11-23T00:00:00")
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success", states
        outcome = xcom("cassandra_partial_drill", run_id_of(drill), "drill", key="backup_outcome")
        assert f"{manifest['schema_key']}: missing from the bucket" in outcome["detail"]
        assert leftovers(tmp_path / "drills") == []
