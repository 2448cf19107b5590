"""The sandbox's moto server, with EBS snapshots that can be held `pending` (or end in `error`).

Real EBS snapshots are `pending` for minutes; moto marks them `completed` at once. This wrapper
makes moto's snapshot a state-managed model (moto's own state manager, model name
``ec2::snapshot``, transition ``pending -> completed``), so tests drive it with moto's standard
API, for example::

    POST {moto_url}/moto-api/state-manager/set-transition
    {"model_name": "ec2::snapshot", "transition": {"progression": "manual", "times": 3}}

(stay `pending` for 3 DescribeSnapshots calls), and ``unset-transition`` to go back. The default
is ``immediate``: snapshots are `completed` at once, as with plain moto. A snapshot tagged
``sandbox:final-state=error`` ends in `error` instead of `completed`.

A copy made by CopySnapshot gets the arbitrary VolumeId EC2 gives copies (``vol-ffffffff``,
"should not be used for any purpose"), where moto keeps the source's volume. A source snapshot
tagged ``sandbox:refuse-copy-to=<region>`` cannot be copied into that region: CopySnapshot there
answers ``OptInRequired``, as a region the account has not enabled does.

Block devices, as an instance's kernel sees them: every volume carries a filesystem UUID (a new
empty volume its own, a volume made from a snapshot the snapshot's, a snapshot and its copies
the UUID of the volume they hold). On every attach and detach the wrapper writes
``$SANDBOX_BLOCK_DIR/<instance id>.json`` (``{device: {"volume_id", "fs_uuid", "name"}}``, the
name an NVMe namespace ``nvme<k>n1`` given in attach order, as on Nitro instances), which the
nodes' simulated ``lsblk``/``mount``/``umount`` read (tests/sandbox/tools/block/). As EC2 does, an
attach to a device that is in use, or of a volume that is attached, is refused. An instance tagged
``sandbox:refuse-attach=<snapshot id>`` refuses to attach any volume made from that snapshot
(``InternalError``: an attach that fails after the detach, for the rollback tests).

Run as ``python tests/sandbox/moto_server.py -H 127.0.0.1 -p PORT`` (same options as moto_server).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import uuid
from pathlib import Path

SNAPSHOT_MODEL = "ec2::snapshot"
COPY_VOLUME_ID = "vol-ffffffff"
REFUSE_COPY_TAG = "sandbox:refuse-copy-to"
FINAL_STATE_TAG = "sandbox:final-state"
REFUSE_ATTACH_TAG = "sandbox:refuse-attach"


def install() -> None:
    from moto.ec2.models import elastic_block_store as ebs
    from moto.moto_api import state_manager
    from moto.moto_api._internal.managed_state_model import ManagedState

    state_manager.register_default_transition(SNAPSHOT_MODEL, transition={"progression": "immediate"})

    original = ebs.Snapshot

    class ManagedSnapshot(original, ManagedState):
        __module__ = ebs.__name__  # moto's model registry derives the service from the module

        def __init__(self, *args, **kwargs):
            original.__init__(self, *args, **kwargs)
            ManagedState.__init__(self, SNAPSHOT_MODEL, [("pending", "completed")])
            self.fs_uuid = getattr(self.volume, "fs_uuid", None)

        @property
        def status(self):
            tags = {t["key"]: t["value"] for t in self.get_tags()} if self.id else {}
            self._transitions = [("pending", tags.get(FINAL_STATE_TAG, "completed"))]
            return ManagedState.status.fget(self)

        @status.setter
        def status(self, value):
            self._status = value

        @property
        def progress(self) -> str:
            return "100%" if self._status == "completed" else "40%"

    ebs.Snapshot = ManagedSnapshot
    describe = ebs.EBSBackend.describe_snapshots

    def describe_snapshots(self, snapshot_ids=None, filters=None):
        found = describe(self, snapshot_ids=snapshot_ids, filters=filters)
        for snapshot in found:
            if isinstance(snapshot, ManagedState):
                snapshot.advance()
        return found

    ebs.EBSBackend.describe_snapshots = describe_snapshots
    copy_snapshot = ebs.EBSBackend.copy_snapshot

    def copy_snapshot_as_ec2_does(self, source_snapshot_id, source_region, *args, **kwargs):
        from moto.ec2.exceptions import EC2ClientError
        from moto.ec2.models import ec2_backends

        source = ec2_backends[self.account_id][source_region].get_snapshot(source_snapshot_id)
        if {t["key"]: t["value"] for t in source.get_tags()}.get(REFUSE_COPY_TAG) == self.region_name:
            raise EC2ClientError("OptInRequired", "You are not subscribed to this service. Please go to http://aws.amazon.com to subscribe.")
        snapshot = copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs)
        volume = copy.copy(snapshot.volume)
        volume.id = COPY_VOLUME_ID
        snapshot.volume = volume
        return snapshot

    ebs.EBSBackend.copy_snapshot = copy_snapshot_as_ec2_does
    install_block_devices(ebs)


def _tags(resource) -> dict[str, str]:
    return {t["key"]: t["value"] for t in resource.get_tags()}


def install_block_devices(ebs) -> None:
    from moto.ec2.exceptions import EC2ClientError

    block_dir = Path(os.environ.get("SANDBOX_BLOCK_DIR") or ".")
    create_volume = ebs.EBSBackend.create_volume
    attach_volume = ebs.EBSBackend.attach_volume
    detach_volume = ebs.EBSBackend.detach_volume

    def with_filesystem(self, *args, **kwargs):
        volume = create_volume(self, *args, **kwargs)
        snapshot_id = kwargs.get("snapshot_id") or (args[2] if len(args) > 2 else None)
        snapshot = self.get_snapshot(snapshot_id) if snapshot_id else None
        volume.fs_uuid = getattr(snapshot, "fs_uuid", None) or str(uuid.uuid4())
        return volume

    def write_devices(instance) -> None:
        path = block_dir / f"{instance.id}.json"
        before = json.loads(path.read_text()) if path.exists() else {}
        devices = {}
        used = {d["name"] for d in before.values()}
        for device, mapping in sorted(instance.block_device_mapping.items()):
            volume = instance.ec2_backend.get_volume(mapping.volume_id)
            old = before.get(device)
            if old and old["volume_id"] == volume.id:
                devices[device] = old
                continue
            index = next(k for k in range(64) if f"nvme{k}n1" not in used)
            used.add(f"nvme{index}n1")
            devices[device] = {"volume_id": volume.id, "fs_uuid": getattr(volume, "fs_uuid", None), "name": f"nvme{index}n1"}
        block_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(devices, indent=1))
        tmp.replace(path)

    def attach_as_ec2_does(self, volume_id, instance_id, device_path, *args, **kwargs):
        volume = self.get_volume(volume_id)
        instance = self.get_instance(instance_id)
        if volume.attachment is not None:
            raise EC2ClientError("VolumeInUse", f"{volume_id} is already attached to an instance")
        if device_path in instance.block_device_mapping:
            raise EC2ClientError(
                "InvalidParameterValue", f"Invalid value '{device_path}' for unixDevice. Attachment point {device_path} is already in use"
            )
        if volume.snapshot_id and _tags(instance).get(REFUSE_ATTACH_TAG) == volume.snapshot_id:
            raise EC2ClientError("InternalError", "An internal error has occurred")
        attachment = attach_volume(self, volume_id, instance_id, device_path, *args, **kwargs)
        write_devices(instance)
        return attachment

    def detach_and_write(self, volume_id, instance_id, device_path, *args, **kwargs):
        attachment = detach_volume(self, volume_id, instance_id, device_path, *args, **kwargs)
        write_devices(self.get_instance(instance_id))
        return attachment

    ebs.EBSBackend.create_volume = with_filesystem
    ebs.EBSBackend.attach_volume = attach_as_ec2_does
    ebs.EBSBackend.detach_volume = detach_and_write


def main() -> None:
    install()
    from moto.server import main as moto_main

    sys.exit(moto_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
