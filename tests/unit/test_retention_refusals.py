"""Every kind's retention refuses to delete a protected item, whatever its plan says.

A broken planner (here: one that prunes everything) must not be able to delete the newest
complete backup: the base re-reads every item and the newest just before each delete and refuses
(DESIGN.md, safety invariant 4). The older items go, the protected one stays in the store, and the
task fails naming it. Runs each kind's real retention path against in-process moto or local bup.
"""

from __future__ import annotations

import subprocess

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_backup_provider import retention
from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.retention import Decision, RetentionPlan
from airflow_backup_provider.stores.ebs import backup_tags
from tests.unit.test_retention_operators import (
    airflow_context,
    day_at,
    put_cassandra_day,
    put_devicedb_snapshot,
    riak_snapshots_of_three_days,
    tagged_snapshot,
)

DAYS = ("2026-11-17", "2026-11-18", "2026-11-19")
KEEP_ALL = {"keep_last": 10}


@pytest.fixture
def plan_prunes_everything(monkeypatch):
    """Replace the one planner with one that keeps nothing, the newest complete backup too."""

    def prune_all(items, policy, as_of):
        items = sorted(items, key=lambda i: i.created_at)
        return RetentionPlan(as_of=as_of, policy=policy, keep=[], prune=[Decision(i, []) for i in items])

    monkeypatch.setattr(retention, "plan_retention", prune_all)


def refused(op, day: str) -> str:
    with pytest.raises(AirflowFailException, match="retention refused") as failure:
        op.execute(airflow_context(day))
    return str(failure.value)


def snapshot_ids(ec2, snaps: dict[str, str]) -> set[str]:
    """Which of these snapshots still exist (moto also holds snapshots of its own AMIs)."""
    listed = ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": list(snaps.values())}])["Snapshots"]
    return {s["SnapshotId"] for s in listed}


def test_ebs_retention_refuses_to_delete_the_newest_snapshot(aws, plan_prunes_everything):
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snaps = {
        day: tagged_snapshot(aws.ec2, volume, backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume))
        for day in DAYS
    }
    op = EbsRetentionOperator(task_id="retention", target=volume, name="p", policy=KEEP_ALL)
    message = refused(op, DAYS[-1])
    assert snaps[DAYS[-1]] in message and retention.REASON_NEWEST in message
    assert snapshot_ids(aws.ec2, snaps) == {snaps[DAYS[-1]]}


def test_ebs_retention_refuses_a_snapshot_that_stopped_being_ours_after_the_plan(aws, monkeypatch):
    """The plan is right, but between plan and delete someone takes the snapshot over (its backup
    tags removed): the fresh re-read sees it is no longer ours and the delete is refused."""
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snaps = {
        day: tagged_snapshot(aws.ec2, volume, backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume))
        for day in DAYS
    }
    real_plan = retention.plan_retention

    def plan_then_someone_untags(items, policy, as_of):
        plan = real_plan(items, policy, as_of)
        tags = backup_tags(name="p", logical_date=day_at(DAYS[0]), run_id="r", volume_id=volume)
        aws.ec2.delete_tags(Resources=[snaps[DAYS[0]]], Tags=[{"Key": k} for k in tags])
        return plan

    monkeypatch.setattr(retention, "plan_retention", plan_then_someone_untags)
    op = EbsRetentionOperator(task_id="retention", target=volume, name="p", policy={"keep_last": 2})
    message = refused(op, DAYS[-1])
    assert snaps[DAYS[0]] in message
    assert snapshot_ids(aws.ec2, snaps) == set(snaps.values())


def test_riak_retention_refuses_to_delete_the_newest_snapshot(aws, plan_prunes_everything):
    from airflow_backup_provider.operators.riak import RiakRetentionOperator

    _, snaps = riak_snapshots_of_three_days(aws)
    op = RiakRetentionOperator(task_id="retention", cluster="c1", policy=KEEP_ALL, region_name="us-east-1")
    message = refused(op, DAYS[-1])
    assert snaps[DAYS[-1]] in message and retention.REASON_NEWEST in message
    assert snapshot_ids(aws.ec2, snaps) == {snaps[DAYS[-1]]}


