"""Cassandra backup and restore DAGs on the 3-node sandbox (real sshd, moto S3 behind a proxy)."""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import clusters_file, load_dag, run_dag, xcom
from tests.integration.s3_proxy import S3Proxy
from tests.sandbox.kinds import cassandra as sim

pytestmark = pytest.mark.sandbox

BUCKET = "cassandra-backups"
CONN = "cassandra_s3"
LAYOUT = {"shop": ["orders", "customers"], "metrics": ["samples"], "audit": ["events"]}


@pytest.fixture(scope="module")
def proxy(sandbox):
    proxy = S3Proxy(sandbox.moto_url).start()
    conn = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            # botocore's own retries kept short: tenacity (s3_attempts) does the rest, and is tested
            "extra": {
                "region_name": "us-east-1",
                "endpoint_url": proxy.url,
                "config_kwargs": {"retries": {"max_attempts": 2, "mode": "standard"}},
            },
        }
    )
    os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = conn
    yield proxy
    os.environ.pop(f"AIRFLOW_CONN_{CONN.upper()}", None)
    proxy.stop()


@pytest.fixture
def s3(sandbox):
    return sandbox.boto3_client("s3")


def fresh_bucket(s3, bucket: str) -> None:
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})


def all_keys(s3, bucket: str, prefix: str = "") -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [o["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]


def entry_for(sandbox, tmp_path: Path, name: str, **extra) -> dict:
    return {
        "defaults": {"retries": 0, "schedule": None, "alert_emails": ["oncall@example.com"]},
        "entries": [
            {
                "kind": "cassandra",
                "name": name,
                "nodes": sim.entry_nodes(sandbox),
                "bucket": BUCKET,
                "prefix": "backups",
                "aws_conn_id": CONN,
                "restore_folder": str(tmp_path / "restore" / "{host}"),
                "upload_threads": 3,
                **extra,
            }
        ],
    }


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def snapshot_files(node, tag: str) -> dict[str, str]:
    """What a restore must reproduce: the snapshot's SSTables and the backups/ files, by
    `<keyspace>/<table dir>/<file>`."""
    result = {}
    data = sim.data_dir(node)
    for table_dir in sorted(data.glob("*/*")):
        for source in (table_dir / "snapshots" / tag, table_dir / "backups"):
            if not source.is_dir():
                continue
            for path in sorted(source.rglob("*")):  # secondary indexes: `.<index>/` sub-folders
                name = str(path.relative_to(source))
                if path.is_file() and name not in ("manifest.json", "schema.cql"):
                    result[f"{table_dir.parent.name}/{table_dir.name}/{name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


INDEX = "orders_by_customer_idx"


def test_full_cycle_backup_verify_restore_byte_identical(sandbox, airflow_db, proxy, s3, tmp_path, mails):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, LAYOUT)
    # keep the snapshot on the nodes to compare with what comes back: fail cleanup's clearsnapshot
    for node in nodes:
        sim.set_failure(node, "clearsnapshot", "kept for the test")
        # a secondary index: its SSTables in `orders-<id>/.<index>/`, from the snapshot's flush on
        sim.add_index(node, "shop", "orders", INDEX)
        sim.write(node, "shop", "orders", 5_000, seed=f"{node.name}-indexed")
        sim.sim(node, "create", "shop", "returns")  # an empty table: no SSTable at all
    with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "full", verify_checksums=True)):
        dag = load_dag("cassandra_full")
        states = run_dag(dag, "2026-11-20T01:00:00")
        assert states["verify"] == "success", states
        assert all(states[f"upload[{i}]"] == "success" for i in range(3)), states
        assert all(states[f"cleanup[{i}]"] == "failed" for i in range(3)), states  # the knob

        manifests = [k for k in all_keys(s3, BUCKET, "backups/full/20261120/") if k.endswith("manifest.json")]
        assert len(manifests) == 3
        for node in nodes:
            sim.set_failure(node, "clearsnapshot", "")
        tags = {json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())["tag"] for k in manifests}
        (tag,) = tags
        expected = {node.address: snapshot_files(node, tag) for node in nodes}
        assert all(len(files) >= len(LAYOUT) * 8 for files in expected.values())
        # the index files: in the snapshot and backups/, in every manifest, verified (checksums on)
        for node in nodes:
            index_paths = {p for p in expected[node.address] if f"/.{INDEX}/" in p}
            assert len(index_paths) == 8, index_paths
            manifest = next(m for m in manifests_in(s3, "backups/full/20261120/") if m["host"] == node.address)
            listed = {f["path"]: f for f in manifest["files"]}
            assert index_paths <= set(listed)
            assert {listed[p]["source"] for p in index_paths} == {"snapshot,backups"}

        restore = load_dag("cassandra_full_restore")
        shutil.rmtree(tmp_path / "restore", ignore_errors=True)
        live_before = {node.address: tree_digest(sim.data_dir(node)) for node in nodes}
        states = run_dag(restore, "2026-11-21T00:00:00", conf={"date": "2026-11-20"})
        assert states["next_steps"] == "success", states
        assert states["report"] == "success", states
        for node in nodes:
            restored = tree_digest(tmp_path / "restore" / node.address)
            assert restored.pop("schema.cql")
            # system keyspaces are backed up; the restore's default takes all but `system` (node-local)
            assert any(p.startswith("system/local-") for p in expected[node.address])
            assert any(p.startswith("system_schema/tables-") for p in restored)
            assert restored == {p: d for p, d in expected[node.address].items() if not p.startswith("system/")}, node.address
            # the restore lists the same table folders as the data folder, the empty table's too
            for keyspace in LAYOUT:
                restored_tables = sorted(p.name for p in (tmp_path / "restore" / node.address / keyspace).iterdir())
                assert restored_tables == sorted(p.name for p in (sim.data_dir(node) / keyspace).iterdir()), keyspace
            # in place: `<restore>/shop/orders-<id>/.<index>/nb-...`
            assert (tmp_path / "restore" / node.address / "shop" / f"orders-{sim_table_id('shop', 'orders')}" / f".{INDEX}" / "nb-1-big-Data.db").is_file()
            # never a byte into the live data folder
            assert tree_digest(sim.data_dir(node)) == live_before[node.address], node.address
        steps = xcom("cassandra_full_restore", run_id_of(restore), "next_steps")
        assert "node restart method" in steps and "nodetool repair" in steps
        # each node's own data folder (the entry's nodes have their own), not the cluster default
        for node in nodes:
            assert f"{node.address}: {tmp_path / 'restore' / node.address} -> {sim.data_dir(node)}, " in steps, steps
        assert "/var/lib/cassandra/data" not in steps, steps
        assert f"shop/returns-{sim_table_id('shop', 'returns')}" in steps
        # the report mail carries the next steps, and the backup mail each node's upload
        restore_mail = [m for m in mails if "cassandra_full_restore" in m["subject"]][-1]
        assert "node restart method" in restore_mail["body"] and "succeeded" in restore_mail["subject"]
        backup_mail = [m for m in mails if "cassandra_full " in m["subject"] or "] cassandra_full manual" in m["subject"]][-1]
        assert "new files" in backup_mail["body"] and nodes[0].address in backup_mail["body"]


