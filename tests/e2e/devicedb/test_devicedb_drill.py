"""The devicedb restore drill on the 3-node sandbox cluster: a good snapshot passes; a changed
byte, a deleted tar, or a tar that is no LevelDB store fails naming the key; the scratch folder
is gone either way and the nodes' stores and the backup objects are unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.devicedb_fixtures import s3_json, s3_objects
from tests.harness import clusters_file, load_dag, run_dag

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def live_digest(sandbox, devicedb, bucket: str) -> dict:
    s3 = sandbox.boto3_client("s3")
    return {
        "stores": {n.address: tree_digest(devicedb.store_dir(n)) for n in sandbox.nodes},
        "bucket": {
            k: hashlib.sha256(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
            for k in s3_objects(sandbox, bucket)
            if not k.endswith(".drill.json")
        },
    }


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*")] if folder.exists() else []


def not_a_store_tar() -> bytes:
    """A tar a restore must refuse: a member in a sub-folder, no MANIFEST-*."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (("CURRENT", b"MANIFEST-000001\n"), ("sub/000001.log", b"x" * 100)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_devicedb_drill_passes_then_fails_naming_the_tampered_tar(airflow_db, sandbox, mails, devicedb, bucket, tmp_path):
    for i in range(5):
        devicedb.write(f"key{i}", f"value{i}", node=i % 3)
    drill_folder = tmp_path / "drills"
    entry = {**devicedb.entry("ddbdrill", bucket), "drill_folder": str(drill_folder)}
    s3 = sandbox.boto3_client("s3")
    with clusters_file(tmp_path, {"entries": [entry]}):
        assert run_dag(load_dag("devicedb_ddbdrill"), "2026-11-20")["report"] == "success"
        (manifest_key,) = [k for k in s3_objects(sandbox, bucket) if k.endswith("/manifest.json")]
        manifest = s3_json(sandbox, bucket, manifest_key)
        record_key = manifest_key + ".drill.json"
        drill = load_dag("devicedb_ddbdrill_drill")

        before = live_digest(sandbox, devicedb, bucket)
        # a dry run says what it would check, and reads and writes nothing more
        states = run_dag(drill, "2026-11-20", conf={"dry_run": True})
        assert states["drill"] == "success" and states["report"] == "success", states
        assert record_key not in s3_objects(sandbox, bucket) and leftovers(drill_folder) == []
        states = run_dag(drill, "2026-11-21")
        assert states["drill"] == "success" and states["cleanup_scratch"] == "success" and states["report"] == "success", states
        assert leftovers(drill_folder) == []
        assert live_digest(sandbox, devicedb, bucket) == before
        record = s3_json(sandbox, bucket, record_key)
        assert record["verdict"] == "passed" and record["files"] == 3 and record["bytes"] == manifest["total_size"]

        # one byte of one node's tar changed
        key = manifest["nodes"][1]["key"]
        original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=key, Body=original[:100] + bytes([original[100] ^ 1]) + original[101:])
        before = live_digest(sandbox, devicedb, bucket)
        states = run_dag(drill, "2026-11-22")
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success" and states["report"] == "failed", states
        assert leftovers(drill_folder) == []
        assert live_digest(sandbox, devicedb, bucket) == before
        record = s3_json(sandbox, bucket, record_key)
        assert record["verdict"] == "failed" and any(p.startswith(f"{key}: ") and "SHA-256" in p for p in record["problems"]), record
        assert any("devicedb_ddbdrill_drill" in m["subject"] and key in m["body"] for m in mails)
        s3.put_object(Bucket=bucket, Key=key, Body=original)

        # a tar whose size and SHA-256 match a (rewritten) manifest but which is no LevelDB store
        bad = not_a_store_tar()
        other = manifest["nodes"][2]["key"]
        s3.put_object(Bucket=bucket, Key=other, Body=bad)
        rewritten = json.loads(json.dumps(manifest))
        rewritten["nodes"][2].update(size=len(bad), sha256=hashlib.sha256(bad).hexdigest())
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(rewritten).encode())
        states = run_dag(drill, "2026-11-23")
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success", states
        problems = s3_json(sandbox, bucket, record_key)["problems"]
        assert any(p.startswith(f"{other}: ") and "LevelDB" in p for p in problems), problems

        # a deleted tar
        s3.delete_object(Bucket=bucket, Key=other)
        states = run_dag(drill, "2026-11-24")
        assert states["drill"] == "failed" and states["cleanup_scratch"] == "success", states
        assert leftovers(drill_folder) == []
        problems = s3_json(sandbox, bucket, record_key)["problems"]
        assert problems == [f"{other}: missing from the bucket"], problems
