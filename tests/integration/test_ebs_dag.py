"""The ebs_<name> DAG run with dag.test() against the sandbox's moto server."""

from __future__ import annotations

import json
import urllib.request
import uuid
from contextlib import contextmanager

import pytest

from airflow_backup_provider.hooks.ebs import TAG_LOGICAL_DATE, TAG_NAME, EbsHook, backup_tags
from tests.harness import clusters_file, load_dag, run_dag

pytestmark = pytest.mark.sandbox


@contextmanager
def snapshots_pending(sandbox, describes: int):
    """Hold new snapshots `pending` for `describes` DescribeSnapshots calls (moto's state manager)."""

    def post(path: str, body: dict) -> None:
        request = urllib.request.Request(
            f"{sandbox.moto_url}/moto-api/state-manager/{path}", data=json.dumps(body).encode(), method="POST"
        )
        urllib.request.urlopen(request, timeout=5).close()

    post("set-transition", {"model_name": "ec2::snapshot", "transition": {"progression": "manual", "times": describes}})
    try:
        yield
    finally:
        post("unset-transition", {"model_name": "ec2::snapshot"})


def new_volume(ec2) -> str:
    return ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]


def entry(name: str, **fields) -> dict:
    base = {
        "kind": "ebs",
        "name": name,
        "alert_emails": ["oncall@example.com"],
        "retries": 0,
        "deferrable": False,
        "poke_interval": "1s",
        "retention": {"keep_last": 2},
    }
    return {"entries": [{**base, **fields}]}


def our_snapshots(ec2, name: str) -> list[dict]:
    pages = ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_NAME}", "Values": [name]}]
    )
    return [s for page in pages for s in page["Snapshots"]]


def dates_of(snapshots: list[dict]) -> list[str]:
    return sorted({t["Value"] for s in snapshots for t in s["Tags"] if t["Key"] == TAG_LOGICAL_DATE})


@pytest.fixture
def ec2(sandbox):
    return sandbox.boto3_client("ec2")


def test_daily_runs_are_idempotent_keep_the_policy_and_spare_foreign_snapshots(airflow_db, sandbox, ec2, tmp_path, mails):
    name = f"d{uuid.uuid4().hex[:8]}"
    volumes = sorted([new_volume(ec2), new_volume(ec2)])
    foreign = ec2.create_snapshot(VolumeId=volumes[0], Description="made by hand")["SnapshotId"]
    with clusters_file(tmp_path, entry(name, volume_ids=volumes)):
        dag = load_dag(f"ebs_{name}")
        for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
            states = run_dag(dag, day)
            assert states["report"] == "success", states
        # a cleared and re-run day makes no second snapshot
        states = run_dag(dag, "2026-11-20")
        assert states["report"] == "success", states
        assert states["volume.snapshot[0]"] == "success"
    snaps = our_snapshots(ec2, name)
    assert len(snaps) == 4  # keep_last 2, per volume
    for volume in volumes:
        assert dates_of([s for s in snaps if s["VolumeId"] == volume]) == [
            "2026-11-19T00:00:00+00:00",
            "2026-11-20T00:00:00+00:00",
        ]
    assert ec2.describe_snapshots(SnapshotIds=[foreign])["Snapshots"][0]["State"] == "completed"
    report = [m for m in mails if f"ebs_{name}" in m["subject"]][-1]
    assert "VOLUME" in report["body"].upper() and volumes[0] in report["body"]
    assert "already has snapshot" in report["body"]


def test_dry_run_changes_nothing(airflow_db, sandbox, ec2, tmp_path):
    name = f"n{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    hook = EbsHook(aws_conn_id="aws_default")
    from datetime import UTC, datetime

    for day in (10, 11, 12):
        hook.create_snapshot(volume, backup_tags(name=name, logical_date=datetime(2026, 11, day, tzinfo=UTC), run_id="x"), "old")
    before = sorted(s["SnapshotId"] for s in our_snapshots(ec2, name))
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], retention={"keep_last": 1})):
        dag = load_dag(f"ebs_{name}")
        states = run_dag(dag, "2026-11-20", conf={"dry_run": True})
        assert states["report"] == "success", states
    assert sorted(s["SnapshotId"] for s in our_snapshots(ec2, name)) == before


def test_a_run_after_a_dry_run_of_the_same_dag_object_is_real(airflow_db, sandbox, ec2, tmp_path):
    """dag.test() on a DAG object that ran before keeps its resolved params: the harness must give
    every run a freshly parsed DAG, as the dag-processor does, or a "real" run here stays dry."""
    name = f"f{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    with clusters_file(tmp_path, entry(name, volume_ids=[volume])):
        dag = load_dag(f"ebs_{name}")
        assert run_dag(dag, "2026-11-20", conf={"dry_run": True})["report"] == "success"
        assert our_snapshots(ec2, name) == []
        states = run_dag(dag, "2026-11-21")
    assert states["report"] == "success", states
    assert dates_of(our_snapshots(ec2, name)) == ["2026-11-21T00:00:00+00:00"]


