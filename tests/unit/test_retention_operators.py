"""Every kind's retention task with the context Airflow really gives it: a pendulum ``DateTime``
logical date (airflow.sdk's task runner passes ``coerce_datetime(dag_run.logical_date)``).

In-process moto for EC2 and S3, bup on the worker (``ssh_conn_id: local``): the retention paths
run for real, only the services are stand-ins. Policies use ``keep_within``: before the fix
every one of these failed with "can't compare offset-naive and offset-aware datetimes".
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pendulum

from airflow_backup_provider.config import RetentionPolicy
from airflow_backup_provider.stores.ebs import TAG_LOGICAL_DATE, backup_tags

WITHIN_2D = {"keep_within": "2d"}


class FakeTi:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return self.pushed.get(key)


def airflow_context(day: str, *, dry_run: bool = False) -> dict:
    """A task context as the task runner builds it: pendulum dates, params from the form."""
    logical = pendulum.datetime(*map(int, day.split("-")))
    return {
        "logical_date": logical,
        "data_interval_start": logical,
        "data_interval_end": logical,
        "ds": day,
        "run_id": f"scheduled__{logical.isoformat()}",
        "params": {"dry_run": dry_run},
        "dag_run": SimpleNamespace(run_after=logical, logical_date=logical),
        "ti": FakeTi(),
    }


def tagged_snapshot(ec2, volume_id: str, tags: dict[str, str]) -> str:
    return ec2.create_snapshot(
        VolumeId=volume_id,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["SnapshotId"]


def day_at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


# --- EBS --------------------------------------------------------------------------------------


def test_ebs_retention_with_a_pendulum_logical_date(aws):
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snaps = {
        day: tagged_snapshot(aws.ec2, volume, backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume))
        for day in ("2026-11-17", "2026-11-18", "2026-11-19")
    }
    op = EbsRetentionOperator(task_id="retention", target=volume, name="p", policy=WITHIN_2D)
    result = op.execute(airflow_context("2026-11-19"))
    # restic: 11-17 is exactly 2d older than the newest (11-19): not strictly within, pruned
    assert result["deleted"] == [snaps["2026-11-17"]]


# --- riak -------------------------------------------------------------------------------------


def riak_snapshot(aws, volume: str, day: str) -> str:
    """A snapshot of a riak node's volume, tagged as the backup of `day` makes it."""
    from airflow_backup_provider.operators.riak import node_snapshot_tags

    tags = node_snapshot_tags(cluster="c1", node="riak@n1", instance_id="i-1", logical_date=day_at(day), run_id="r")
    return tagged_snapshot(aws.ec2, volume, tags)


def riak_snapshots_of_three_days(aws) -> tuple[str, dict[str, str]]:
    """A riak node's volume with one snapshot per day, 11-17 to 11-19: (volume, {day: snapshot id})."""
    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    return volume, {day: riak_snapshot(aws, volume, day) for day in ("2026-11-17", "2026-11-18", "2026-11-19")}


def test_riak_retention_with_a_pendulum_logical_date(aws):
    from airflow_backup_provider.operators.riak import RiakRetentionOperator

    _, snaps = riak_snapshots_of_three_days(aws)
    op = RiakRetentionOperator(task_id="retention", cluster="c1", policy=WITHIN_2D, region_name="us-east-1")
    assert op.execute(airflow_context("2026-11-19"))["deleted"] == [snaps["2026-11-17"]]


# --- cassandra --------------------------------------------------------------------------------


def put_cassandra_day(s3, bucket: str, day: str, created_at: datetime) -> None:
    from airflow_backup_provider.stores import cassandra_layout, cassandra_manifest

    tag = f"t{day}"
    manifest = cassandra_manifest.Manifest(
        cluster="c1", host="10.0.0.1", day=day, tag=tag, run_id="r", created_at=created_at.isoformat(),
        mode="full", files=(), cluster_hosts=("10.0.0.1",),
    )
    key = cassandra_layout.manifest_key("cassandra", "c1", day, "10.0.0.1", tag)
    s3.put_object(Bucket=bucket, Key=key, Body=manifest.to_json().encode())


def test_cassandra_retention_with_a_pendulum_logical_date(aws):
    from airflow_backup_provider.operators.cassandra import CassandraRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    for day in ("20261117", "20261118", "20261119"):
        put_cassandra_day(aws.s3, "bkt-1", day, datetime.strptime(day, "%Y%m%d").replace(hour=2, tzinfo=UTC))
    op = CassandraRetentionOperator(task_id="retention", cluster="c1", bucket="bkt-1", policy=WITHIN_2D)
    result = op.execute(airflow_context("2026-11-19"))
    assert result["prune"] == ["20261117"]
    left = {o["Key"].split("/")[2] for o in aws.s3.list_objects_v2(Bucket="bkt-1").get("Contents", [])}
    assert left == {"20261118", "20261119"}