def run_id_of(dag) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag.dag_id).order_by(DagRun.id.desc()).first()
        return run.run_id


def live_files(node, keyspaces) -> dict[str, str]:
    """SSTables in the live table folders and backups/ (what a snapshot taken now would hold)."""
    result = {}
    for table_dir in sorted(sim.data_dir(node).glob("*/*")):
        if table_dir.parent.name not in keyspaces:
            continue
        for source in (table_dir, table_dir / "backups"):
            for path in sorted(p for p in source.iterdir() if p.is_file()):
                result[f"{table_dir.parent.name}/{table_dir.name}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def manifests_in(s3, prefix: str) -> list[dict]:
    return [
        json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())
        for k in all_keys(s3, BUCKET, prefix)
        if k.endswith("/manifest.json")
    ]


def assert_every_manifest_entry_exists(s3, prefix: str) -> int:
    count = 0
    for manifest in manifests_in(s3, prefix):
        for entry in manifest["files"]:
            head = s3.head_object(Bucket=BUCKET, Key=entry["key"])
            assert head["ContentLength"] == entry["compressed_size"], entry["key"]
            assert head["ServerSideEncryption"] == "AES256"
            count += 1
    return count


def test_second_run_same_day_uploads_only_new_files_and_restores_several_keyspaces(
    sandbox, airflow_db, proxy, s3, tmp_path
):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, LAYOUT)
    with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "incr", remove_uploaded_incrementals=True)):
        dag = load_dag("cassandra_incr")
        proxy.reset()
        states = run_dag(dag, "2026-11-21T01:00:00")
        assert states["verify"] == "success" and states["report"] == "success", states
        first_puts = proxy.object_writes(BUCKET)
        first = manifests_in(s3, "backups/incr/20261121/")
        assert {m["mode"] for m in first} == {"full"}
        # snapshots cleared, uploaded incrementals removed
        for node in nodes:
            assert not list(sim.data_dir(node).glob("*/*/snapshots/*"))
            assert not list(sim.data_dir(node).glob("*/*/backups/*"))

        # new rows on two nodes only; the snapshot's flush turns them into one SSTable each
        sim.write(nodes[0], "shop", "orders", 30_000, seed="late-1")
        sim.write(nodes[1], "metrics", "samples", 10_000, seed="late-2")
        proxy.reset()
        states = run_dag(dag, "2026-11-21T07:00:00")
        assert states["verify"] == "success" and states["report"] == "success", states
        writes = proxy.object_writes(BUCKET)
        data_writes = sorted(r.key for r in writes if r.key.endswith(".zst"))
        meta_writes = sorted(r.key for r in writes if not r.key.endswith(".zst"))
        components = ("CompressionInfo.db", "Data.db", "Digest.crc32", "Filter.db", "Index.db", "Statistics.db", "Summary.db", "TOC.txt")
        expected = sorted(
            [f"{BUCKET}/backups/incr/20261121/{nodes[0].address}/shop/orders-{sim_table_id('shop', 'orders')}/nb-3-big-{c}.zst" for c in components]
            + [f"{BUCKET}/backups/incr/20261121/{nodes[1].address}/metrics/samples-{sim_table_id('metrics', 'samples')}/nb-3-big-{c}.zst" for c in components]
        )
        assert data_writes == expected
        assert len(meta_writes) == 3 * 3  # manifest, schema, status per node
        assert len(first_puts) > len(writes) * 3
        second = [m for m in manifests_in(s3, "backups/incr/20261121/") if m["mode"] == "incremental"]
        assert len(second) == 3
        by_host = {m["host"]: m for m in first}
        for manifest in second:
            assert len(manifest["files"]) == len(by_host[manifest["host"]]["files"]) + (8 if manifest["host"] in (nodes[0].address, nodes[1].address) else 0)
        assert_every_manifest_entry_exists(s3, "backups/incr/20261121/")

        # restore two of the three keyspaces, the day's latest run
        restore = load_dag("cassandra_incr_restore")
        states = run_dag(restore, "2026-11-22T00:00:00", conf={"date": "20261121", "keyspaces": ["shop", "metrics"]})
        assert states["report"] == "success", states
        for node in nodes:
            restored = tree_digest(tmp_path / "restore" / node.address)
            restored.pop("schema.cql")
            live = live_files(node, {"shop", "metrics"})
            assert restored == live, node.address
            assert {k.split("/")[0] for k in restored} == {"shop", "metrics"}

        # one table on one host
        shutil.rmtree(tmp_path / "restore")
        states = run_dag(
            restore, "2026-11-22T01:00:00",
            conf={"date": "2026-11-21", "hosts": [nodes[2].address], "tables": ["shop.customers"]},
        )
        assert states["report"] == "success", states
        assert not (tmp_path / "restore" / nodes[0].address).exists()
        restored = tree_digest(tmp_path / "restore" / nodes[2].address)
        restored.pop("schema.cql")
        assert restored and {k.rsplit("/", 1)[0] for k in restored} == {f"shop/customers-{sim_table_id('shop', 'customers')}"}


