#!/usr/bin/env python3
"""Simulated util-linux `lsblk --json`, `mount` and `umount` (through mount.py, umount.py) for a
sandbox node that stands for an EC2 instance.

The block devices are the ones EC2 (the sandbox's moto) has attached to the node's instance:
`<sandbox root>/ec2-block-devices/<instance>.json`, written by tests/sandbox/moto_server.py on
every attach and detach; the node's instance is `$SANDBOX_NODE_ROOT/state/block/instance`. Each
shows as an NVMe namespace (`nvme<k>n1`, named in attach order as on Nitro), its serial the
volume id without the dash, its filesystem UUID the one the volume carries. Mounts live in
`state/block/mounts.json` (`{mount point: volume id}`); a mount point listed in
`state/block/busy.json` cannot be unmounted ("target is busy", as when a process holds it).
Texts and exit codes are util-linux's (mount/umount exit 32 on a mount failure).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(os.environ.get("SANDBOX_NODE_ROOT", "."))
STATE = ROOT / "state" / "block"
BLOCK_DIR = ROOT.parent / "ec2-block-devices"
MOUNT_FAILURE = 32


def read(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def devices() -> list[dict]:
    """What the kernel sees: the instance's attached volumes."""
    instance = (STATE / "instance").read_text().strip() if (STATE / "instance").exists() else ""
    attached = read(BLOCK_DIR / f"{instance}.json", {}) if instance else {}
    return sorted(attached.values(), key=lambda d: d["name"])


def mounts() -> dict[str, str]:
    """Mount points whose volume is still attached (a detached volume's mount is gone with it)."""
    present = {d["volume_id"] for d in devices()}
    return {mp: vol for mp, vol in read(STATE / "mounts.json", {}).items() if vol in present}


def lsblk(args: list[str]) -> int:
    if "--json" not in args:
        print("lsblk: the sandbox only answers --json", file=sys.stderr)
        return 1
    mounted = {vol: mp for mp, vol in mounts().items()}
    rows = [
        {
            "name": d["name"],
            "serial": d["volume_id"].replace("-", ""),
            "uuid": d.get("fs_uuid"),
            "mountpoint": mounted.get(d["volume_id"]),
        }
        for d in devices()
    ]
    print(json.dumps({"blockdevices": rows}, indent=3))
    return 0


def mount(args: list[str]) -> int:
    # options as util-linux takes them: `-o ro[,...]`, `-r` (read-only); the rest are operands
    operands, words = [], iter(args)
    for word in words:
        if word == "-o":
            next(words, None)
        elif word not in ("--", "-r", "--read-only"):
            operands.append(word)
    if len(operands) != 2:
        print("mount: bad usage", file=sys.stderr)
        return 1
    source, target = operands
    by_name = {f"/dev/{d['name']}": d for d in devices()}
    device = by_name.get(source)
    if device is None:
        print(f"mount: {target}: special device {source} does not exist.", file=sys.stderr)
        return MOUNT_FAILURE
    current = mounts()
    if target in current:
        print(f"mount: {target}: {source} already mounted or mount point busy.", file=sys.stderr)
        return MOUNT_FAILURE
    current[target] = device["volume_id"]
    write(STATE / "mounts.json", current)
    return 0


def umount(args: list[str]) -> int:
    operands = [a for a in args if a != "--"]
    if len(operands) != 1:
        print("umount: bad usage", file=sys.stderr)
        return 1
    target = operands[0]
    current = mounts()
    if target not in current:
        print(f"umount: {target}: not mounted.", file=sys.stderr)
        return MOUNT_FAILURE
    if target in read(STATE / "busy.json", []):
        print(f"umount: {target}: target is busy.", file=sys.stderr)
        return MOUNT_FAILURE
    del current[target]
    write(STATE / "mounts.json", current)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--as-mount"]:
        return mount(argv[1:])
    if argv[:1] == ["--as-umount"]:
        return umount(argv[1:])
    return lsblk(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
