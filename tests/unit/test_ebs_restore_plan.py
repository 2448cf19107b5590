"""The pure planning of EBS restores (stores/ebs.py) and the block-device knowledge (stores/blockdev.py)."""

from __future__ import annotations

import json

import pendulum
import pytest

from airflow_backup_provider.stores import blockdev
from airflow_backup_provider.stores.ebs import (
    TAG_DEVICE,
    TAG_REPLACED_BY,
    TAG_RESTORE_RUN,
    TAG_RESTORED_FROM,
    RestoreRefused,
    Snapshot,
    Volume,
    VolumeRestore,
    backup_tags,
    choose_restore_snapshots,
    device_of,
    in_place_of,
    newest_logical_date,
    restore_tags,
    restore_volume_spec,
    restored_by_run,
    tag_dict,
)

DAY1 = pendulum.datetime(2026, 11, 20, tz="UTC")
DAY2 = pendulum.datetime(2026, 11, 21, tz="UTC")


def snap(snapshot_id: str, volume: str, day, state: str = "completed", taken_hour: int = 1, size: int = 8) -> Snapshot:
    tags = backup_tags(name="vols", logical_date=day, run_id="r", volume_id=volume, taken_at=day.add(hours=taken_hour))
    return Snapshot(id=snapshot_id, volume_id=volume, state=state, start_time=day, size_gib=size, tags=tags)


LISTING = [
    snap("snap-00000001", "vol-0000000a", DAY1),
    snap("snap-00000002", "vol-0000000a", DAY1, taken_hour=5),  # a later one of the same date
    snap("snap-00000003", "vol-0000000a", DAY2, state="pending"),
    snap("snap-00000004", "vol-0000000b", DAY1),
    snap("snap-00000005", "vol-0000000b", DAY2),
]


def test_the_newest_completed_snapshot_of_the_date_per_volume():
    chosen = choose_restore_snapshots(LISTING, logical_date=DAY1)
    assert {v: s.id for v, s in chosen.items()} == {"vol-0000000a": "snap-00000002", "vol-0000000b": "snap-00000004"}


def test_without_a_date_the_newest_completed_overall_never_a_pending_one():
    chosen = choose_restore_snapshots(LISTING)
    assert {v: s.id for v, s in chosen.items()} == {"vol-0000000a": "snap-00000002", "vol-0000000b": "snap-00000005"}
    assert newest_logical_date(LISTING) == DAY2


def test_a_date_without_a_complete_snapshot_is_refused_naming_the_volume():
    with pytest.raises(RestoreRefused, match=r"param 'logical_date': no completed snapshot of logical date 2026-11-21.* vol-0000000a"):
        choose_restore_snapshots(LISTING, logical_date=DAY2)
    with pytest.raises(RestoreRefused, match=r"param 'logical_date': there is no snapshot of this entry here"):
        choose_restore_snapshots([], logical_date=DAY1)
    only_b = choose_restore_snapshots(LISTING, logical_date=DAY2, volumes=["vol-0000000b"])
    assert [s.id for s in only_b.values()] == ["snap-00000005"]


def test_explicit_snapshot_ids_must_be_completed_and_one_per_volume():
    assert [s.id for s in choose_restore_snapshots(LISTING, snapshot_ids=["snap-00000001"]).values()] == ["snap-00000001"]
    with pytest.raises(RestoreRefused, match="snap-00000003 is pending"):
        choose_restore_snapshots(LISTING, snapshot_ids=["snap-00000003"])
    with pytest.raises(RestoreRefused, match="both of volume vol-0000000a"):
        choose_restore_snapshots(LISTING, snapshot_ids=["snap-00000001", "snap-00000002"])
    with pytest.raises(RestoreRefused, match="'snap-0000dead' is no snapshot"):
        choose_restore_snapshots(LISTING, snapshot_ids=["snap-0000dead"])


SOURCE = Volume(
    id="vol-0000000a", state="in-use", size_gib=20, instance_id="i-00000001", device="/dev/sdf",
    tags={"Name": "data", "backup:name": "not copied"}, zone="us-east-1a", volume_type="gp3", iops=4000,
    throughput=250, encrypted=True, kms_key_id="arn:aws:kms:us-east-1:123456789012:key/k",
)


def test_the_new_volume_keeps_size_type_iops_throughput_key_and_tags():
    snapshot = LISTING[1]
    tags = restore_tags(snapshot, source=SOURCE, run_id="manual__x", series="vols", device="/dev/sdf")
    assert tags["Name"] == "data" and "not copied" not in tags.values()
    assert tags[TAG_RESTORED_FROM] == "snap-00000002" and tags[TAG_RESTORE_RUN] == "manual__x" and tags[TAG_DEVICE] == "/dev/sdf"
    spec = restore_volume_spec(snapshot, source=SOURCE, zone="us-east-1a", tags=tags)
    assert {k: v for k, v in spec.items() if k != "TagSpecifications"} == {
        "AvailabilityZone": "us-east-1a", "SnapshotId": "snap-00000002", "Size": 20, "VolumeType": "gp3",
        "Iops": 4000, "Throughput": 250, "Encrypted": True, "KmsKeyId": SOURCE.kms_key_id,
    }
    assert tag_dict(spec["TagSpecifications"][0]) == tags
    # larger if asked, never smaller
    assert restore_volume_spec(snapshot, source=SOURCE, zone="us-east-1a", tags=tags, size_gib=50)["Size"] == 50
    with pytest.raises(RestoreRefused, match="param 'size_gib': value 10 is smaller"):
        restore_volume_spec(snapshot, source=SOURCE, zone="us-east-1a", tags=tags, size_gib=10)


