"""The devicedb restore drill on the 3-node sandbox cluster: a good snapshot passes; a changed
byte, a deleted tar, or a tar that is no LevelDB store fails naming the key; the scratch folder
is gone either way and the nodes' stores and the backup objects are unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.devicedb_fixtures import s3_json, s3_objects
from tests.harness import clusters_file, load_dag, run_dag
from tests.sandbox.core import wait_until

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


SERVE = ["devicedb-service", "serve", "-conf"]


def scratch_processes(folder: Path) -> list[str]:
    """Every process on this machine (the sandbox nodes are local) whose command line names the drill folder."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def store_tar_with_check(original: bytes, check: dict, value: str | None) -> bytes:
    """The node tar with the check key's records in its LevelDB log rewritten to `value` (None: gone)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(original)) as src, tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "000001.log":
                lines = []
                for line in data.decode().splitlines():
                    record = json.loads(line) if line.strip() else {}
                    if record.get("op") == "put" and (record["site"], record["bucket"], record["key"]) == (
                        check["site"], check["bucket"], check["key"]
                    ):
                        if value is None:
                            continue
                        record["value"] = value
                        line = json.dumps(record, sort_keys=True)
                    lines.append(line)
                data = ("\n".join(lines) + "\n").encode()
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_devicedb_drill_reads_the_check_key_back_from_a_scratch_node(airflow_db, sandbox, mails, devicedb, bucket, tmp_path):
    for i in range(4):
        devicedb.write(f"key{i}", f"value{i}", node=i % 3)
    drill_folder = tmp_path / "drills"
    drill_node = sandbox.nodes[1]  # a live node's machine: the scratch node must keep off its store and port
    entry = {
        **devicedb.entry("ddbnode", bucket),
        "drill_folder": str(drill_folder),
        "drill_host": drill_node.address,
        "drill_serve_command": SERVE,
    }
    s3 = sandbox.boto3_client("s3")
    with clusters_file(tmp_path, {"entries": [entry]}):
        assert run_dag(load_dag("devicedb_ddbnode"), "2026-11-20")["report"] == "success"
        (manifest_key,) = [k for k in s3_objects(sandbox, bucket) if k.endswith("/manifest.json")]
        manifest = s3_json(sandbox, bucket, manifest_key)
        check = manifest["check"]
        assert check and check["value"], manifest
        record_key = manifest_key + ".drill.json"
        drill = load_dag("devicedb_ddbnode_drill")

        before = live_digest(sandbox, devicedb, bucket)
        states = run_dag(drill, "2026-11-21")
        assert states["drill"] == "success" and states["cleanup_scratch"] == "success" and states["report"] == "success", states
        record = s3_json(sandbox, bucket, record_key)
        assert record["verdict"] == "passed" and "check key read back" in record["checked"], record
        assert leftovers(drill_folder) == [] and scratch_processes(drill_folder) == []
        assert live_digest(sandbox, devicedb, bucket) == before
        assert devicedb.running(drill_node) and devicedb.read("key1", node=1) == ["value1"]

        # the first node's store (the one the scratch node serves) holds another value of the check key:
        # its tar rewritten, and the manifest's size and SHA-256 with it, so that only the read-back can tell
        piece = manifest["nodes"][0]
        original = s3.get_object(Bucket=bucket, Key=piece["key"])["Body"].read()
        for value, found in (("tampered-value", "'tampered-value'"), (None, "nothing (the key is missing)")):
            tampered = store_tar_with_check(original, check, value)
            s3.put_object(Bucket=bucket, Key=piece["key"], Body=tampered)
            rewritten = json.loads(json.dumps(manifest))
            rewritten["nodes"][0].update(size=len(tampered), sha256=hashlib.sha256(tampered).hexdigest())
            s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(rewritten).encode())
            before = live_digest(sandbox, devicedb, bucket)
            states = run_dag(drill, "2026-11-22" if value else "2026-11-23")
            assert states["drill"] == "failed" and states["cleanup_scratch"] == "success" and states["report"] == "failed", states
            problems = s3_json(sandbox, bucket, record_key)["problems"]
            assert problems == [
                f"node {piece['node']}: check key {check['key']!r} (site {check['site']!r}, bucket {check['bucket']!r}) "
                f"reads {found}, the backup recorded {check['value']!r}"
            ], problems
            assert leftovers(drill_folder) == [] and scratch_processes(drill_folder) == []
            assert live_digest(sandbox, devicedb, bucket) == before
            assert devicedb.running(drill_node)
        assert any("devicedb_ddbnode_drill" in m["subject"] and check["key"] in m["body"] for m in mails)


def test_cleanup_stops_a_scratch_server_the_drill_left_running(airflow_db, sandbox, tmp_path):
    """cleanup_scratch (all_done) stops whatever a drill that died midway left running in its
    scratch folder, before it removes the folder."""
    from airflow_backup_provider.hooks.drill import ScratchHook

    node = sandbox.nodes[2]
    scratch = str(tmp_path / "drills" / "dag" / "run")
    with ScratchHook(ssh_conn_id="backup_ssh", host=node.address, port=22, scratch=scratch) as hook:
        hook.makedirs(scratch)
        job = hook.job("devicedb-scratch-node", ("sleep", "600"))
        assert hook.start_job(job) == "started"
        wait_until(lambda: hook.job_alive(job), timeout=10, what="the scratch job running")
        group = int(Path(job.job_dir, "pid").read_text())
        assert [p for p in Path("/proc").iterdir() if p.name.isdigit() and pgid(int(p.name)) == group]
        assert hook.remove_scratch() is True
        assert not hook.job_alive(job)
    assert leftovers(tmp_path / "drills") == []
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and pgid(int(p.name)) == group]


def pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
