"""EBS in the sandbox: moto volumes (and an instance) for an `ebs` entry, plus some history.

`prepare` creates what the entry names in the sandbox's moto server and rewrites the entry onto
the new ids (moto picks its own): one volume per listed id, one volume carrying `volume_tags`, an
instance with a data volume for `instance_id`. It also seeds ten days of older snapshots of ours
(so the first run has something to rotate) and one hand-made snapshot without our tags (which
survives every policy). A `drill_instance_id` becomes the sandbox's drill instance (in no cluster).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_backup_provider.stores.ebs import backup_tags, tag_list
from tests.sandbox.block import DRILL_ZONE, put_drill_instance

SEED_DAYS = 10
ZONE = DRILL_ZONE  # the drill's scratch volumes are made where the volumes are


def _volume(ec2, tags: dict[str, str] | None = None) -> str:
    spec = [{"ResourceType": "volume", "Tags": tag_list(tags)}] if tags else []
    return ec2.create_volume(AvailabilityZone=ZONE, Size=8, TagSpecifications=spec)["VolumeId"]


def _instance_with_data_volume(ec2) -> tuple[str, list[str]]:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance_id = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": ZONE})[
        "Instances"
    ][0]["InstanceId"]
    data = _volume(ec2, {"Name": "data"})
    ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/sdf")
    attached = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    return instance_id, sorted(v["VolumeId"] for v in attached)


def prepare(sandbox, entry: dict[str, Any]) -> dict[str, Any]:
    ec2 = sandbox.boto3_client("ec2")
    prepared = copy.deepcopy(entry)
    put_drill_instance(sandbox, prepared)
    volumes: list[str] = []
    if entry.get("volume_ids"):
        prepared["volume_ids"] = [_volume(ec2, {"Name": f"{entry['name']}-{n}"}) for n, _ in enumerate(entry["volume_ids"])]
        volumes += prepared["volume_ids"]
    if entry.get("volume_tags"):
        volumes.append(_volume(ec2, dict(entry["volume_tags"])))
    if entry.get("instance_id"):
        prepared["instance_id"], attached = _instance_with_data_volume(ec2)
        volumes += attached
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for volume_id in volumes:
        for days_ago in range(SEED_DAYS, 0, -1):
            logical = today - timedelta(days=days_ago)
            tags = backup_tags(
                name=entry["name"], logical_date=logical, run_id="seeded-by-sandbox", volume_id=volume_id, extra=entry.get("tags")
            )
            ec2.create_snapshot(
                VolumeId=volume_id,
                Description=f"seeded {entry['name']} {volume_id} {logical.date()}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": tag_list(tags)}],
            )
    if volumes:
        ec2.create_snapshot(VolumeId=volumes[0], Description="made by hand: no backup tags, never rotated")
    return prepared


def demo_runs(entry: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A real run (snapshot, wait, rotate), then a dry run of the same day (nothing to create or
    delete), then a restore in create mode of that day's snapshots (new volumes beside the old ones)."""
    dag_id = f"ebs_{entry['name']}"
    return [(dag_id, {}), (dag_id, {"dry_run": True}), (f"{dag_id}_restore", {"mode": "create", "confirm": entry["name"]})]
