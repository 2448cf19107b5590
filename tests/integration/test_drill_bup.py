"""The bup restore drill on the sandbox: real bup, the repository on the server node over real sshd,
its S3 copy on moto. A good save passes; a changed or deleted object of the S3 copy and a truncated
pack fail naming it; no scratch folder is left and the repository, the host's files and the
bucket's backup objects are unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.harness import clusters_file, load_dag, run_dag, task_states, xcom
from tests.integration.test_bup import BUCKET, example_entry
from tests.sandbox.kinds import bup as bup_kind

pytestmark = pytest.mark.sandbox


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + oct(path.lstat().st_mode).encode())
        if path.is_file() and not path.is_symlink():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def bucket_objects(sandbox, prefix: str) -> dict[str, str]:
    s3 = sandbox.boto3_client("s3")
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents") or []:
            if not obj["Key"].endswith(".drill.json"):
                found[obj["Key"]] = hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()).hexdigest()
    return found


def live(sandbox, entry) -> dict:
    return {
        "repo": tree_digest(Path(entry["server"]["repo_dir"])),
        "files": [tree_digest(Path(p)) for p in entry["paths"]],
        "bucket": bucket_objects(sandbox, f"bup/{entry['name']}/"),
    }


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*")] if folder.exists() else []


def site_for(sandbox, name: str) -> dict:
    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": name})
    data = Path(entry["paths"][0])
    (data / "blobs").mkdir(exist_ok=True)
    (data / "blobs" / "large.bin").write_bytes(os.urandom(3_000_000))  # bup stores it in chunks
    (data / "blobs" / "empty").mkdir(exist_ok=True)
    link = data / "blobs" / "readme-link"
    if not link.is_symlink():
        link.symlink_to("../README")
    (data / "blobs" / "secret.key").write_text("k\n")
    (data / "blobs" / "secret.key").chmod(0o600)
    drills = sandbox.nodes[-1].root / "drills"
    entry.update(
        retries=0, alert_emails=["oncall@example.com"], prune=False, drill_folder=str(drills),
        s3_sync={**entry["s3_sync"], "drill_sample": None},
    )
    return entry


def run(tmp_path, entry, suffix="", date="2026-11-20", conf=None):
    with clusters_file(tmp_path, {"entries": [{"kind": "bup", **entry}]}):
        return run_dag(load_dag(f"bup_{entry['name']}{suffix}"), date, conf=conf)


def last_run_id(dag_id: str) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(DagRun).filter_by(dag_id=dag_id).order_by(DagRun.id.desc()).first().run_id


def test_bup_drill_passes_then_catches_a_changed_and_a_deleted_s3_object(sandbox, airflow_db, tmp_path, mails):
    entry = site_for(sandbox, "drill1")
    drills = Path(entry["drill_folder"])
    assert run(tmp_path, entry, date="2026-11-20")["report"] == "success"
    assert run(tmp_path, entry, "_s3_sync", date="2026-11-21")["report"] == "success"

    before = live(sandbox, entry)
    states = run(tmp_path, entry, "_drill", date="2026-11-22")
    assert states["drill"] == "success" and states["drill_s3_copy"] == "success", states
    assert states["cleanup_scratch"] == "success" and states["report"] == "success", states
    assert leftovers(drills) == []
    assert live(sandbox, entry) == before
    outcome = xcom("bup_drill1_drill", last_run_id("bup_drill1_drill"), "drill", key="backup_outcome")
    (produced,) = outcome["produced"]
    assert produced["verdict"] == "passed" and produced["verified"] is True and "/drill1/2026-11-20-000000/" in produced["id"]
    assert "files" in outcome["detail"]
    copy = xcom("bup_drill1_drill", last_run_id("bup_drill1_drill"), "drill_s3_copy", key="backup_outcome")
    assert copy["produced"][0]["verdict"] == "passed"
    record = sandbox.boto3_client("s3").get_object(Bucket=BUCKET, Key="bup/drill1.drill.json")
    assert b'"verdict": "passed"' in record["Body"].read() and record["ServerSideEncryption"] == "AES256"

    # one byte of one object of the S3 copy changed: the copy's check fails naming it; the repository's passes
    s3 = sandbox.boto3_client("s3")
    key = sorted(k for k in before["bucket"] if k.endswith(".pack"))[0]
    original = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=key, Body=original[:50] + bytes([original[50] ^ 0x80]) + original[51:])
    before = live(sandbox, entry)
    states = run(tmp_path, entry, "_drill", date="2026-11-23")
    assert states["drill"] == "success" and states["drill_s3_copy"] == "failed", states
    assert states["cleanup_scratch"] == "success" and states["report"] == "failed", states
    assert leftovers(drills) == [] and live(sandbox, entry) == before
    copy = xcom("bup_drill1_drill", last_run_id("bup_drill1_drill"), "drill_s3_copy", key="backup_outcome")
    assert copy["status"] == "failed" and key in copy["detail"] and copy["produced"][0]["verdict"] == "failed"
    assert any("bup_drill1_drill" in m["subject"] and key in m["body"] for m in mails)

    # another object deleted
    s3.put_object(Bucket=BUCKET, Key=key, Body=original)
    gone = sorted(k for k in before["bucket"] if k.endswith(".idx"))[0]
    s3.delete_object(Bucket=BUCKET, Key=gone)
    states = run(tmp_path, entry, "_drill", date="2026-11-24")
    assert states["drill_s3_copy"] == "failed" and states["cleanup_scratch"] == "success", states
    copy = xcom("bup_drill1_drill", last_run_id("bup_drill1_drill"), "drill_s3_copy", key="backup_outcome")
    assert f"{gone}: missing from the bucket" in copy["detail"]


def test_bup_drill_fails_on_a_truncated_pack_and_leaves_nothing(sandbox, airflow_db, tmp_path, mails):
    entry = {**site_for(sandbox, "drill2"), "s3_sync": None}
    drills = Path(entry["drill_folder"])
    assert run(tmp_path, entry, date="2026-11-20")["report"] == "success"
    repo = Path(entry["server"]["repo_dir"])
    pack = max((repo / "objects" / "pack").glob("*.pack"), key=lambda p: p.stat().st_size)
    pack.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    before = live(sandbox, entry)
    states = run(tmp_path, entry, "_drill", date="2026-11-21")
    assert states["drill"] == "failed" and states["cleanup_scratch"] == "success" and states["report"] == "failed", states
    assert "drill_s3_copy" not in states
    assert leftovers(drills) == [] and live(sandbox, entry) == before
    outcome = xcom("bup_drill2_drill", last_run_id("bup_drill2_drill"), "drill", key="backup_outcome")
    assert outcome["status"] == "failed" and outcome["produced"][0]["verdict"] == "failed"
    assert pack.stem in outcome["detail"] and "bup fsck" in outcome["detail"], outcome["detail"]
    assert any("bup_drill2_drill" in m["subject"] and "FAILED" in m["subject"] for m in mails)
    assert task_states("bup_drill2_drill", last_run_id("bup_drill2_drill"))["drill"] == "failed"
