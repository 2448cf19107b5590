"""A late run says so: every kind records when a backup was really taken, the report shows it
beside the logical date and warns beyond a day; retention tables show both.

The runs below have the logical date 2026-11-01 and run now (a cleared old run, a backfill).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_backup_provider.dates import TAG_TAKEN_AT, now_utc, parse_instant
from airflow_backup_provider.operators.report import OUTCOME_KEY, render_summary, summarize_run
from tests.unit.test_retention_operators import (
    FakeTi,
    airflow_context,
    put_cassandra_day,
)

OLD_DAY = "2026-11-01"


def outcome(context) -> dict:
    return context["ti"].pushed[OUTCOME_KEY]


def assert_taken_now(value: datetime | None) -> None:
    assert value is not None and abs(now_utc() - value) < timedelta(minutes=10)


def test_ebs_snapshot_of_an_old_logical_date_is_tagged_with_when_it_was_taken_and_warns(aws):
    from airflow_backup_provider.operators.ebs import EbsSnapshotOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    context = airflow_context(OLD_DAY)
    [snapshot_id] = EbsSnapshotOperator(task_id="snapshot", target=volume, name="p").execute(context)
    tags = {t["Key"]: t["Value"] for t in aws.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["Tags"]}
    assert tags["backup:logical-date"] == "2026-11-01T00:00:00+00:00"
    assert_taken_now(parse_instant(tags[TAG_TAKEN_AT]))
    result = outcome(context)
    [row] = result["rows"]
    assert row["date"] == "2026-11-01T00:00:00+00:00" and row["taken at"] == tags[TAG_TAKEN_AT]
    [warning] = result["warnings"]
    assert warning.startswith(f"snapshot {snapshot_id} of {volume}: taken at {tags[TAG_TAKEN_AT]}")
    assert "after its logical date 2026-11-01T00:00:00+00:00" in warning


def test_ebs_snapshot_on_time_does_not_warn(aws):
    from airflow_backup_provider.operators.ebs import EbsSnapshotOperator

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    today = now_utc().date().isoformat()
    context = airflow_context(today)
    EbsSnapshotOperator(task_id="snapshot", target=volume, name="p").execute(context)
    assert "warnings" not in outcome(context)


def test_riak_node_snapshot_is_tagged_with_when_it_was_taken_and_warns(aws):
    from airflow_backup_provider.operators.riak import RiakNodeSnapshotOperator

    instance = aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    context = airflow_context(OLD_DAY)
    op = RiakNodeSnapshotOperator(task_id="snapshot", cluster="c1", node="riak@n1", instance_id=instance, region_name="us-east-1")
    created = op.execute(context)["created"]
    assert created
    for snapshot in aws.ec2.describe_snapshots(SnapshotIds=created)["Snapshots"]:
        assert_taken_now(parse_instant({t["Key"]: t["Value"] for t in snapshot["Tags"]}[TAG_TAKEN_AT]))
    result = outcome(context)
    assert "logical date 2026-11-01T00:00:00+00:00, taken at " in result["detail"]
    assert len(result["warnings"]) == len(created)


def logged(capfd) -> str:
    """What the operator logged (Airflow's task logger writes to the process's stdout)."""
    out, err = capfd.readouterr()
    return out + err


def test_cassandra_retention_table_shows_when_each_day_was_taken(aws, capfd):
    from airflow_backup_provider.operators.cassandra import CassandraRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    put_cassandra_day(aws.s3, "bkt-1", "20261101", datetime(2026, 11, 20, 3, tzinfo=UTC))  # a late run
    put_cassandra_day(aws.s3, "bkt-1", "20261102", datetime(2026, 11, 2, 1, tzinfo=UTC))
    op = CassandraRetentionOperator(task_id="retention", cluster="c1", bucket="bkt-1", policy={"keep_last": 5})
    op.execute(airflow_context("2026-11-02"))
    text = logged(capfd)
    assert "20261101  2026-11-01T00:00:00+00:00  2026-11-20T03:00:00+00:00" in text
    assert "20261102  2026-11-02T00:00:00+00:00  2026-11-02T01:00:00+00:00" in text


class XcomTi(FakeTi):
    def __init__(self, values: dict):
        super().__init__()
        self.values = values
        self.dag_id = "devicedb_c1"

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return self.values.get(task_ids) if key == "return_value" else super().xcom_pull(task_ids, key)


def test_devicedb_manifest_of_a_late_run_shows_both_dates_and_warns(aws, capfd):
    from airflow_backup_provider.config import RetentionPolicy
    from airflow_backup_provider.operators.devicedb import DevicedbManifestOperator, DevicedbRetentionOperator

    aws.s3.create_bucket(Bucket="bkt-1")
    uuid = "44444444-4444-4444-8444-444444444444"
    triggered = now_utc()
    context = airflow_context(OLD_DAY)
    context["ti"] = XcomTi({
        "trigger_snapshot": {"uuid": uuid, "triggered_at": triggered.isoformat(), "check": None},
        "upload_n1": {"node": "n1", "host": "h1", "http_port": 9090, "key": f"ddb/c1/{uuid}/n1.tar", "size": 3,
                      "sha256": "a" * 64},
    })
    DevicedbManifestOperator(
        task_id="manifest", cluster="c1", nodes=[], bucket="bkt-1", prefix="ddb", upload_task_ids=["upload_n1"],
    ).execute(context)
    result = outcome(context)
    assert "logical date 2026-11-01T00:00:00+00:00, taken at " in result["detail"]
    [warning] = result["warnings"]
    assert warning.startswith(f"snapshot {uuid}: taken at ")

    retention = DevicedbRetentionOperator(
        cluster="c1", nodes=[], bucket="bkt-1", prefix="ddb", policy=RetentionPolicy(keep_last=1)
    )
    logged(capfd)
    assert retention.execute(airflow_context(OLD_DAY))["kept"] == [uuid]
    assert f"{uuid}  2026-11-01T00:00:00+00:00  {triggered.replace(microsecond=0).isoformat()}" in logged(capfd)


def test_bup_save_of_a_late_run_shows_both_dates_and_warns(tmp_path):
    from airflow_backup_provider.operators.bup import BupSaveOperator
    from airflow_backup_provider.stores.bup import Remote

    data = tmp_path / "data"
    data.mkdir()
    (data / "f.txt").write_text("x\n")
    save = BupSaveOperator(
        task_id="save", branch="b1", paths=[str(data)], host="localhost", ssh_conn_id="local",
        bup_dir=str(tmp_path / "bup"), remote=Remote(host="", path=str(tmp_path / "repo")),
    )
    context = airflow_context(OLD_DAY)
    save.execute(context)
    result = outcome(context)
    assert "logical date 2026-11-01T00:00:00+00:00, taken at " in result["detail"]
    [warning] = result["warnings"]
    assert warning.startswith("save b1/2026-11-01-000000: taken at ")


def test_the_report_lists_warnings_first_and_counts_them_in_the_subject():
    states = {"volume.snapshot_0": "success", "report": "running"}
    outcomes = {
        "volume.snapshot_0": {
            "status": "done", "node": "vol-1", "produced": [{"id": "snap-1"}], "detail": "created snap-1",
            "warnings": ["snapshot snap-1 of vol-1: taken at 2026-11-20T03:00:00+00:00, 19.1 days after ..."],
        }
    }
    summary = summarize_run(states, outcomes, exclude="report")
    subject, body, text = render_summary("ebs_p", "run1", summary)
    assert subject.endswith("1 backed up, 0 skipped, 1 warning(s)")
    assert text.splitlines()[1:3] == [
        "Warnings: 1",
        "  volume.snapshot_0: snapshot snap-1 of vol-1: taken at 2026-11-20T03:00:00+00:00, 19.1 days after ...",
    ]
    assert "<h3>Warnings (1)</h3>" in body
    # no warning: the subject and text are as before
    del outcomes["volume.snapshot_0"]["warnings"]
    subject, _, text = render_summary("ebs_p", "run1", summarize_run(states, outcomes, exclude="report"))
    assert "warning" not in subject and "Warnings" not in text


@pytest.mark.parametrize("day", [OLD_DAY])
def test_retention_tables_of_snapshots_show_the_taken_at_tag(aws, capfd, day):
    from airflow_backup_provider.operators.ebs import EbsRetentionOperator
    from airflow_backup_provider.stores.ebs import backup_tags
    from tests.unit.test_retention_operators import day_at, tagged_snapshot

    volume = aws.ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    tags = backup_tags(name="p", logical_date=day_at(day), run_id="r", volume_id=volume,
                       taken_at=datetime(2026, 11, 20, 3, tzinfo=UTC))
    snapshot_id = tagged_snapshot(aws.ec2, volume, tags)
    EbsRetentionOperator(task_id="retention", target=volume, name="p", policy={"keep_last": 1}).execute(airflow_context(day))
    assert f"{snapshot_id}  2026-11-01T00:00:00+00:00  2026-11-20T03:00:00+00:00" in logged(capfd)