def sim_table_id(keyspace: str, table: str) -> str:
    return hashlib.md5(f"{keyspace}.{table}".encode()).hexdigest()


def test_s3_fault_mid_upload_is_retried_and_no_manifest_lists_a_missing_object(sandbox, airflow_db, proxy, s3, tmp_path):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, LAYOUT)
    attempts: dict[str, int] = {}
    victim = nodes[1].address

    def fault(request):
        if not request.is_object_write or not request.key.endswith("-Data.db.zst"):
            return None
        attempts[request.key] = attempts.get(request.key, 0) + 1
        if f"/{victim}/" in request.key and "/audit/" in request.key:
            return "500"  # this object never gets in: its node must not write a manifest
        if "/shop/orders-" in request.key and attempts[request.key] <= 6:
            return "cut" if attempts[request.key] % 2 else "500"  # more than botocore's own retries
        return None

    proxy.reset()
    proxy.fault = fault
    try:
        with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "faulty", s3_attempts=4)):
            states = run_dag(load_dag("cassandra_faulty"), "2026-11-23T01:00:00")
    finally:
        proxy.fault = None
    assert states["upload[0]"] == "success" and states["upload[2]"] == "success", states
    assert states["upload[1]"] == "failed", states
    assert states["verify"] == "failed" and states["report"] == "failed", states
    assert states["cleanup[1]"] == "skipped" and states["cleanup[0]"] == "success", states
    # retried: the orders Data.db objects needed several tries and got in
    retried = [k for k, n in attempts.items() if "/shop/orders-" in k and n > 6]
    assert retried, attempts
    hosts = {m["host"] for m in manifests_in(s3, "backups/faulty/20261123/")}
    assert hosts == {nodes[0].address, nodes[2].address}
    assert assert_every_manifest_entry_exists(s3, "backups/faulty/20261123/") > 0
    # the failed node keeps its snapshot for a later try
    assert list(sim.data_dir(nodes[1]).glob("*/*/snapshots/abp-*"))
    assert not list(sim.data_dir(nodes[0]).glob("*/*/snapshots/abp-*"))


