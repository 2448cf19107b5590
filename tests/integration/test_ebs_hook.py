"""EbsHook against the sandbox's moto server: volumes, tagged snapshots, throttling retries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from airflow_backup_provider.hooks.ebs import (
    CREATED_BY,
    TAG_CREATED_BY,
    TAG_LOGICAL_DATE,
    TAG_NAME,
    TAG_RUN_ID,
    TAG_VOLUME,
    EbsHook,
    VolumeNotFound,
    backup_tags,
)

pytestmark = pytest.mark.sandbox

LOGICAL = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def ec2(sandbox):
    return sandbox.boto3_client("ec2")


@pytest.fixture
def hook(sandbox):
    return EbsHook(aws_conn_id="aws_default", throttle_max_wait=0.01)


def new_volume(ec2, **tags) -> str:
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    return ec2.create_volume(AvailabilityZone="us-east-1a", Size=1, TagSpecifications=spec)["VolumeId"]


def new_instance(ec2, extra_volumes: int = 1) -> tuple[str, list[str]]:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": "us-east-1a"})
    instance_id = instance["Instances"][0]["InstanceId"]
    for n in range(extra_volumes):
        volume_id = new_volume(ec2)
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=f"/dev/sd{'fghij'[n]}")
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return instance_id, sorted(v["VolumeId"] for v in volumes)


def test_backup_tags_are_complete_and_user_tags_cannot_fake_ours():
    tags = backup_tags(name="prod", logical_date=LOGICAL, run_id="r1", volume_id="vol-1", extra={"team": "db"})
    assert tags == {
        "team": "db",
        TAG_CREATED_BY: CREATED_BY,
        TAG_NAME: "prod",
        TAG_LOGICAL_DATE: "2026-11-20T00:00:00+00:00",
        TAG_RUN_ID: "r1",
        TAG_VOLUME: "vol-1",
    }
    with pytest.raises(ValueError, match="'backup:created-by'"):
        backup_tags(name="prod", logical_date=LOGICAL, run_id="r1", extra={"backup:created-by": "x"})


def test_find_volumes_by_id_tag_and_instance_absent_ids_are_simply_missing(hook, ec2):
    marker = uuid.uuid4().hex
    a = new_volume(ec2, team=marker)
    b = new_volume(ec2, team=marker)
    c = new_volume(ec2)
    assert [v.id for v in hook.find_volumes(volume_ids=[a, c, "vol-0000000000000dead"])] == sorted([a, c])
    assert [v.id for v in hook.find_volumes(tag_filter={"team": marker})] == sorted([a, b])
    instance_id, attached = new_instance(ec2, extra_volumes=2)
    found = hook.find_volumes(instance_id=instance_id)
    assert [v.id for v in found] == attached and len(attached) == 3
    assert all(v.instance_id == instance_id for v in found)
    with pytest.raises(ValueError, match="volume_ids"):
        hook.find_volumes()


def test_create_find_describe_delete_snapshot(hook, ec2):
    volume = new_volume(ec2)
    tags = backup_tags(name=f"t{uuid.uuid4().hex[:8]}", logical_date=LOGICAL, run_id="r1", volume_id=volume)
    snapshot = hook.create_snapshot(volume, tags, "daily backup")
    assert snapshot.volume_id == volume and snapshot.ours and snapshot.logical_date == LOGICAL
    listed = hook.find_snapshots({TAG_NAME: tags[TAG_NAME]})
    assert [s.id for s in listed] == [snapshot.id]
    assert listed[0].tags == tags and listed[0].description == "daily backup"
    assert hook.describe_snapshot_states([snapshot.id, "snap-0000000000000dead"]) == {
        snapshot.id: "completed",
        "snap-0000000000000dead": "missing",
    }
    assert hook.delete_snapshot(snapshot.id) is True
    assert hook.delete_snapshot(snapshot.id) is False
    assert hook.find_snapshots({TAG_NAME: tags[TAG_NAME]}) == []


def test_create_snapshot_of_a_vanished_volume_says_so(hook):
    with pytest.raises(VolumeNotFound, match="vol-0000000000000dead"):
        hook.create_snapshot("vol-0000000000000dead", {"a": "b"}, "x")


def test_find_snapshots_pages_through_everything(hook, ec2):
    volume = new_volume(ec2)
    name = f"p{uuid.uuid4().hex[:8]}"
    for n in range(7):
        hook.create_snapshot(volume, backup_tags(name=name, logical_date=LOGICAL, run_id=f"r{n}"), "x")
    # moto returns every snapshot in one page: cut its answer into pages of 5 to follow NextToken.
    real_call = hook._call
    tokens: list = []

    def paged_call(operation, **params):
        tokens.append(params.get("NextToken"))
        answer = real_call(operation, **{k: v for k, v in params.items() if k != "NextToken"})
        start = int(params.get("NextToken") or 0)
        page = dict(answer, Snapshots=answer["Snapshots"][start : start + 5])
        if start + 5 < len(answer["Snapshots"]):
            page["NextToken"] = str(start + 5)
        return page

    hook._call = paged_call
    found = hook.find_snapshots({TAG_NAME: name})
    assert len(found) == 7 and len({s.id for s in found}) == 7
    assert tokens == [None, "5"]


def test_create_snapshots_for_instance_is_one_multi_volume_call(hook, ec2):
    instance_id, attached = new_instance(ec2, extra_volumes=1)
    tags = backup_tags(name=f"i{uuid.uuid4().hex[:8]}", logical_date=LOGICAL, run_id="r1")
    calls: list[str] = []
    hook.conn.meta.events.register("before-call.ec2.*", lambda model, **kw: calls.append(model.name))
    snapshots = hook.create_snapshots_for_instance(instance_id, tags, "instance backup")
    assert sorted(s.volume_id for s in snapshots) == attached
    assert calls.count("CreateSnapshots") == 1 and "CreateSnapshot" not in calls
    listed = {s.volume_id: s for s in hook.find_snapshots({TAG_NAME: tags[TAG_NAME]})}
    assert sorted(listed) == attached
    for volume_id, snap in listed.items():
        assert snap.tags[TAG_VOLUME] == volume_id
        assert snap.tags[TAG_CREATED_BY] == CREATED_BY
    with pytest.raises(VolumeNotFound, match="i-0000000000000dead"):
        hook.create_snapshots_for_instance("i-0000000000000dead", tags, "x")


def throttle(hook, operation: str, times: int) -> list[int]:
    attempts: list[int] = []

    def handler(**kwargs):
        attempts.append(1)
        if len(attempts) <= times:
            raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "Request limit exceeded."}}, operation)

    hook.conn.meta.events.register(f"before-call.ec2.{operation}", handler)
    return attempts


def test_throttling_is_retried_with_backoff(hook, ec2):
    volume = new_volume(ec2)
    attempts = throttle(hook, "DescribeVolumes", times=3)
    assert [v.id for v in hook.find_volumes(volume_ids=[volume])] == [volume]
    assert len(attempts) == 4


def test_throttling_gives_up_after_the_bounded_attempts(hook):
    hook.throttle_attempts = 3
    attempts = throttle(hook, "DescribeSnapshots", times=100)
    with pytest.raises(ClientError, match="RequestLimitExceeded"):
        hook.find_snapshots({TAG_NAME: "x"})
    assert len(attempts) == 3


def test_other_errors_are_not_retried(hook):
    attempts: list[int] = []

    def handler(**kwargs):
        attempts.append(1)
        raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "DeleteSnapshot")

    hook.conn.meta.events.register("before-call.ec2.DeleteSnapshot", handler)
    with pytest.raises(ClientError, match="UnauthorizedOperation"):
        hook.delete_snapshot("snap-1")
    assert len(attempts) == 1