def s3_keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_cassandra_retention_refuses_to_delete_the_newest_backup(aws, plan_prunes_everything):
    from datetime import UTC, datetime

    from airflow_backup_provider.operators.cassandra import CassandraRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    days = [d.replace("-", "") for d in DAYS]
    for day in days:
        put_cassandra_day(aws.s3, "bkt-1", day, datetime.strptime(day, "%Y%m%d").replace(hour=2, tzinfo=UTC))
    op = CassandraRetentionOperator(task_id="retention", cluster="c1", bucket="bkt-1", policy=KEEP_ALL)
    message = refused(op, DAYS[-1])
    assert days[-1] in message and retention.REASON_NEWEST in message
    assert {k.split("/")[2] for k in s3_keys(aws.s3, "bkt-1")} == {days[-1]}


def test_devicedb_retention_refuses_to_delete_the_newest_snapshot(aws, plan_prunes_everything):
    from airflow_backup_provider.operators.devicedb import DevicedbRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    uuids = dict(zip(DAYS, ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                            "33333333-3333-4333-8333-333333333333"), strict=True))
    for day, uuid in uuids.items():
        put_devicedb_snapshot(aws.s3, "bkt-1", uuid, day_at(day), day_at(day).replace(hour=1))
    op = DevicedbRetentionOperator(cluster="c1", nodes=[], bucket="bkt-1", prefix="ddb", policy=RetentionPolicy(**KEEP_ALL))
    message = refused(op, DAYS[-1])
    assert uuids[DAYS[-1]] in message and retention.REASON_NEWEST in message
    left = {uuid for uuid in uuids.values() if any(uuid in k for k in s3_keys(aws.s3, "bkt-1"))}
    assert left == {uuids[DAYS[-1]]}


@pytest.mark.parametrize("mode", ["retention", "prune-older"])
def test_bup_prune_refuses_to_remove_the_newest_save(tmp_path, monkeypatch, mode):
    from airflow_backup_provider.operators.bup import BupPruneOperator, BupSaveOperator
    from airflow_backup_provider.stores import bup as store
    from airflow_backup_provider.stores.bup import Remote

    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("x\n")
    repo = tmp_path / "repo"
    save = BupSaveOperator(
        task_id="save", branch="b1", paths=[str(data)], host="localhost", ssh_conn_id="local",
        bup_dir=str(tmp_path / "bup"), remote=Remote(host="", path=str(repo)),
    )
    for day in DAYS:
        save.execute(airflow_context(day))
    if mode == "retention":
        def prune_all(items, policy, as_of):
            return RetentionPlan(as_of=as_of, policy=policy, keep=[], prune=[Decision(i, []) for i in items])

        monkeypatch.setattr(retention, "plan_retention", prune_all)
        kwargs = {"policy": RetentionPolicy(**KEEP_ALL)}
    else:
        # bup's own plan says every save goes (a pretend output that removes them all)
        def pretend_removes_all(stdout):
            return [store.PruneAction(keep=False, branch="b1", save=name) for name in saves_of(repo)]

        monkeypatch.setattr(store, "parse_prune_pretend", pretend_removes_all)
        kwargs = {"keep": store.PruneOlderKeep(all_for="1d")}
    prune = BupPruneOperator(
        task_id="prune", branch="b1", mode=mode, host="localhost", ssh_conn_id="local", bup_dir=str(repo), **kwargs,
    )
    message = refused(prune, DAYS[-1])
    assert "b1/2026-11-19-000000" in message and retention.REASON_NEWEST in message
    assert saves_of(repo) == ["2026-11-19-000000"]


def saves_of(repo) -> list[str]:
    out = subprocess.run(["bup", "-d", str(repo), "ls", "b1"], capture_output=True, text=True, check=True).stdout
    return sorted(name for name in out.split() if name[:4].isdigit())
