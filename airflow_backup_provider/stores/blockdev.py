"""Pure knowledge of a node's block devices: `lsblk --json`, `mount`, `umount` (util-linux).

An EBS volume's device name on the node is not the one EC2 attached it at: on Nitro instances it is
an NVMe namespace (`/dev/nvme1n1`) whose serial is the volume id without its dash (`vol0abc...`);
on Xen ones `/dev/sdf` shows as `/dev/xvdf`. So a volume is found by its serial first, then by
the Xen name. A volume made from a snapshot keeps the snapshot's filesystem UUID, which tells the
filesystem one wanted from any other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

LSBLK_COLUMNS = "NAME,SERIAL,UUID,MOUNTPOINT"
# util-linux umount's exit code "mount failure" and its words for a busy target
UMOUNT_BUSY_WORDS = ("target is busy", "device is busy")


@dataclass(frozen=True)
class BlockDevice:
    name: str  # without /dev/
    serial: str | None
    uuid: str | None
    mountpoint: str | None

    @property
    def path(self) -> str:
        return f"/dev/{self.name}"


def lsblk_argv() -> list[str]:
    return ["lsblk", "--json", "--output", LSBLK_COLUMNS]


def parse_lsblk(text: str) -> list[BlockDevice]:
    """Every disk and partition; a partition carries its disk's serial."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"lsblk printed no JSON: {text[:200]!r}") from exc
    found: list[BlockDevice] = []

    def walk(items: Iterable[dict], serial: str | None) -> None:
        for item in items or []:
            own = item.get("serial") or serial
            found.append(BlockDevice(item["name"], own, item.get("uuid"), item.get("mountpoint")))
            walk(item.get("children") or [], own)

    walk(data.get("blockdevices") or [], None)
    return found


def xen_name(device: str) -> str:
    """`/dev/sdf` -> `xvdf`, as a Xen instance names the attachment."""
    name = device.removeprefix("/dev/")
    return "xvd" + name[2:] if name.startswith("sd") else name


def device_of_volume(devices: Iterable[BlockDevice], volume_id: str, attached_at: str | None = None) -> BlockDevice | None:
    """The device holding the volume's filesystem: by NVMe serial, else by the Xen name of the
    attachment point; of a partitioned disk, its partition with a filesystem."""
    listing = list(devices)
    serial = volume_id.replace("-", "")
    of_disk = [d for d in listing if d.serial == serial]
    if not of_disk and attached_at:
        names = {attached_at.removeprefix("/dev/"), xen_name(attached_at)}
        of_disk = [d for d in listing if d.name in names or any(d.name.startswith(n) for n in names)]
    with_fs = [d for d in of_disk if d.uuid]
    return (with_fs or of_disk or [None])[0]


def mounted_at(devices: Iterable[BlockDevice], mount_point: str) -> BlockDevice | None:
    return next((d for d in devices if d.mountpoint == mount_point), None)


def umount_argv(mount_point: str) -> list[str]:
    return ["umount", "--", mount_point]


def mount_argv(device: str, mount_point: str) -> list[str]:
    return ["mount", "--", device, mount_point]


def umount_refusal(exit_code: int, output: str, mount_point: str) -> str | None:
    """Why `umount` did not unmount (busy or otherwise), None when it did."""
    if exit_code == 0:
        return None
    text = " ".join(output.split())[-300:]
    if any(word in text for word in UMOUNT_BUSY_WORDS):
        return f"{mount_point} is busy (a process still uses it): {text}"
    return f"umount {mount_point} exited {exit_code}: {text or 'no output'}"


__all__ = [
    "BlockDevice",
    "device_of_volume",
    "lsblk_argv",
    "mount_argv",
    "mounted_at",
    "parse_lsblk",
    "umount_argv",
    "umount_refusal",
    "xen_name",
]