def test_hostile_names_are_rejected(sandbox, airflow_db, proxy, s3, tmp_path):
    from airflow_backup_provider.config import parse_clusters

    base = entry_for(sandbox, tmp_path, "hostile")
    bad = json.loads(json.dumps(base))
    bad["entries"][0]["keyspaces"] = ["shop; rm -rf /"]
    bad["entries"][0]["nodes"][0]["host"] = "node1$(reboot)"
    parsed = parse_clusters(bad)
    assert not parsed.entries
    text = str(parsed.errors[0])
    assert "'shop; rm -rf /'" in text and "keyspaces" in text
    assert "'node1$(reboot)'" in text and "host" in text

    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, {"shop": ["orders"]})
    with clusters_file(tmp_path, base):
        states = run_dag(load_dag("cassandra_hostile"), "2026-11-24T01:00:00")
        assert states["report"] == "success", states
        restore = load_dag("cassandra_hostile_restore")
        # the form refuses hostile names before a run exists
        for param, value in (("keyspaces", ["shop'; DROP KEYSPACE shop; --"]), ("hosts", ["127.0.0.1;touch /tmp/pwned"])):
            with pytest.raises(Exception, match=param):
                run_dag(restore, "2026-11-25T00:00:00", conf={param: value})
        for conf in ({"restore_folder": str(sim.data_dir(nodes[0]) / "shop")},):  # inside the live data
            states = run_dag(restore, "2026-11-25T00:00:00", conf=conf)
            assert states["plan"] == "failed", (conf, states)
            assert states["report"] == "failed"
            assert not (tmp_path / "restore").exists()

    # a folder on a node that no keyspace can be named like stops the upload, loudly
    (sim.data_dir(nodes[0]) / "bad name;x").mkdir()
    try:
        with clusters_file(tmp_path, base):
            states = run_dag(load_dag("cassandra_hostile"), "2026-11-24T05:00:00")
        assert states["upload[0]"] == "failed" and states["upload[1]"] == "success", states
    finally:
        (sim.data_dir(nodes[0]) / "bad name;x").rmdir()


def fake_manifest(day: str, host: str, tag: str, hosts: list[str]) -> str:
    from airflow_backup_provider.stores import cassandra_manifest

    return cassandra_manifest.Manifest(
        cluster="ret", host=host, day=day, tag=tag, run_id="x", created_at=f"{day[:4]}-{day[4:6]}-{day[6:]}T01:00:00+00:00",
        mode="full", files=(), cluster_hosts=tuple(hosts),
    ).to_json()


