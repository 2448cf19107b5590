"""devicedb end to end on a 3-node sandbox cluster: real Airflow (dag.test), real sshd, moto S3,
real SMTP, and the simulated devicedb nodes serving the documented HTTP API."""

from __future__ import annotations

import hashlib
import html

import pytest

from tests.devicedb_fixtures import s3_json, s3_objects
from tests.harness import clusters_file, load_dag, run_dag

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

DAY = "2026-11-20"


def backup(tmp_path, entry, day=DAY):
    with clusters_file(tmp_path, {"entries": [entry]}):
        return run_dag(load_dag(f"devicedb_{entry['name']}"), day)


def restore(tmp_path, entry, conf, day="2026-11-21"):
    with clusters_file(tmp_path, {"entries": [entry]}):
        return run_dag(load_dag(f"devicedb_{entry['name']}_restore"), day, conf=conf)


def snapshot_uuids(sandbox, bucket, complete=True):
    keys = s3_objects(sandbox, bucket)
    return sorted({k.split("/")[2] for k in keys if "/_runs/" not in k and (not complete or k.endswith("manifest.json"))})


def test_backup_then_restore_brings_back_the_first_keys_and_drops_the_later_ones(
    airflow_db, sandbox, mails, devicedb, bucket, tmp_path
):
    for i in range(5):
        devicedb.write(f"early{i}", f"value{i}", node=i % 3)
    entry = devicedb.entry("ddb", bucket)
    states = backup(tmp_path, entry)
    assert set(states.values()) == {"success"}, states

    (uuid,) = snapshot_uuids(sandbox, bucket)
    manifest = s3_json(sandbox, bucket, f"devicedb/ddb/{uuid}/manifest.json")
    assert manifest["uuid"] == uuid and manifest["logical_date"].startswith(DAY)
    assert sorted(n["node"] for n in manifest["nodes"]) == sorted(n.address for n in sandbox.nodes)
    s3 = sandbox.boto3_client("s3")
    for piece in manifest["nodes"]:
        assert piece["key"] == f"devicedb/ddb/{uuid}/{piece['node']}.tar"
        body = s3.get_object(Bucket=bucket, Key=piece["key"])["Body"].read()
        assert len(body) == piece["size"] and hashlib.sha256(body).hexdigest() == piece["sha256"]
    assert manifest["check"]["key"] == "airflow-backup-check"
    assert sorted(manifest["membership"]) == sorted(devicedb.node_ids.values())
    report = next(m for m in mails if m["subject"].startswith("[backup succeeded] devicedb_ddb "))
    assert uuid in report["body"] and "read back" in report["body"]  # the per-node status table

    for i in range(3):
        devicedb.write(f"late{i}", "after the backup", node=i)
    devicedb.write("early0", "changed after the backup")
    mails.clear()

    states = restore(tmp_path, entry, {"snapshot": uuid, "dry_run": True}, day="2026-11-22")
    assert states["resolve_snapshot"] == "skipped" and states["report"] == "success", states
    assert all(states[t] == "skipped" for t in states if t.startswith(("stop_", "restore_", "start_")))
    assert devicedb.read("late1", node=1) == ["after the backup"]  # a dry run touches nothing
    mails.clear()

    states = restore(tmp_path, entry, {"snapshot": uuid, "confirm": "ddb"})
    assert states["verify_restore"] == "success" and states["report"] == "success", states
    assert states["rollback"] == "skipped" and states["ensure_started"] == "skipped"
    for node in range(3):
        assert devicedb.read("early0", node=node) == ["value0"]
        assert devicedb.read("early4", node=node) == ["value4"]
        assert devicedb.read("late1", node=node) == []
    for node in sandbox.nodes:
        assert devicedb.running(node)
        kept = [p.name for p in devicedb.store_dir(node).parent.iterdir() if ".pre-restore-" in p.name]
        assert len(kept) == 1  # the old store is kept, never deleted
    assert any(m["subject"].startswith("[backup succeeded] devicedb_ddb_restore") for m in mails)


def test_a_failed_node_fails_the_run_at_once_and_alerts(airflow_db, sandbox, mails, devicedb, bucket, tmp_path):
    devicedb.set_knobs(sandbox.nodes[1], snapshot="failed")
    entry = devicedb.entry("ddbfail", bucket, missing_grace="5m", gate_timeout="5m")
    states = backup(tmp_path, entry)
    assert states["trigger_snapshot"] == "success"
    assert states["wait_for_snapshot"] == "failed"
    assert states["write_manifest"] == "upstream_failed" and states["report"] == "failed"
    alert = next(m for m in mails if m["subject"].startswith("[backup failed] devicedb_ddbfail.wait_for_snapshot"))
    assert f"snapshot failed on {sandbox.nodes[1].address}" in alert["body"]
    assert any(m["subject"].startswith("[backup FAILED] devicedb_ddbfail") for m in mails)
    assert snapshot_uuids(sandbox, bucket) == []  # nothing listed as complete