# --- devicedb ---------------------------------------------------------------------------------


def put_devicedb_snapshot(s3, bucket: str, uuid: str, logical: datetime, created_at: datetime) -> None:
    from airflow_backup_provider.stores import devicedb as ddb

    body = b"tar"
    tar_key = f"{ddb.cluster_prefix('ddb', 'c1')}{uuid}/node1.tar"
    s3.put_object(Bucket=bucket, Key=tar_key, Body=body)
    manifest = ddb.build_manifest(
        cluster="c1", uuid=uuid, logical_date=logical, created_at=created_at, check=None,
        artifacts=[ddb.NodeArtifact(node="node1", host="h1", http_port=9090, key=tar_key, size=len(body),
                                    sha256=hashlib.sha256(body).hexdigest())],
    )
    s3.put_object(Bucket=bucket, Key=ddb.manifest_key("ddb", "c1", uuid), Body=ddb.manifest_json(manifest))


def test_devicedb_retention_with_a_pendulum_logical_date(aws):
    from airflow_backup_provider.operators.devicedb import DevicedbRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    uuids = {
        "2026-11-17": "11111111-1111-4111-8111-111111111111",
        "2026-11-18": "22222222-2222-4222-8222-222222222222",
        "2026-11-19": "33333333-3333-4333-8333-333333333333",
    }
    for day, uuid in uuids.items():
        put_devicedb_snapshot(aws.s3, "bkt-1", uuid, day_at(day), day_at(day).replace(hour=1))
    op = DevicedbRetentionOperator(cluster="c1", nodes=[], bucket="bkt-1", prefix="ddb", policy=RetentionPolicy(**WITHIN_2D))
    result = op.execute(airflow_context("2026-11-19"))
    assert result["pruned"] == [uuids["2026-11-17"]]


# --- bup --------------------------------------------------------------------------------------


def test_bup_prune_with_a_pendulum_logical_date(tmp_path):
    from airflow_backup_provider.operators.bup import BupPruneOperator, BupSaveOperator
    from airflow_backup_provider.stores.bup import Remote

    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("x\n")
    repo = tmp_path / "repo"
    save = BupSaveOperator(
        task_id="save", branch="b1", paths=[str(data)], host="localhost", ssh_conn_id="local",
        bup_dir=str(tmp_path / "bup"), remote=Remote(host="", path=str(repo)),
    )
    for day in ("2026-11-17", "2026-11-18", "2026-11-19"):
        assert save.execute(airflow_context(day))["skipped"] is False
    prune = BupPruneOperator(
        task_id="prune", branch="b1", mode="retention", policy=RetentionPolicy(**WITHIN_2D),
        host="localhost", ssh_conn_id="local", bup_dir=str(repo),
    )
    result = prune.execute(airflow_context("2026-11-19"))
    assert result["pruned"] == ["b1/2026-11-17-000000"]
    assert result["kept"] == ["2026-11-18-000000", "2026-11-19-000000"]


def test_the_logical_date_tag_is_the_same_for_a_pendulum_date():
    # tags written by earlier runs (stdlib dates) and by the task runner (pendulum) must match
    a = backup_tags(name="p", logical_date=pendulum.datetime(2026, 11, 20), run_id="r")[TAG_LOGICAL_DATE]
    b = backup_tags(name="p", logical_date=datetime(2026, 11, 20, tzinfo=UTC), run_id="r")[TAG_LOGICAL_DATE]
    assert a == b == "2026-11-20T00:00:00+00:00"


# --- a dry run plans with the backup the real run would make ------------------------------------
# keep_last 3 and three backups (11-17..11-19): the run of 11-20 makes a fourth and prunes 11-17.
# Before the fix every dry run below planned without it and said "prune 0".

KEEP_3 = {"keep_last": 3}


def test_ebs_dry_run_prunes_what_the_real_run_prunes(aws):
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator, EbsSnapshotOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snaps = {
        day: tagged_snapshot(aws.ec2, volume, backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume))
        for day in ("2026-11-17", "2026-11-18", "2026-11-19")
    }
    dry = airflow_context("2026-11-20", dry_run=True)
    EbsSnapshotOperator(task_id="snapshot", target=volume, name="p", dry_run=True).execute(dry)
    listing = dry["ti"].pushed["listing"]
    result = EbsRetentionOperator(task_id="retention", target=volume, name="p", policy=KEEP_3, listing=listing, dry_run=True).execute(dry)
    assert result["would_delete"] == [snaps["2026-11-17"]] and result["deleted"] == []

    real = airflow_context("2026-11-20")
    EbsSnapshotOperator(task_id="snapshot", target=volume, name="p").execute(real)
    listing = real["ti"].pushed["listing"]
    result = EbsRetentionOperator(task_id="retention", target=volume, name="p", policy=KEEP_3, listing=listing).execute(real)
    assert result["deleted"] == [snaps["2026-11-17"]]


