"""ebs_<name>_restore against the sandbox (moto EC2 in server mode, a real sshd node standing for the
instance with simulated block devices): replace in place at the device and mount point, keeping the
volume's type, IOPS, throughput, key and tags; create from the copies in another region once the
first region's snapshots are gone; a dry run makes nothing."""

from __future__ import annotations

import uuid

import boto3
import pytest

from airflow_backup_provider.stores.ebs import TAG_REPLACED_BY, TAG_RESTORE_RUN, TAG_RESTORED_FROM
from tests.harness import clusters_file, load_dag, run_dag
from tests.integration.test_ebs_dag import entry, our_snapshots
from tests.sandbox import block

pytestmark = pytest.mark.sandbox

COPY_REGION = "us-west-2"
DAY1_TAG = "2026-11-20T00:00:00+00:00"


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def client(sandbox, service: str, region: str):
    return boto3.client(
        service, endpoint_url=sandbox.moto_url, region_name=region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def volume(ec2, volume_id: str) -> dict:
    return ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]


def at_device(ec2, instance_id: str, device: str) -> dict:
    found = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return next(v for v in found if v["Attachments"][0]["Device"] == device)


def test_replace_puts_the_first_dates_volume_at_the_device_and_mount_point(airflow_db, sandbox, tmp_path, mails):
    ec2 = sandbox.boto3_client("ec2")
    key = client(sandbox, "kms", "us-east-1").create_key()["KeyMetadata"]["Arn"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "us-east-1a"})
    instance_id = instance["Instances"][0]["InstanceId"]
    original = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=4, VolumeType="gp3", Iops=4000, Throughput=250, Encrypted=True, KmsKeyId=key,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "app-data"}]}],
    )["VolumeId"]
    ec2.attach_volume(VolumeId=original, InstanceId=instance_id, Device="/dev/sdf")
    node = sandbox.nodes[0]
    block.stand_for_instance(sandbox, node, instance_id, {"/dev/sdf": "/data"})
    name = f"r{uuid.uuid4().hex[:8]}"
    settings = entry(
        name, volume_ids=[original], deferrable=True, restore_timeout="60s",
        mounts=[{"volume_id": original, "host": node.address, "path": "/data"}],
    )
    with clusters_file(tmp_path, settings):
        for day in ("2026-11-20", "2026-11-21"):
            assert run_dag(load_dag(f"ebs_{name}"), day)["report"] == "success"
        day1 = next(s for s in our_snapshots(ec2, name) if tags(s)["backup:logical-date"] == DAY1_TAG)
        mails.clear()
        restore = load_dag(f"ebs_{name}_restore")
        # a dry run plans and makes nothing
        states = run_dag(restore, "2026-12-01", conf={"mode": "replace", "logical_date": "2026-11-20", "dry_run": True})
        assert states["plan"] == "skipped" and states["report"] == "success", states
        assert at_device(ec2, instance_id, "/dev/sdf")["VolumeId"] == original
        states = run_dag(restore, "2026-12-02", conf={"mode": "replace", "logical_date": "2026-11-20", "confirm": name})
    assert states["report"] == "success", states
    assert states["rollback"] == "skipped", states
    new = at_device(ec2, instance_id, "/dev/sdf")
    assert new["VolumeId"] != original and new["State"] == "in-use"
    assert new["SnapshotId"] == day1["SnapshotId"]
    assert (new["Size"], new["VolumeType"], new["Iops"], new["Throughput"]) == (4, "gp3", 4000, 250)
    assert new["Encrypted"] and new["KmsKeyId"] == key
    assert tags(new)["Name"] == "app-data"
    assert tags(new)[TAG_RESTORED_FROM] == day1["SnapshotId"] and tags(new)[TAG_RESTORE_RUN]
    old = volume(ec2, original)
    assert old["State"] == "available" and tags(old)[TAG_REPLACED_BY] == new["VolumeId"]
    assert block.mounted(node) == {"/data": new["VolumeId"]}
    report = [m["body"] for m in mails if f"ebs_{name}_restore" in m["subject"]][-1]
    assert new["VolumeId"] in report and original in report


def test_create_from_the_copies_when_the_first_regions_snapshots_are_gone(airflow_db, sandbox, tmp_path, mails):
    ec2, ec2_west = sandbox.boto3_client("ec2"), client(sandbox, "ec2", COPY_REGION)
    source = ec2.create_volume(AvailabilityZone="us-east-1a", Size=2, VolumeType="io1", Iops=500)["VolumeId"]
    name = f"x{uuid.uuid4().hex[:8]}"
    with clusters_file(tmp_path, entry(name, volume_ids=[source], copy_to=[{"region": COPY_REGION}])):
        assert run_dag(load_dag(f"ebs_{name}"), "2026-11-20")["report"] == "success"
        for snapshot in our_snapshots(ec2, name):
            ec2.delete_snapshot(SnapshotId=snapshot["SnapshotId"])
        (copy,) = our_snapshots(ec2_west, name)
        restore = load_dag(f"ebs_{name}_restore")
        # without source_region the entry's own region has nothing to restore: refused, nothing made
        states = run_dag(restore, "2026-12-01", conf={"logical_date": "2026-11-20", "confirm": name})
        assert states["plan"] == "failed", states
        failure = next(m["body"] for m in mails if f"ebs_{name}_restore.plan" in m["subject"])
        assert "there is no snapshot of this entry here of logical date 2026-11-20" in failure, failure
        conf = {"logical_date": "2026-11-20", "confirm": name, "source_region": COPY_REGION, "availability_zone": "us-west-2a"}
        states = run_dag(restore, "2026-12-02", conf=conf)
    assert states["report"] == "success", states
    assert states["swap"] == "skipped" and states["mount"] == "skipped"  # create mode: beside, not in place
    made = ec2_west.describe_volumes(Filters=[{"Name": f"tag:{TAG_RESTORED_FROM}", "Values": [copy["SnapshotId"]]}])["Volumes"]
    assert len(made) == 1
    assert made[0]["AvailabilityZone"] == "us-west-2a" and made[0]["State"] == "available"
    assert made[0]["VolumeType"] == "io1" and made[0]["Iops"] == 500  # read from the source in its own region
    assert tags(made[0])["backup:volume"] == source
    assert ec2.describe_volumes(Filters=[{"Name": f"tag:{TAG_RESTORED_FROM}", "Values": [copy["SnapshotId"]]}])["Volumes"] == []