def test_vanished_volume_fails_the_run_at_the_end_but_not_the_others(airflow_db, sandbox, ec2, tmp_path, mails):
    name = f"v{uuid.uuid4().hex[:8]}"
    good = new_volume(ec2)
    gone = new_volume(ec2)
    ec2.delete_volume(VolumeId=gone)
    with clusters_file(tmp_path, entry(name, volume_ids=sorted([good, gone]))):
        dag = load_dag(f"ebs_{name}")
        states = run_dag(dag, "2026-11-20")
    gone_index = sorted([good, gone]).index(gone)
    good_index = 1 - gone_index
    assert states[f"volume.snapshot[{gone_index}]"] == "failed"
    assert states[f"volume.retention[{gone_index}]"] == "upstream_failed"
    assert states[f"volume.retention[{good_index}]"] == "success"
    assert states["report"] == "failed"
    assert [s["VolumeId"] for s in our_snapshots(ec2, name)] == [good]
    report = [m for m in mails if f"ebs_{name}" in m["subject"]][-1]
    assert "FAILED" in report["subject"]
    assert gone in report["body"] and "volume not found" in report["body"]
    # the task's own alert names the volume as its node
    alert = next(m for m in mails if m["subject"].startswith(f"[backup failed] ebs_{name}.volume.snapshot"))
    assert f"on {gone}" in alert["subject"], alert["subject"]


def test_waits_while_pending_and_fails_on_error(airflow_db, sandbox, ec2, tmp_path):
    name = f"w{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    with clusters_file(tmp_path, entry(name, volume_ids=[volume])):
        dag = load_dag(f"ebs_{name}")
        with snapshots_pending(sandbox, describes=3):
            states = run_dag(dag, "2026-11-20")
    assert states["volume.wait[0]"] == "success" and states["report"] == "success", states
    assert [s["State"] for s in our_snapshots(ec2, name)] == ["completed"]
    assert reschedules(f"ebs_{name}", "volume.wait") >= 1  # it really waited

    # a snapshot that ends in `error` fails the wait, and the run
    name = f"e{uuid.uuid4().hex[:8]}"
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], tags={"sandbox:final-state": "error"})):
        dag = load_dag(f"ebs_{name}")
        with snapshots_pending(sandbox, describes=2):
            states = run_dag(dag, "2026-11-20")
    assert states["volume.wait[0]"] == "failed", states
    assert states["volume.retention[0]"] == "upstream_failed"
    assert states["report"] == "failed"
    assert [s["State"] for s in our_snapshots(ec2, name)] == ["error"]


def reschedules(dag_id: str, task_id: str) -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        return sum(1 for r in session.query(TaskReschedule).all() if r.ti_id and _ti_of(session, r.ti_id) == (dag_id, task_id))


def _ti_of(session, ti_id):
    from airflow.models.taskinstance import TaskInstance

    ti = session.get(TaskInstance, ti_id)
    return (ti.dag_id, ti.task_id) if ti else None


def test_deferrable_wait_hands_over_to_the_waiter_trigger(airflow_db, sandbox, ec2, tmp_path):
    name = f"f{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], deferrable=True)):
        dag = load_dag(f"ebs_{name}")
        with snapshots_pending(sandbox, describes=3):
            states = run_dag(dag, "2026-11-20")
    assert states["volume.wait[0]"] == "success" and states["report"] == "success", states
    assert [s["State"] for s in our_snapshots(ec2, name)] == ["completed"]

    name = f"g{uuid.uuid4().hex[:8]}"
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], deferrable=True, tags={"sandbox:final-state": "error"})):
        dag = load_dag(f"ebs_{name}")
        with snapshots_pending(sandbox, describes=3):
            states = run_dag(dag, "2026-11-20")
    assert states["volume.wait[0]"] == "failed", states
    assert states["report"] == "failed"


@contextmanager
def count_ec2_calls():
    """Every EC2 API call made in this process, by operation name (botocore's before-call event)."""
    import botocore.session

    calls: list[str] = []
    original = botocore.session.Session.create_client

    def create_client(self, service_name, *args, **kwargs):
        client = original(self, service_name, *args, **kwargs)
        if service_name == "ec2":
            client.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
        return client

    botocore.session.Session.create_client = create_client
    try:
        yield calls
    finally:
        botocore.session.Session.create_client = original