def test_ebs_dry_run_that_prunes_every_existing_snapshot_is_not_refused(aws):
    """keep_last 1: the real run keeps its new snapshot and deletes the three before it, the
    newest of them included; the dry run says just that instead of refusing the newest."""
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator, EbsSnapshotOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    snaps = [
        tagged_snapshot(aws.ec2, volume, backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume))
        for day in ("2026-11-17", "2026-11-18", "2026-11-19")
    ]
    keep_1 = {"keep_last": 1}
    dry = airflow_context("2026-11-20", dry_run=True)
    EbsSnapshotOperator(task_id="snapshot", target=volume, name="p", dry_run=True).execute(dry)
    result = EbsRetentionOperator(
        task_id="retention", target=volume, name="p", policy=keep_1, listing=dry["ti"].pushed["listing"], dry_run=True
    ).execute(dry)
    assert sorted(result["would_delete"]) == sorted(snaps) and result["deleted"] == []

    real = airflow_context("2026-11-20")
    EbsSnapshotOperator(task_id="snapshot", target=volume, name="p").execute(real)
    result = EbsRetentionOperator(
        task_id="retention", target=volume, name="p", policy=keep_1, listing=real["ti"].pushed["listing"]
    ).execute(real)
    assert sorted(result["deleted"]) == sorted(snaps)


def test_riak_dry_run_prunes_what_the_real_run_would(aws):
    from airflow_backup_provider.operators.riak import RiakRetentionOperator

    volume, snaps = riak_snapshots_of_three_days(aws)
    op = RiakRetentionOperator(task_id="retention", cluster="c1", policy=KEEP_3, region_name="us-east-1", dry_run="True")
    result = op.execute(airflow_context("2026-11-20", dry_run=True))
    assert result["would_delete"] == [snaps["2026-11-17"]] and result["deleted"] == []
    # the date already has its snapshot (a dry run after the real one): nothing planned on top
    riak_snapshot(aws, volume, "2026-11-20")
    assert op.execute(airflow_context("2026-11-20", dry_run=True))["would_delete"] == [snaps["2026-11-17"]]


def test_cassandra_dry_run_prunes_what_the_real_run_would(aws):
    from airflow_backup_provider.operators.cassandra import CassandraRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    for day in ("20261117", "20261118", "20261119"):
        put_cassandra_day(aws.s3, "bkt-1", day, datetime.strptime(day, "%Y%m%d").replace(hour=2, tzinfo=UTC))
    op = CassandraRetentionOperator(task_id="retention", cluster="c1", bucket="bkt-1", policy=KEEP_3)
    result = op.execute(airflow_context("2026-11-20", dry_run=True))
    assert result["prune"] == ["20261117"] and result["deleted_objects"] == 0


def test_devicedb_dry_run_prunes_what_the_real_run_would(aws):
    from airflow_backup_provider.operators.devicedb import DevicedbRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    uuids = {
        "2026-11-17": "11111111-1111-4111-8111-111111111111",
        "2026-11-18": "22222222-2222-4222-8222-222222222222",
        "2026-11-19": "33333333-3333-4333-8333-333333333333",
    }
    for day, uuid in uuids.items():
        put_devicedb_snapshot(aws.s3, "bkt-1", uuid, day_at(day), day_at(day).replace(hour=1))
    op = DevicedbRetentionOperator(cluster="c1", nodes=[], bucket="bkt-1", prefix="ddb", policy=RetentionPolicy(**KEEP_3))
    result = op.execute(airflow_context("2026-11-20", dry_run=True))
    assert result["pruned"] == [uuids["2026-11-17"]] and result["deleted"] == []


def test_bup_dry_run_prunes_what_the_real_run_would(tmp_path):
    from airflow_backup_provider.operators.bup import BupPruneOperator, BupSaveOperator
    from airflow_backup_provider.stores.bup import Remote

    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("x\n")
    repo = tmp_path / "repo"
    save = BupSaveOperator(
        task_id="save", branch="b1", paths=[str(data)], host="localhost", ssh_conn_id="local",
        bup_dir=str(tmp_path / "bup"), remote=Remote(host="", path=str(repo)),
    )
    for day in ("2026-11-17", "2026-11-18", "2026-11-19"):
        save.execute(airflow_context(day))
    prune = BupPruneOperator(
        task_id="prune", branch="b1", mode="retention", policy=RetentionPolicy(**KEEP_3),
        host="localhost", ssh_conn_id="local", bup_dir=str(repo),
    )
    result = prune.execute(airflow_context("2026-11-20", dry_run=True))
    assert result["pruned"] == ["b1/2026-11-17-000000"]
    # nothing was removed: the real run still finds three saves and, after its save, prunes the same
    save.execute(airflow_context("2026-11-20"))
    assert prune.execute(airflow_context("2026-11-20"))["pruned"] == ["b1/2026-11-17-000000"]