def test_in_another_region_the_source_key_is_not_used():
    spec = restore_volume_spec(LISTING[1], source=SOURCE, zone="us-west-2a", tags={}, same_region=False)
    assert spec["Encrypted"] is True and "KmsKeyId" not in spec
    bare = restore_volume_spec(LISTING[1], source=None, zone="us-west-2a", tags={})
    assert bare["Size"] == 8 and "VolumeType" not in bare and "Encrypted" not in bare


def test_a_rerun_of_the_same_run_finds_its_volume():
    mine = Volume(id="vol-00000100", state="available", tags={TAG_RESTORED_FROM: "snap-00000002", TAG_RESTORE_RUN: "run1"})
    other_run = Volume(id="vol-00000099", state="available", tags={TAG_RESTORED_FROM: "snap-00000002", TAG_RESTORE_RUN: "run0"})
    deleted = Volume(id="vol-00000098", state="deleting", tags={TAG_RESTORED_FROM: "snap-00000002", TAG_RESTORE_RUN: "run1"})
    assert restored_by_run([other_run, deleted, mine], snapshot_id="snap-00000002", run_id="run1") == mine
    assert restored_by_run([other_run, deleted], snapshot_id="snap-00000002", run_id="run1") is None


def test_what_stands_in_place_of_a_volume_follows_earlier_restores():
    old = Volume(id="vol-0000000a", state="available", tags={TAG_REPLACED_BY: "vol-0000000c", TAG_DEVICE: "/dev/sdf"})
    middle = Volume(id="vol-0000000c", state="available", tags={TAG_REPLACED_BY: "vol-0000000d"})
    now = Volume(id="vol-0000000d", state="in-use", instance_id="i-00000001", device="/dev/sdf")
    volumes = {v.id: v for v in (old, middle, now)}
    assert in_place_of("vol-0000000a", volumes) == now
    assert in_place_of("vol-0000000a", {v.id: v for v in (old, middle)}) is None
    loop = Volume(id="vol-0000000c", state="available", tags={TAG_REPLACED_BY: "vol-0000000a"})
    assert in_place_of("vol-0000000a", {old.id: old, loop.id: loop}) is None
    assert device_of("vol-0000000a", volumes) == "/dev/sdf" and device_of("vol-0000000d", volumes) == "/dev/sdf"
    assert device_of("vol-0000dead", volumes) is None


def test_a_plan_item_round_trips_as_a_record():
    item = VolumeRestore("vol-0000000a", "snap-00000002", "2026-11-20T00:00:00+00:00", {"Size": 8}, replaces="vol-0000000d",
                         instance_id="i-00000001", device="/dev/sdf", mount_point="/data", host="10.0.0.1", node="n1")
    assert VolumeRestore.from_record(json.loads(json.dumps(item.as_record()))) == item


LSBLK = json.dumps(
    {
        "blockdevices": [
            {"name": "nvme0n1", "serial": "vol00000001", "uuid": None, "mountpoint": None,
             "children": [{"name": "nvme0n1p1", "serial": None, "uuid": "root-uuid", "mountpoint": "/"}]},
            {"name": "nvme1n1", "serial": "vol0000000d", "uuid": "data-uuid", "mountpoint": "/data"},
            {"name": "xvdg", "serial": None, "uuid": "xen-uuid", "mountpoint": None},
        ]
    }
)


def test_a_volume_is_found_by_its_nvme_serial_or_its_xen_name():
    devices = blockdev.parse_lsblk(LSBLK)
    assert blockdev.device_of_volume(devices, "vol-0000000d").path == "/dev/nvme1n1"
    assert blockdev.device_of_volume(devices, "vol-00000001").name == "nvme0n1p1"  # the partition with the filesystem
    assert blockdev.device_of_volume(devices, "vol-0000000e", "/dev/sdg").uuid == "xen-uuid"
    assert blockdev.device_of_volume(devices, "vol-0000000e") is None
    assert blockdev.mounted_at(devices, "/data").uuid == "data-uuid"
    with pytest.raises(ValueError, match="lsblk printed no JSON"):
        blockdev.parse_lsblk("lsblk: unknown column")


def test_umount_refusals_say_why():
    assert blockdev.umount_refusal(0, "", "/data") is None
    assert "is busy" in blockdev.umount_refusal(32, "umount: /data: target is busy.", "/data")
    assert blockdev.umount_refusal(32, "umount: /data: not mounted.", "/data") == "umount /data exited 32: umount: /data: not mounted."
    assert blockdev.mount_argv("/dev/nvme1n1", "/data; rm -rf /") == ["mount", "--", "/dev/nvme1n1", "/data; rm -rf /"]