def test_ec2_api_calls_per_volume_per_run(airflow_db, sandbox, ec2, tmp_path, capsys):
    name = f"c{uuid.uuid4().hex[:8]}"
    volumes = sorted(new_volume(ec2) for _ in range(3))
    hook = EbsHook(aws_conn_id="aws_default")
    from datetime import UTC, datetime

    for volume in volumes:  # two old snapshots per volume, one of which keep_last 2 prunes
        for day in (1, 2):
            hook.create_snapshot(volume, backup_tags(name=name, logical_date=datetime(2026, 11, day, tzinfo=UTC), run_id="x"), "old")
    rows = []
    with clusters_file(tmp_path, entry(name, volume_ids=volumes)):
        dag = load_dag(f"ebs_{name}")
        for label in ("first run", "same day again"):
            with count_ec2_calls() as calls:
                states = run_dag(dag, "2026-11-20")
            assert states["report"] == "success", states
            per_volume = {op: calls.count(op) / len(volumes) for op in sorted(set(calls))}
            rows.append((label, per_volume))
    with capsys.disabled():
        print(f"\nEC2 API calls per volume per run ({len(volumes)} volumes, reschedule mode):")
        for label, per_volume in rows:
            print(f"  {label:<15} " + ", ".join(f"{op}={n:g}" for op, n in per_volume.items()))
    first, again = rows[0][1], rows[1][1]
    assert first.get("CreateSnapshot") == 1
    # the listing and the completion check, plus one fresh read (of the snapshot and the newest,
    # together) just before each delete: a delete never relies on one check made before it
    assert first.get("DeleteSnapshot") == 1
    assert first.get("DescribeSnapshots", 0) <= 2 + first["DeleteSnapshot"] and first.get("DescribeVolumes", 0) == 0
    assert "CreateSnapshot" not in again and again.get("DescribeSnapshots", 0) <= 2
    assert set(first) <= {"CreateSnapshot", "DescribeSnapshots", "DeleteSnapshot"}


def test_instance_and_tag_targets(airflow_db, sandbox, ec2, tmp_path):
    from tests.sandbox.kinds.ebs import _instance_with_data_volume

    name = f"i{uuid.uuid4().hex[:8]}"
    instance_id, attached = _instance_with_data_volume(ec2)
    marker = uuid.uuid4().hex
    tagged = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=1, TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "backup", "Value": marker}]}]
    )["VolumeId"]
    with clusters_file(tmp_path, entry(name, instance_id=instance_id, volume_tags={"backup": marker})):
        dag = load_dag(f"ebs_{name}")
        assert "find_targets" in dag.task_ids
        with count_ec2_calls() as calls:
            states = run_dag(dag, "2026-11-20")
        assert states["report"] == "success", states
        assert calls.count("CreateSnapshots") == 1  # the instance: one crash-consistent call
        assert calls.count("CreateSnapshot") == 1  # the tagged volume
        states = run_dag(dag, "2026-11-20")  # the same day again: nothing new
        assert states["report"] == "success", states
    snaps = our_snapshots(ec2, name)
    assert sorted(s["VolumeId"] for s in snaps) == sorted([*attached, tagged])


def test_a_pending_snapshot_blocks_the_volume_and_the_report_says_so(airflow_db, sandbox, ec2, tmp_path, mails):
    name = f"p{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    with snapshots_pending(sandbox, describes=1000):
        blocker = ec2.create_snapshot(VolumeId=volume, Description="someone else's, still pending")["SnapshotId"]
        with clusters_file(tmp_path, entry(name, volume_ids=[volume])):
            states = run_dag(load_dag(f"ebs_{name}"), "2026-11-20")
    assert states["report"] == "success", states
    assert our_snapshots(ec2, name) == []
    report = [m for m in mails if f"ebs_{name}" in m["subject"]][-1]
    assert "1 skipped" in report["subject"]
    assert f"still pending ({blocker})" in report["body"]


def test_keep_within_with_the_real_task_context_and_a_late_run_warns(airflow_db, sandbox, ec2, tmp_path, mails):
    # dag.test runs the tasks through the task runner: the context's logical_date is a pendulum
    # DateTime. keep_within crashed on it ("can't compare offset-naive and offset-aware").
    from airflow_backup_provider.dates import TAG_TAKEN_AT, now_utc, parse_instant

    name = f"w{uuid.uuid4().hex[:8]}"
    volume = new_volume(ec2)
    with clusters_file(tmp_path, entry(name, volume_ids=[volume], retention={"keep_within": "2d"})):
        dag = load_dag(f"ebs_{name}")
        for day in ("2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"):
            states = run_dag(dag, day)
            assert states["volume.retention[0]"] == "success", states
            assert states["report"] == "success", states
    snaps = our_snapshots(ec2, name)
    # restic: 11-18 is exactly 2d older than the newest (11-20): not strictly within, pruned
    assert dates_of(snaps) == ["2026-11-19T00:00:00+00:00", "2026-11-20T00:00:00+00:00"]
    for snapshot in snaps:
        taken = parse_instant({t["Key"]: t["Value"] for t in snapshot["Tags"]}[TAG_TAKEN_AT])
        assert abs(now_utc() - taken).total_seconds() < 3600
    # these runs are late (their logical dates are long past): the report says so
    report = [m for m in mails if f"ebs_{name}" in m["subject"]][-1]
    assert "warning(s)" in report["subject"]
    assert "Warnings (1)" in report["body"] and "after its logical date 2026-11-20T00:00:00+00:00" in report["body"]
