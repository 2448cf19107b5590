"""bup end to end on the sandbox: real bup on real sshd nodes, the repository on another node over
`bup -r`, a real sqlite3 database dumped into the staging folder, S3 on the moto server."""

from __future__ import annotations

import filecmp
import hashlib
import html
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from airflow_backup_provider.hooks.object_store import ObjectStoreHook, scan_folder
from tests.harness import REPO, clusters_file, load_dag, run_dag
from tests.sandbox.kinds import bup as bup_kind

pytestmark = pytest.mark.sandbox
BUCKET = "bup-offsite"


def example_entry() -> dict:
    raw = yaml.safe_load((REPO / "dags" / "clusters.yaml").read_text())
    entry = next(e for e in raw["entries"] if e["kind"] == "bup")
    entry = {**entry, "name": "it1", "s3_sync": {**entry["s3_sync"], "bucket": BUCKET}}
    return entry


@pytest.fixture(scope="module")
def site(sandbox, airflow_db) -> dict:
    entry = bup_kind.prepare(sandbox, example_entry())
    entry.update(retries=0, alert_emails=["oncall@example.com"], prune=False)
    return entry


def clusters(entry: dict, **overrides) -> dict:
    return {"defaults": {"retention": {"keep_last": 2}}, "entries": [{"kind": "bup", **entry, **overrides}]}


def run(tmp_path, entry, dag_suffix="", date="2026-11-20", conf=None, **overrides):
    with clusters_file(tmp_path, clusters(entry, **overrides)):
        dag = load_dag(f"bup_{entry['name']}{dag_suffix}")
        return run_dag(dag, date, conf=conf)