def test_retention_keeps_what_the_policy_says(sandbox, airflow_db, proxy, s3, tmp_path):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, {"shop": ["orders"]})
    hosts = [n.address for n in nodes]
    for day in ("20261101", "20261102", "20261103", "20261104", "20261105", "20261106"):
        present = hosts if day != "20261106" else hosts[:1]  # the 6th: one node's manifest only
        for host in present:
            tag = f"abp-{day}T010000-00000000"
            s3.put_object(Bucket=BUCKET, Key=f"backups/ret/{day}/{host}/backup-meta/{tag}/manifest.json", Body=fake_manifest(day, host, tag, hosts))
            s3.put_object(Bucket=BUCKET, Key=f"backups/ret/{day}/{host}/shop/orders-x/nb-1-big-Data.db.zst", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="backups/ret/notes/readme.txt", Body=b"not ours")
    s3.put_object(Bucket=BUCKET, Key="backups/ret/20261130/127.0.0.1/backup-meta/abp-x/manifest.json", Body=fake_manifest("20261130", "127.0.0.1", "abp-x", ["127.0.0.1"]))
    with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "ret", retention={"keep_last": 3})):
        states = run_dag(load_dag("cassandra_ret"), "2026-11-10T01:00:00")
    assert states["retention"] == "success", states
    days = sorted({k.split("/")[2] for k in all_keys(s3, BUCKET, "backups/ret/")})
    # keep_last 3 of the complete days up to the run: 10th (this run), 5th, 4th; the 6th is
    # incomplete (never counted, never pruned); the 30th is after the run's date; notes/ is not ours
    assert days == ["20261104", "20261105", "20261106", "20261110", "20261130", "notes"]


def test_demo_entry_dry_run_then_backup_and_restore(sandbox, airflow_db, s3, tmp_path):
    """The example entry of dags/clusters.yaml, prepared by tests/sandbox/kinds/cassandra.py."""
    import yaml

    from tests.harness import REPO

    example = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    entry = next(e for e in example["entries"] if e["kind"] == "cassandra")
    fresh_bucket(s3, entry["bucket"])
    prepared = sim.prepare(sandbox, entry)
    assert [n["host"] for n in prepared["nodes"]] == [n.address for n in sandbox.nodes]
    example["entries"] = [prepared]
    example["defaults"].update({"retries": 0, "schedule": None})
    runs = sim.demo_runs(prepared)
    assert [dag_id for dag_id, _ in runs] == ["cassandra_events", "cassandra_events_restore"]
    with clusters_file(tmp_path, example):
        backup = load_dag(runs[0][0])
        states = run_dag(backup, "2026-11-26T01:00:00", conf={"dry_run": True})
        assert states["report"] == "success", states
        assert not all_keys(s3, entry["bucket"])
        assert not list(sim.data_dir(sandbox.nodes[0]).glob("*/*/snapshots/*"))
        for (dag_id, conf), logical in zip(runs, ("2026-11-26T02:00:00", "2026-11-27T00:00:00"), strict=True):
            states = run_dag(load_dag(dag_id), logical, conf=conf)
            assert states["report"] == "success", (dag_id, states)
    restored = Path(prepared["restore_folder"].replace("{host}", sandbox.nodes[0].address))
    assert (restored / "schema.cql").exists()
    # user keyspaces and, by default, the cluster-wide system keyspaces (but system_traces, which
    # the example entry leaves out of its backups); never the node-local `system`
    assert entry["exclude_keyspaces"] == ["system_traces"]
    assert {p.name for p in restored.iterdir() if p.is_dir()} == {
        "shop", "metrics", "audit", "system_schema", "system_auth", "system_distributed"
    }