def test_missing_beyond_the_grace_fails_and_a_rerun_reuses_the_snapshot(
    airflow_db, sandbox, mails, devicedb, bucket, tmp_path
):
    late = sandbox.nodes[2]
    devicedb.set_knobs(late, apply_delay=4)  # the node applies the raft entry after the grace
    entry = devicedb.entry("ddblate", bucket, missing_grace="2s", deferrable=False)
    states = backup(tmp_path, entry)
    assert states["wait_for_snapshot"] == "failed", states
    alert = next(m for m in mails if "devicedb_ddblate.wait_for_snapshot" in m["subject"])
    assert "grace" in alert["body"] and f"{late.address} (missing)" in alert["body"]
    first = devicedb.snapshot_dirs(sandbox.nodes[0])
    assert len(first) == 1

    devicedb.clear_knobs()
    devicedb.wait_completed(first[0])
    states = backup(tmp_path, entry)  # the same logical date again: reuses the recorded UUID
    assert set(states.values()) == {"success"}, states
    for node in sandbox.nodes:
        assert devicedb.snapshot_dirs(node) == first  # no second snapshot anywhere
    assert snapshot_uuids(sandbox, bucket) == first

    states = backup(tmp_path, entry)  # and once complete, a third run skips
    assert states["trigger_snapshot"] == "skipped" and states["report"] == "success"
    assert devicedb.snapshot_dirs(sandbox.nodes[0]) == first


def test_missing_within_the_grace_is_tolerated_and_a_dry_run_changes_nothing(
    airflow_db, sandbox, devicedb, bucket, tmp_path
):
    entry = devicedb.entry("ddbgrace", bucket, missing_grace="20s")
    with clusters_file(tmp_path, {"entries": [entry]}):
        states = run_dag(load_dag("devicedb_ddbgrace"), "2026-11-19", conf={"dry_run": True})
    assert states["trigger_snapshot"] == "skipped" and states["retention"] == "success" and states["report"] == "success"
    assert s3_objects(sandbox, bucket) == {} and devicedb.snapshot_dirs(sandbox.nodes[0]) == []

    devicedb.set_knobs(sandbox.nodes[1], apply_delay=1.5)
    states = backup(tmp_path, entry)
    assert set(states.values()) == {"success"}, states


def test_a_failed_restore_or_a_tampered_tar_puts_the_old_stores_back_and_alerts(airflow_db, sandbox, mails, devicedb, bucket, tmp_path):
    devicedb.write("early", "1")
    entry = devicedb.entry("ddbroll", bucket)
    assert backup(tmp_path, entry)["report"] == "success"
    devicedb.write("late", "2")
    devicedb.set_knobs(sandbox.nodes[1], start_fails=1)  # the restored node 2 will not start
    mails.clear()

    states = restore(tmp_path, entry, {"snapshot": DAY, "confirm": "ddbroll"})
    assert states[f"start_{sandbox.nodes[1].address.replace('.', '_')}"] == "failed"
    assert states["rollback"] == "success" and states["ensure_started"] == "success"
    assert states["report"] == "failed"
    for node in range(3):
        assert devicedb.read("late", node=node) == ["2"]  # the old stores are back
        assert devicedb.running(sandbox.nodes[node])
    for node in sandbox.nodes:
        names = [p.name for p in devicedb.store_dir(node).parent.iterdir()]
        assert not any(".pre-restore-" in n for n in names)
        assert any(".failed-restore-" in n for n in names)
    subjects = [m["subject"] for m in mails]
    assert any(s.startswith("[backup restore rolled back] devicedb_ddbroll_restore") for s in subjects), subjects
    assert any(s.startswith("[backup failed] devicedb_ddbroll_restore.start_") for s in subjects), subjects

    # A tar changed in S3 (same size, one bit off) is refused before it reaches a store.
    (uuid,) = snapshot_uuids(sandbox, bucket)
    victim = sandbox.nodes[2].address.replace(".", "_")
    s3 = sandbox.boto3_client("s3")
    key = f"devicedb/ddbroll/{uuid}/{sandbox.nodes[2].address}.tar"
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=original[:-1] + bytes([original[-1] ^ 1]))
    mails.clear()
    states = restore(tmp_path, entry, {"snapshot": uuid, "confirm": "ddbroll"}, day="2026-11-22")
    assert states[f"restore_{victim}"] == "failed"
    assert states["rollback"] == "success" and states["ensure_started"] == "success" and states["report"] == "failed"
    for node in range(3):
        assert devicedb.read("late", node=node) == ["2"]
        assert devicedb.running(sandbox.nodes[node])
    alert = next(m for m in mails if m["subject"].startswith(f"[backup failed] devicedb_ddbroll_restore.restore_{victim}"))
    assert "the manifest says" in html.unescape(alert["body"])


