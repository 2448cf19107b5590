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


def mounted(node) -> dict[str, str]:
    """{mount point: volume id} as the node's mount table has it (stale entries included)."""
    path = block_state(node) / "mounts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def set_busy(node, mount_points: list[str]) -> None:
    (block_state(node) / "busy.json").write_text(json.dumps(mount_points))