def bup(node_env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bup", *argv], capture_output=True, text=True, env={**node_env, "TZ": "UTC"}, check=False)


def saves(sandbox, entry) -> list[str]:
    server = sandbox.nodes[-1]
    done = bup(server.env(), "-d", entry["server"]["repo_dir"], "ls", "--file-type", f"/{entry['name']}")
    return [line.rstrip("/") for line in done.stdout.split() if line.endswith("/")]


def du(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def snapshot(entry: dict, dest: Path) -> Path:
    """A copy of everything the backup should hold, as it is now."""
    for source in [*entry["paths"], entry["staging_dir"]]:
        shutil.copytree(source, dest / source.strip("/"), symlinks=True)
    return dest


def assert_same_tree(expected: Path, actual: Path, *, skip_suffix: str = ".tmp") -> int:
    """Byte-identical files (and no extra/missing ones), except the excluded *.tmp."""
    wanted = {p.relative_to(expected) for p in expected.rglob("*") if p.is_file() and not p.name.endswith(skip_suffix)}
    got = {p.relative_to(actual) for p in actual.rglob("*") if p.is_file()}
    assert wanted == got
    for rel in wanted:
        assert filecmp.cmp(expected / rel, actual / rel, shallow=False), rel
    return len(wanted)


def modify(entry: dict) -> None:
    conf = Path(entry["paths"][0]) / "conf"
    (conf / "setting-000.conf").write_text("changed in version 2\n")
    (conf / "setting-001.conf").unlink()
    (conf / "new-in-v2.conf").write_text("new\n")
    db = Path(entry["dumps"][0]["argv"][1])
    bup_kind.make_app_db(db, rows=5, tag="v2")


def test_backup_two_versions_restore_each_byte_identical(site, sandbox, tmp_path):
    host = sandbox.nodes[0]
    states = run(tmp_path, site, date="2026-11-20")
    assert states == {"wait_for_other_runs": "success", "dumps": "success", "save": "success", "mail_report": "success", "report": "success"}, states
    staged = Path(site["staging_dir"]) / "app.sql"
    assert staged.read_text().startswith("PRAGMA foreign_keys=OFF;") and "customer-49" in staged.read_text()
    v1 = snapshot(site, tmp_path / "v1")

    modify(site)
    states = run(tmp_path, site, date="2026-11-21")
    assert states["save"] == "success", states
    assert "tag" in staged.read_text() and "'v2'" in staged.read_text()
    v2 = snapshot(site, tmp_path / "v2")
    assert saves(sandbox, site) == ["2026-11-20-000000", "2026-11-21-000000"]

    # v1 restored on the host (bup restore -r), v2 on the backup server itself (from its repo_dir)
    for save, expected, where in (("2026-11-20", v1, "host"), ("latest", v2, "server")):
        # path "/" restores the whole save: TARGET/<every saved absolute path>
        target = host.root / "restore" / f"it-{save}"
        conf = {"save": save, "path": "/", "target_dir": str(target), "where": where}
        states = run(tmp_path, site, "_restore", conf=conf)
        assert states["restore"] == "success", states
        assert assert_same_tree(expected, target) > 20
    assert not (v1 / site["paths"][0].strip("/") / "conf" / "new-in-v2.conf").exists()


def test_same_logical_date_saves_once_and_dedup_under_one_percent(site, sandbox, tmp_path):
    repo = site["server"]["repo_dir"]
    # a bigger file so that the repository is mostly data (what dedup is about)
    (Path(site["paths"][0]) / "blob.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    assert run(tmp_path, site, date="2026-11-22")["save"] == "success"
    before_saves = saves(sandbox, site)
    size_before = du(repo)
    # the same logical date again (a retry, a clear, a second trigger): skipped, no new save
    states = run(tmp_path, site, date="2026-11-22")
    assert states["save"] == "success"
    assert saves(sandbox, site) == before_saves
    # a new day, nothing changed: the repository grows by less than 1%
    assert run(tmp_path, site, date="2026-11-23")["save"] == "success"
    size_after = du(repo)
    assert saves(sandbox, site)[-1] == "2026-11-23-000000"
    growth = (size_after - size_before) / size_before
    assert 0 < growth < 0.01, (size_before, size_after, growth)


def test_failing_dump_fails_the_run_and_leaves_no_partial_file(site, sandbox, tmp_path, mails):
    dumps = [*site["dumps"], {"name": "broken", "argv": ["sh", "-c", "echo half; echo boom >&2; exit 3"], "output": "broken.sql"}]
    before = saves(sandbox, site)
    states = run(tmp_path, site, date="2026-11-24", dumps=dumps)
    assert states == {"wait_for_other_runs": "success", "dumps": "failed", "save": "upstream_failed", "mail_report": "success", "report": "failed"}, states
    staging = Path(site["staging_dir"])
    assert not (staging / "broken.sql").exists() and not (staging / "broken.sql.partial").exists()
    assert saves(sandbox, site) == before
    assert any("broken" in m["body"] and "exit code 3" in m["body"] for m in mails), [m["subject"] for m in mails]


def test_dump_secret_from_connection_reaches_the_command_only(site, sandbox, tmp_path, monkeypatch):
    secret = "s3cr3t pa$$ 'word'"
    monkeypatch.setenv(
        "AIRFLOW_CONN_APPDB_BACKUP", json.dumps({"conn_type": "generic", "login": "dumper", "password": secret})
    )
    dumps = [
        {"name": "env", "argv": ["printenv", "DUMP_PASSWORD"], "output": "env.txt",
         "env_from_connection": {"DUMP_PASSWORD": "appdb_backup.password"}},
        # 4 MiB of warnings on stderr (more than an SSH channel window) must not stall the dump
        {"name": "chatty", "argv": ["sh", "-c", "head -c 4194304 /dev/zero | tr '\\0' w >&2; echo done"],
         "output": "chatty.txt"},
    ]
    states = run(tmp_path, site, date="2026-11-25", dumps=dumps)
    assert states["dumps"] == "success", states
    staging = Path(site["staging_dir"])
    assert (staging / "env.txt").read_text() == secret + "\n"
    assert (staging / "chatty.txt").read_text() == "done\n"
    (staging / "env.txt").unlink()
    (staging / "chatty.txt").unlink()


def test_restore_refuses_a_non_empty_target(site, sandbox, tmp_path):
    target = sandbox.nodes[0].root / "restore" / "busy"
    target.mkdir(parents=True)
    (target / "live.db").write_text("live data")
    states = run(tmp_path, site, "_restore", conf={"save": "latest", "path": site["staging_dir"], "target_dir": str(target)})
    assert states["restore"] == "failed"
    assert [p.name for p in target.iterdir()] == ["live.db"]


def bodies(mails: list[dict]) -> list[str]:
    return [html.unescape(m["body"]) for m in mails]


def tree_state(root: str | Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime: what "nothing was written" compares."""
    root = Path(root)
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def test_restore_refuses_live_targets_before_writing_anything(site, sandbox, tmp_path, mails):
    """Into a backed-up path, into the repository, and through a symlink on the node (a name that
    looks harmless, resolved there into a backed-up path): refused, and nothing was written."""
    host = sandbox.nodes[0]
    assert run(tmp_path, site, date="2026-11-26")["save"] == "success"
    data, repo = Path(site["paths"][0]), Path(site["server"]["repo_dir"])
    (host.root / "restore").mkdir(exist_ok=True)
    link = host.root / "restore" / "harmless-looking"
    link.symlink_to(data)
    # each target new (absent): only where it is makes it wrong
    cases = [
        (str(data / "restored"), "host", str(data)),
        (f"{repo}/refs/heads/evil", "host", str(repo)),
        (f"{repo}/refs/heads/evil2", "server", str(repo)),
        (f"{site['staging_dir']}/restored/", "host", site["staging_dir"]),
        (str(link / "restored-via-link"), "host", str(data)),
    ]
    for target, where, protected in cases:
        before = {p: tree_state(p) for p in (data, repo, Path(site["staging_dir"]))}
        mails.clear()
        conf = {"save": "latest", "path": site["staging_dir"], "target_dir": target, "where": where}
        states = run(tmp_path, site, "_restore", conf=conf)
        assert states["restore"] == "failed", (target, where, states)
        assert {p: tree_state(p) for p in before} == before, target
        failure = next(body for body in bodies(mails) if "param 'target_dir'" in body)
        assert f"value {target!r}" in failure and f"inside {protected} " in failure, failure
    assert "resolves to" in failure  # the symlink: named as given and as resolved on the node
    assert not list(data.glob("restored*")) and not list((repo / "refs" / "heads").glob("evil*"))
    assert saves(sandbox, site)[-1] == "2026-11-26-000000"  # bup ls still reads the repository


def test_s3_sync_refuses_folders_other_than_the_repository(site, sandbox, tmp_path, mails):
    from airflow.sdk.definitions.param import ParamValidationError

    repo = Path(site["server"]["repo_dir"])
    keys_before = all_keys(sandbox, BUCKET)
    # the form refuses '..' and '/' before a run exists
    for value in ("/tmp/../etc", "/"):
        with pytest.raises(ParamValidationError, match="local_dir"):
            run(tmp_path, site, "_s3_sync", date="2026-12-02", conf={"direction": "upload", "local_dir": value})
    # a folder outside the repository (and the operator's own checks, whoever calls it): the task
    # fails before it reads a file
    for value in (str(repo.parent),):
        mails.clear()
        states = run(tmp_path, site, "_s3_sync", date="2026-12-03", conf={"direction": "upload", "local_dir": value})
        assert states["s3_sync"] == "failed", (value, states)
        assert any(f"local_dir: value {value!r}" in body for body in bodies(mails)), bodies(mails)
    assert all_keys(sandbox, BUCKET) == keys_before

    from airflow_backup_provider.operators.s3_sync import S3SyncOperator

    op = S3SyncOperator(
        task_id="s3_sync", local_dir="/tmp/../etc", bucket=BUCKET, prefix=f"bup/{site['name']}",
        upload_root=str(repo),
    )
    with pytest.raises(ValueError, match=r"local_dir: value '/tmp/\.\./etc' must not contain '\.\.'"):
        op.execute({"params": {"dry_run": False}})
    op.local_dir = "/"
    with pytest.raises(ValueError, match=r"local_dir: value '/' is the root folder: refused"):
        op.execute({"params": {"dry_run": False}})
    assert all_keys(sandbox, BUCKET) == keys_before

    # a download lands neither in a folder that holds anything nor in live data
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    data = Path(site["paths"][0])
    for target in (busy, data / "from-s3", repo / "from-s3"):
        before = tree_state(busy), tree_state(data), tree_state(repo)
        states = run(tmp_path, site, "_s3_sync", date="2026-12-04", conf={"direction": "download", "local_dir": str(target)})
        assert states["s3_sync"] == "failed", (target, states)
        assert (tree_state(busy), tree_state(data), tree_state(repo)) == before, target


def count_puts(monkeypatch) -> list[str]:
    """Record every S3 write request the sync hook makes (PutObject, multipart parts)."""
    calls: list[str] = []
    original = ObjectStoreHook.get_conn

    def get_conn(self):
        client = original(self)
        if not getattr(client, "_put_counter", False):
            for op in ("PutObject", "UploadPart", "CreateMultipartUpload"):
                client.meta.events.register(f"before-parameter-build.s3.{op}", lambda params, model, **kw: calls.append(f"{model.name} {params.get('Key')}"))
            client._put_counter = True
        return client

    monkeypatch.setattr(ObjectStoreHook, "get_conn", get_conn)
    return calls


def test_s3_sync_uploads_only_changed_files_then_disaster_recovery(site, sandbox, tmp_path, monkeypatch):
    repo = Path(site["server"]["repo_dir"])
    assert run(tmp_path, site, date="2026-11-27")["save"] == "success"
    calls = count_puts(monkeypatch)
    states = run(tmp_path, site, "_s3_sync", date="2026-11-28")
    assert states == {"wait_for_other_runs": "success", "fsck": "success", "s3_sync": "success", "mail_report": "success", "report": "success"}, states
    assert list(repo.rglob("*.par2")), "fsck with par2 installed writes recovery blocks"
    first = scan_folder(repo)
    assert len([c for c in calls if c.startswith("PutObject")]) >= len(first)

    # nothing changed: nothing is written
    calls.clear()
    hook = ObjectStoreHook(aws_conn_id="aws_default")
    prefix = f"bup/{site['name']}"
    result = hook.sync_up(repo, BUCKET, prefix)
    assert result.copied == [] and result.unchanged == len(first) and calls == []

    # a new backup changes a few repository files: exactly those are uploaded
    (Path(site["paths"][0]) / "conf" / "setting-005.conf").write_text("changed before the sync\n")
    assert run(tmp_path, site, date="2026-11-29")["save"] == "success"
    second = scan_folder(repo)
    changed = sorted(r for r, s in second.items() if first.get(r) != s)
    assert 0 < len(changed) < len(second) / 2
    calls.clear()
    result = hook.sync_up(repo, BUCKET, prefix)
    assert sorted(result.copied) == changed
    put_keys = sorted(c.split(" ", 1)[1] for c in calls if c.startswith(("PutObject", "CreateMultipartUpload")))
    assert put_keys == sorted([f"{prefix}/{r}" for r in changed] + [f"{prefix}/.s3sync-manifest.json"])

    # a download never lands on a folder that holds anything (such as the live repository)
    before = scan_folder(repo)
    states = run(tmp_path, site, "_s3_sync", date="2026-11-30", conf={"direction": "download", "local_dir": str(repo)})
    assert states["s3_sync"] == "failed" and scan_folder(repo) == before

    # the backup server is gone: pull the repository back into an empty folder, then restore
    rebuilt = tmp_path / "rebuilt-repo"
    rebuilt.mkdir()
    states = run(tmp_path, site, "_s3_sync", date="2026-11-30", conf={"direction": "download", "local_dir": str(rebuilt)})
    assert states == {"wait_for_other_runs": "success", "fsck": "skipped", "s3_sync": "success", "mail_report": "success", "report": "success"}, states
    assert scan_folder(rebuilt).keys() == scan_folder(repo).keys()
    env = {**os.environ, "TZ": "UTC"}
    check = subprocess.run(["bup", "-d", str(rebuilt), "fsck", "--quick"], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stderr
    out = tmp_path / "dr-restore"
    staging = site["staging_dir"]
    done = subprocess.run(
        ["bup", "-d", str(rebuilt), "restore", "-C", str(out), f"/{site['name']}/latest{staging}/"],
        capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "app.sql").read_bytes() == (Path(staging) / "app.sql").read_bytes()


def test_prune_keeps_policy_newest_and_future_saves(sandbox, airflow_db, tmp_path):
    from datetime import UTC, datetime

    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": "pr1", "s3_sync": None})
    entry.update(retries=0, prune=True, dumps=[])
    host = sandbox.nodes[0]
    env = {**host.env(), "TZ": "UTC"}
    remote = f"{entry['server']['user']}@{entry['server']['host']}:{entry['server']['repo_dir']}"
    Path(entry["bup_dir"]).mkdir(parents=True)
    for argv in (["init", "-r", remote], ["index", *entry["paths"]]):
        subprocess.run(["bup", "-d", entry["bup_dir"], *argv], env=env, check=True, capture_output=True)
    for day in ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-12-09"):
        when = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        subprocess.run(
            ["bup", "-d", entry["bup_dir"], "save", "-r", remote, "-n", "pr1", f"--date={when}", *entry["paths"]],
            env=env, check=True, capture_output=True,
        )
    everything = ["2026-11-01-000000", "2026-11-02-000000", "2026-11-03-000000", "2026-11-04-000000", "2026-12-09-000000"]
    assert saves(sandbox, entry) == everything

    events_before = repository_events("bup_pr1_repository")
    states = run(tmp_path, entry, date="2026-11-05", conf={"dry_run": True})
    assert states == {"wait_for_other_runs": "success", "save": "skipped", "prune": "success", "report": "success"}, states
    assert saves(sandbox, entry) == everything  # a dry run changes nothing
    # ... and emits no Asset event: a dry run must not start the S3 sync of a save never made
    assert repository_events("bup_pr1_repository") == events_before

    states = run(tmp_path, entry, date="2026-11-05")
    assert states["prune"] == "success", states
    # keep_last 2 of the saves up to the logical date; the 2026-12-09 save is newer: not this run's to judge
    assert saves(sandbox, entry) == ["2026-11-04-000000", "2026-11-05-000000", "2026-12-09-000000"]

    states = run(tmp_path, entry, date="2026-11-06", prune_mode="prune-older", prune_older={"keep_all_for": "1d"})
    assert states["prune"] == "success", states
    assert saves(sandbox, entry) == ["2026-11-05-000000", "2026-11-06-000000", "2026-12-09-000000"]
    out = tmp_path / "after-prune"
    done = bup(sandbox.nodes[-1].env(), "-d", entry["server"]["repo_dir"], "restore", "-C", str(out), f"/pr1/2026-11-05-000000{entry['paths'][0]}/")
    assert done.returncode == 0, done.stderr
    assert (out / "README").read_text() == (Path(entry["paths"][0]) / "README").read_text()


def test_bup_over_ssh_refuses_an_unknown_server_host_key(site, sandbox, tmp_path):
    known_hosts = sandbox.root / "keys" / "known_hosts"
    good = known_hosts.read_text()
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    addresses = ",".join(n.address for n in sandbox.nodes)
    known_hosts.write_text(f"{addresses} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    try:
        before = saves(sandbox, site)
        states = run(tmp_path, site, date="2026-12-01", dumps=[])
        assert states["save"] == "failed", states
        assert saves(sandbox, site) == before
    finally:
        known_hosts.write_text(good)


def repository_events(asset_name: str) -> list[tuple[str, str]]:
    """(source task, source run) of every event of the Asset, oldest first."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == asset_name).order_by(AssetEvent.id).all()
        )
        return [(e.source_task_id, e.source_run_id) for e in events]


def test_demo_runs_of_the_example_entry(sandbox, airflow_db, tmp_path):
    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": "demo1", "s3_sync": {**example_entry()["s3_sync"], "bucket": "bup-demo"}})
    runs = bup_kind.demo_runs(entry)
    assert [dag_id for dag_id, _ in runs] == ["bup_demo1", "bup_demo1_s3_sync", "bup_demo1_restore"]
    for dag_id, conf in runs:
        states = run(tmp_path, entry, dag_id.removeprefix("bup_demo1"), conf=conf, retries=0)
        assert set(states.values()) == {"success"}, (dag_id, states)
    assert [task_id for task_id, _ in repository_events("bup_demo1_repository")] == ["save"]
    restored = Path(runs[-1][1]["target_dir"]) / Path(entry["staging_dir"]).name / "app.sql"
    assert restored.read_bytes() == (Path(entry["staging_dir"]) / "app.sql").read_bytes()


def test_s3_sync_without_delete_keeps_verifying_objects_whose_file_is_gone(sandbox, tmp_path):
    bucket = "sync-keep-records"
    sandbox.boto3_client("s3").create_bucket(Bucket=bucket)
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "kept.bin").write_bytes(b"k" * 1000)
    (folder / "gone.bin").write_bytes(b"g" * 2000)
    hook = ObjectStoreHook(aws_conn_id="aws_default")
    hook.sync_up(folder, bucket, "p")
    (folder / "gone.bin").unlink()
    (folder / "sub" / "new.bin").write_bytes(b"n" * 10)
    result = hook.sync_up(folder, bucket, "p")  # delete is off: gone.bin stays in S3
    assert result.copied == ["sub/new.bin"] and result.deleted == []
    assert set(hook.read_manifest(bucket, "p")) == {"gone.bin", "sub/kept.bin", "sub/new.bin"}
    # so a download still checks it: a corrupted copy of it is refused
    sandbox.boto3_client("s3").put_object(Bucket=bucket, Key="p/gone.bin", Body=b"x" * 2000)
    target = tmp_path / "down"
    with pytest.raises(Exception, match="gone.bin"):
        hook.sync_down(bucket, "p", target)


def test_s3_sync_modes_checksum_delete_dry_run_and_multipart(sandbox, tmp_path, monkeypatch):
    bucket = "sync-modes"
    sandbox.boto3_client("s3").create_bucket(Bucket=bucket)
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"aaaa")
    (folder / "b.txt").write_bytes(b"bbbb")
    big = os.urandom(6 * 1024 * 1024 + 123)
    (folder / "big.bin").write_bytes(big)
    calls = count_puts(monkeypatch)
    hook = ObjectStoreHook(aws_conn_id="aws_default", part_size=5 * 1024 * 1024)

    # dry run: the plan, and no request that writes
    result = hook.sync_up(folder, bucket, "m", dry_run=True)
    assert sorted(result.copied) == ["a.txt", "b.txt", "big.bin"] and calls == []
    assert sandbox.boto3_client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # the big file goes up in parts, each request with a SHA-256 the server checks
    hook.sync_up(folder, bucket, "m")
    assert "CreateMultipartUpload m/big.bin" in calls
    assert sum(c == "UploadPart m/big.bin" for c in calls) == 2
    head = sandbox.boto3_client("s3").head_object(Bucket=bucket, Key="m/big.bin")
    assert head["Metadata"]["sha256"] == hashlib.sha256(big).hexdigest()

    # same size and mtime, other bytes: size_mtime sees nothing, checksum sees the change
    stat = (folder / "a.txt").stat()
    (folder / "a.txt").write_bytes(b"AAAA")
    os.utime(folder / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert hook.sync_up(folder, bucket, "m").copied == []
    assert hook.sync_up(folder, bucket, "m", compare="checksum").copied == ["a.txt"]

    # a removed file: kept without delete, deleted with it (dry run first: nothing goes)
    (folder / "b.txt").unlink()
    assert hook.sync_up(folder, bucket, "m").deleted == []
    assert hook.sync_up(folder, bucket, "m", delete=True, dry_run=True).deleted == ["b.txt"]
    assert "m/b.txt" in all_keys(sandbox, bucket)
    assert hook.sync_up(folder, bucket, "m", delete=True).deleted == ["b.txt"]
    assert "m/b.txt" not in all_keys(sandbox, bucket)

    # and the way back reproduces the folder byte for byte
    down = tmp_path / "down"
    hook.sync_down(bucket, "m", down)
    assert {p.name: p.read_bytes() for p in down.iterdir()} == {"a.txt": b"AAAA", "big.bin": big}


def all_keys(sandbox, bucket: str) -> set[str]:
    listing = sandbox.boto3_client("s3").list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listing.get("Contents", [])}


def test_weekly_fsck_dag_without_s3_sync_checks_the_repository(sandbox, airflow_db, tmp_path):
    entry = bup_kind.prepare(sandbox, {**example_entry(), "name": "fs1", "s3_sync": None})
    entry.update(retries=0, prune=False)
    assert run(tmp_path, entry, date="2026-11-20")["save"] == "success"
    repo = Path(entry["server"]["repo_dir"])
    states = run(tmp_path, entry, "_fsck", date="2026-11-21")
    assert states == {"wait_for_other_runs": "success", "fsck": "success", "report": "success"}, states
    assert list(repo.rglob("*.par2")), "fsck with par2 installed writes recovery blocks"
    # a damaged pack is found: the run fails (and alerts through its task callback)
    pack = max(repo.glob("objects/pack/*.pack"), key=lambda p: p.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    states = run(tmp_path, entry, "_fsck", date="2026-11-28")
    assert states["fsck"] == "failed" and states["report"] == "failed", states
