"""Block devices in the sandbox: a sandbox node stands for an EC2 instance (moto's), its simulated
`lsblk`/`mount`/`umount` (tests/sandbox/tools/block/) show that instance's volumes and mounts."""

from __future__ import annotations

import json
from pathlib import Path


def block_state(node) -> Path:
    """The node's block-device state folder (instance, mounts.json, busy.json)."""
    return node.state_dir("block")


def stand_for_instance(sandbox, node, instance_id: str, mounts: dict[str, str] | None = None) -> None:
    """The sandbox node becomes the instance's host: its simulated lsblk shows the instance's
    volumes; `mounts` ({device: mount point}) are mounted from the volumes now at those devices."""
    state = block_state(node)
    (state / "instance").write_text(instance_id)
    (state / "busy.json").unlink(missing_ok=True)
    ec2 = sandbox.boto3_client("ec2")
    found = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    at = {v["Attachments"][0]["Device"]: v["VolumeId"] for v in found}
    (state / "mounts.json").write_text(json.dumps({mp: at[device] for device, mp in (mounts or {}).items()}))


def make_drill_instance(sandbox, node, zone: str) -> str:
    """A new moto instance in `zone` (its root volume only) that `node` stands for: a drill instance."""
    ec2 = sandbox.boto3_client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": zone})
    instance_id = made["Instances"][0]["InstanceId"]
    stand_for_instance(sandbox, node, instance_id)
    return instance_id


DRILL_NODE = "drill"
DRILL_ZONE = "us-east-1a"


def shared_drill_instance(sandbox) -> tuple[str, object]:
    """(instance id, node) of the sandbox's one drill instance, in DRILL_ZONE on the spare node
    DRILL_NODE (in no cluster), made at the first call: the demo's ebs and riak drills share it, one
    after the other, as a real account would keep one instance for its drills."""
    node = sandbox.spare_node(DRILL_NODE)
    instance = block_state(node) / "instance"
    if not instance.exists():
        make_drill_instance(sandbox, node, DRILL_ZONE)
    return instance.read_text().strip(), node


def put_drill_instance(sandbox, entry: dict) -> None:
    """An entry's (ebs, riak) `drill_instance_id` and `drill_host` onto the shared drill instance."""
    if entry.get("drill_instance_id"):
        instance_id, node = shared_drill_instance(sandbox)
        entry.update(
            drill_instance_id=instance_id, drill_host=node.address, drill_availability_zone=DRILL_ZONE,
            drill_folder=str(node.root / "drills"),
        )


def mounted(node) -> dict[str, str]:
    """{mount point: volume id} as the node's mount table has it (stale entries included)."""
    path = block_state(node) / "mounts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def set_busy(node, mount_points: list[str]) -> None:
    (block_state(node) / "busy.json").write_text(json.dumps(mount_points))