def test_node_hook_snapshot_is_idempotent_per_tag_and_failures_are_clear(sandbox):
    from airflow_backup_provider.hooks.cassandra import CassandraNodeHook
    from airflow_backup_provider.hooks.remote import RemoteCommandError
    from airflow_backup_provider.stores import cassandra_files

    node = sandbox.nodes[2]
    sim.reset_node(node, {"shop": ["orders"]})
    sim.write(node, "shop", "orders", 1000, seed=1)
    with CassandraNodeHook(ssh_conn_id="backup_ssh", host=node.address) as remote:
        first = remote.snapshot("abp-20261120T000000-aaaaaaaa")
        again = remote.snapshot("abp-20261120T000000-aaaaaaaa")  # a retried task
        assert not first.already_exists and again.already_exists
        assert [s.tag for s in remote.list_snapshots()] == ["abp-20261120T000000-aaaaaaaa"]
        sim.set_failure(node, "snapshot", "Keyspace shop is being dropped")
        with pytest.raises(RemoteCommandError, match="error: Keyspace shop is being dropped"):
            remote.snapshot("abp-20261120T000000-bbbbbbbb")
        sim.set_failure(node, "flush", "connect")
        with pytest.raises(RemoteCommandError, match="Failed to connect to '127.0.0.1:7199'"):
            remote.flush()
        sim.set_failure(node, "snapshot")
        sim.set_failure(node, "flush")
        # a keyspace folder moved to another disk and symlinked back is followed, not skipped
        moved = node.root / "other_disk" / "shop"
        moved.parent.mkdir(exist_ok=True)
        (sim.data_dir(node) / "shop").rename(moved)
        (sim.data_dir(node) / "shop").symlink_to(moved)
        walk = remote.walk(str(sim.data_dir(node)), "abp-20261120T000000-aaaaaaaa", cassandra_files.Scope())
        assert {f.keyspace for f in walk.files} == {"shop"} and any(f.name.endswith("-Data.db") for f in walk.files)
        assert remote.clear_snapshot("abp-20261120T000000-aaaaaaaa") == ()
        assert remote.list_snapshots() == []