def test_restore_needs_the_confirmation_and_touches_nothing_without_it(
    airflow_db, sandbox, mails, devicedb, bucket, tmp_path
):
    entry = devicedb.entry("ddbconfirm", bucket)
    states = restore(tmp_path, entry, {"snapshot": DAY, "confirm": "yes"})
    assert states["resolve_snapshot"] == "failed"
    assert all(states[t] == "upstream_failed" for t in states if t.startswith(("stop_", "restore_")))
    assert states["ensure_started"] == "skipped"
    alert = next(m for m in mails if "resolve_snapshot" in m["subject"])
    assert "param 'confirm': value 'yes' must be the cluster name 'ddbconfirm'" in html.unescape(alert["body"])
    assert all(devicedb.running(n) for n in sandbox.nodes)

    # While a restore of the cluster runs, its backup takes no snapshot.
    set_run_state("devicedb_ddbconfirm_restore", "running")
    try:
        states = backup(tmp_path, entry)
    finally:
        set_run_state("devicedb_ddbconfirm_restore", "failed")
    assert states["trigger_snapshot"] == "failed"
    alert = next(m for m in mails if "devicedb_ddbconfirm.trigger_snapshot" in m["subject"])
    assert "devicedb_ddbconfirm_restore has 1 run(s) in progress" in html.unescape(alert["body"])
    assert all(devicedb.snapshot_dirs(n) == [] for n in sandbox.nodes)


def set_run_state(dag_id, state):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter_by(dag_id=dag_id):
            run.state = state


def test_through_an_ssh_tunnel_with_local_cleanup(airflow_db, sandbox, devicedb, bucket, tmp_path):
    transfer = tmp_path / "transfer"
    transfer.mkdir()
    entry = devicedb.entry(
        "ddbtunnel", bucket, ssh_tunnel=True, cleanup_local_snapshots=True, keep_old_stores=False, transfer_dir=str(transfer)
    )
    for node, spec in zip(sandbox.nodes, entry["nodes"], strict=True):
        spec["http_host"] = node.address  # the simulated API listens on the node's address
    devicedb.write("k", "v")
    states = backup(tmp_path, entry)
    assert set(states.values()) == {"success"}, states
    assert len(snapshot_uuids(sandbox, bucket)) == 1
    for node in sandbox.nodes:
        assert devicedb.snapshot_dirs(node) == []  # removed after the verified upload

    devicedb.write("k", "later")
    states = restore(tmp_path, entry, {"snapshot": DAY, "confirm": "ddbtunnel"})
    assert states["finalize"] == "success" and states["report"] == "success", states
    assert [devicedb.read("k", node=i) for i in range(3)] == [["v"]] * 3
    assert list(transfer.iterdir()) == []  # each tar went through transfer_dir and was removed
    for node in sandbox.nodes:  # verified, so the old stores were deleted as the file asks
        assert not any(".pre-restore-" in p.name for p in devicedb.store_dir(node).parent.iterdir())


def seed_snapshot(sandbox, bucket, cluster, uuid, day, complete=True):
    from datetime import datetime, timedelta

    from airflow_backup_provider.stores import devicedb as ddb

    s3 = sandbox.boto3_client("s3")
    key = ddb.node_tar_key("devicedb", cluster, uuid, "n1")
    s3.put_object(Bucket=bucket, Key=key, Body=b"tar")
    if complete:
        logical = datetime.fromisoformat(f"{day}T00:00:00+00:00")
        manifest = ddb.build_manifest(
            cluster=cluster,
            uuid=uuid,
            logical_date=logical,
            created_at=logical + timedelta(minutes=1),
            artifacts=[ddb.NodeArtifact("n1", "n1", 8080, key, 3, hashlib.sha256(b"tar").hexdigest())],
            check=None,
        )
        s3.put_object(Bucket=bucket, Key=ddb.manifest_key("devicedb", cluster, uuid), Body=ddb.manifest_json(manifest))


def test_retention_keeps_the_policy_and_never_what_is_newer_or_incomplete(
    airflow_db, sandbox, devicedb, bucket, tmp_path
):
    old = {day: f"00000000-0000-4000-8000-0000000000{i:02d}" for i, day in enumerate(["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-25"])}
    for day, uuid in old.items():
        seed_snapshot(sandbox, bucket, "ddbret", uuid, day)
    partial = "00000000-0000-4000-8000-0000000000ff"
    seed_snapshot(sandbox, bucket, "ddbret", partial, "2026-11-16", complete=False)
    entry = devicedb.entry("ddbret", bucket, retention={"keep_daily": 2})
    states = backup(tmp_path, entry)
    assert set(states.values()) == {"success"}, states
    complete = snapshot_uuids(sandbox, bucket)
    assert old["2026-11-19"] in complete and old["2026-11-25"] in complete  # newest two days, and the future one
    assert old["2026-11-17"] not in complete and old["2026-11-18"] not in complete
    keys = s3_objects(sandbox, bucket)
    assert not any(old["2026-11-17"] in k for k in keys)  # tars gone too
    assert any(partial in k for k in keys)  # an incomplete upload younger than two days is left alone
    assert len(complete) == 3
