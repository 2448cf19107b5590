"""Cassandra backup and restore DAGs on the 3-node sandbox (real sshd, moto S3 behind a proxy)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
            "extra": {"region_name": "us-east-1", "endpoint_url": proxy.url},
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
            for path in sorted(source.iterdir()):
                if path.is_file() and path.name not in ("manifest.json", "schema.cql"):
                    result[f"{table_dir.parent.name}/{table_dir.name}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def test_full_cycle_backup_verify_restore_byte_identical(sandbox, airflow_db, proxy, s3, tmp_path, mails):
    fresh_bucket(s3, BUCKET)
    nodes = sim.setup_cluster(sandbox, LAYOUT)
    # keep the snapshot on the nodes to compare with what comes back: fail cleanup's clearsnapshot
    for node in nodes:
        sim.set_failure(node, "clearsnapshot", "kept for the test")
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

        restore = load_dag("cassandra_full_restore")
        shutil.rmtree(tmp_path / "restore", ignore_errors=True)
        states = run_dag(restore, "2026-11-21T00:00:00", conf={"date": "2026-11-20"})
        assert states["next_steps"] == "success", states
        assert states["report"] == "success", states
        for node in nodes:
            restored = tree_digest(tmp_path / "restore" / node.address)
            assert restored.pop("schema.cql")
            assert restored == expected[node.address], node.address
            # never a byte into the live data folder
            assert not (sim.data_dir(node) / "restore").exists()
        steps = xcom("cassandra_full_restore", run_id_of(restore), "next_steps")
        assert "node restart method" in steps and "nodetool repair" in steps


def run_id_of(dag) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag.dag_id).order_by(DagRun.id.desc()).first()
        return run.run_id