def test_a_failed_snapshot_stops_every_upload_and_alerts(sandbox, airflow_db, proxy, s3, tmp_path, mails):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, {"shop": ["orders"]})
    sim.set_failure(nodes[1], "snapshot", "Keyspace shop is being dropped")
    proxy.reset()
    try:
        with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "halt")):
            dag = load_dag("cassandra_halt")
            states = run_dag(dag, "2026-11-28T01:00:00")
            assert states["snapshot[1]"] == "failed", states
            assert all(states[f"upload[{i}]"] == "upstream_failed" for i in range(3)), states
            assert states["verify"] == "failed" and states["report"] == "failed", states
            assert not proxy.object_writes(BUCKET)  # not one byte uploaded before every snapshot existed
            assert any("FAILED" in m["subject"] and "cassandra_halt" in m["subject"] for m in mails)
            stale = list(sim.data_dir(nodes[0]).glob("*/*/snapshots/abp-*"))
            assert stale  # kept: the run failed before anything was verified

            # the next good run clears this project's older snapshots too
            sim.set_failure(nodes[1], "snapshot")
            states = run_dag(dag, "2026-11-28T06:00:00")
            assert states["report"] == "success", states
            assert not list(sim.data_dir(nodes[0]).glob("*/*/snapshots/abp-*"))
    finally:
        sim.set_failure(nodes[1], "snapshot")


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "256k"):
    """A real full disk: a tmpfs of `size` at `folder` (the sandbox runs as root), unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_the_restore_naming_node_and_folder_and_leaves_no_complete_looking_file(
    sandbox, airflow_db, proxy, s3, tmp_path, mails
):
    from airflow_backup_provider.hooks.cassandra import CassandraNodeHook

    node = sandbox.nodes[0]
    with small_disk(tmp_path / "tiny") as tiny:
        # the cause: paramiko's pipelined writes reported nothing when the disk was full
        with CassandraNodeHook(ssh_conn_id="backup_ssh", host=node.address) as remote:
            with pytest.raises(OSError):
                with remote.open_for_write(str(tiny / "big")) as handle:
                    handle.write(os.urandom(400_000))
        (tiny / "big").unlink()

        fresh_bucket(s3, BUCKET)
        nodes = sim.setup_cluster(sandbox, LAYOUT, rows=80_000)
        entry = entry_for(sandbox, tmp_path, "tiny")
        entry["entries"][0]["restore_folder"] = str(tiny / "{host}")
        with clusters_file(tmp_path, entry):
            states = run_dag(load_dag("cassandra_tiny"), "2026-11-29T01:00:00")
            assert states["report"] == "success", states
            (manifest,) = [m for m in manifests_in(s3, f"backups/tiny/20261129/{nodes[0].address}/")]
            assert sum(f["size"] for f in manifest["files"]) > 256 * 1024  # more than the disk holds
            states = run_dag(
                load_dag("cassandra_tiny_restore"), "2026-11-30T00:00:00", conf={"hosts": [nodes[0].address]}
            )
        assert states["restore[0]"] == "failed" and states["report"] == "failed", states
        alert = [m for m in mails if "cassandra_tiny_restore" in m["subject"] and "restore" in m["body"]]
        text = " ".join(m["body"] for m in alert)
        assert f"{nodes[0].address}: writing " in text and f"into restore folder {tiny}/{nodes[0].address}" in text, text
        expected = {f["path"]: f["sha256"] for f in manifest["files"]}
        left = [p for p in (tiny / nodes[0].address).rglob("*") if p.is_file()]
        for path in left:
            relative = str(path.relative_to(tiny / nodes[0].address))
            # what stays has its real name only when complete and right; no `.part` is left behind
            assert not path.name.endswith(".part"), relative
            assert hashlib.sha256(path.read_bytes()).hexdigest() == expected[relative], relative


def test_restore_names_are_checked_in_the_plan_and_the_form_chooses_the_system_keyspaces(
    sandbox, airflow_db, proxy, s3, tmp_path, mails
):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, {"Shop_EU": ["Orders"], "audit": ["events"]})
    with clusters_file(tmp_path, entry_for(sandbox, tmp_path, "names")):
        states = run_dag(load_dag("cassandra_names"), "2026-12-01T01:00:00")
        assert states["report"] == "success", states
        # backed up by default: every keyspace, Cassandra's own included
        manifest = manifests_in(s3, f"backups/names/20261201/{nodes[0].address}/")[0]
        assert {f["path"].split("/")[0] for f in manifest["files"]} == {"Shop_EU", "audit", *sim.SYSTEM_LAYOUT}
        restore = load_dag("cassandra_names_restore")
        # every param given each run: dag.test() keeps a param of the run before otherwise
        form = {"date": "2026-12-01", "hosts": [], "keyspaces": [], "tables": [], "system_keyspaces": "cluster"}

        def restored_keyspaces(node) -> set[str]:
            folder = tmp_path / "restore" / node.address
            return {p.name for p in folder.iterdir() if p.is_dir()} if folder.exists() else set()

        # the wrong case fails in the plan, at once, naming the close match; no host starts
        for logical, conf, needle in (
            ("2026-12-02T01:00:00", {"keyspaces": ["shop_eu"]}, "param 'keyspaces': value 'shop_eu' is not in the backup of 20261201; did you mean 'Shop_EU'? (names are case-sensitive)"),
            ("2026-12-02T02:00:00", {"tables": ["Shop_EU.orders"]}, "param 'tables': value 'Shop_EU.orders' is not in the backup of 20261201; did you mean 'Shop_EU.Orders'?"),
        ):
            mails.clear()
            states = run_dag(restore, logical, conf={**form, **conf})
            assert states["plan"] == "failed" and states["report"] == "failed", (conf, states)
            assert "restore[0]" not in states or states["restore[0]"] != "failed", states
            assert any(needle in html.unescape(m["body"]) for m in mails), (needle, [m["subject"] for m in mails])
        assert not (tmp_path / "restore").exists()

        users = {"Shop_EU", "audit"}
        for choice, expected in (
            (None, users | {"system_schema", "system_auth", "system_distributed", "system_traces"}),
            ("none", users),
            ("all", users | set(sim.SYSTEM_LAYOUT)),
        ):
            shutil.rmtree(tmp_path / "restore", ignore_errors=True)
            conf = {**form, "hosts": [nodes[0].address], "system_keyspaces": choice or "cluster"}
            states = run_dag(restore, "2026-12-02T00:00:00", conf=conf)
            assert states["report"] == "success", (choice, states)
            assert restored_keyspaces(nodes[0]) == expected, choice
        # a system keyspace asked for by name comes whatever the choice
        shutil.rmtree(tmp_path / "restore", ignore_errors=True)
        states = run_dag(
            restore, "2026-12-02T00:00:00",
            conf={**form, "hosts": [nodes[0].address], "keyspaces": ["system"], "system_keyspaces": "none"},
        )
        assert states["report"] == "success", states
        assert restored_keyspaces(nodes[0]) == {"system"}
